/* The journal's writer thread: group commit, seq leases, a full disk.
 * Checkpoints and segment retention: journal_checkpoint.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "gos_buf.h"
#include "gos_heartbeat.h"
#include "gos_log.h"
#include "gos_journal_internal.h"
#include "gos_protocol.h"
#include "gos_time.h"

#define DEFAULT_SEGMENT   (64ull << 20)
#define DEFAULT_MAX_BYTES (1ull << 30)
#define DEFAULT_CKPT_EV   1000000ull
#define DEFAULT_CKPT_S    60.0
#define DEFAULT_BATCHES   64u
#define LEASE_STEP        (1ull << 20)
#define RETRY_MS          500
/* Without a barrier, written events are fdatasync'd at least this often. */
#define SYNC_EVERY_S      1.0

static void set_stall(struct gos_journal *j, const char *what, int e)
{
	pthread_mutex_lock(&j->lock);
	bool was = j->st.stalled;
	j->st.stalled = true;
	j->st.write_errors++;
	snprintf(j->st.reason, sizeof(j->st.reason), "%s: %s",
	         what, e == ENOSPC || e == EDQUOT ? "disk full" : strerror(e));
	pthread_mutex_unlock(&j->lock);
	if (!was)
		gos_log_error("journal", "%s: %s; not acknowledging until it can write "
		              "(retrying every %d ms)", what, strerror(e), RETRY_MS);
}

static void clear_stall(struct gos_journal *j)
{
	pthread_mutex_lock(&j->lock);
	bool was = j->st.stalled;
	j->st.stalled = false;
	j->st.reason[0] = '\0';
	pthread_mutex_unlock(&j->lock);
	if (was)
		gos_log_info("journal", "writing again; acknowledging resumed");
}

/* Makes the directory entry of a new file durable. */
void gos_journal_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Opens (appending to, if it exists) the segment named by seq. */
static int open_segment(struct gos_journal *j, uint64_t seq)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/journal/%020" PRIu64 ".seg", j->o.dir, seq);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	struct stat st;
	j->seg_bytes = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	char jdir[4096];
	snprintf(jdir, sizeof(jdir), "%s/journal", j->o.dir);
	gos_journal_fsync_dir(jdir);
	return fd;
}

static int timed_fdatasync(struct gos_journal *j)
{
	uint64_t t0 = gos_now_ns();
	int r = fdatasync(j->seg_fd);
	gos_hist_observe(&j->fsync_hist, (double)(gos_now_ns() - t0) * 1e-9);
	return r;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Writes j->wbuf and, when `sync` (a barrier or a lease needs it, or it
 * has been a while), fdatasyncs everything written so far: group commit is
 * one fdatasync for all the batches since the last one. On failure keeps
 * the bytes, says so, and retries until it succeeds. While stopping, gives
 * up after a few tries (the barriers it covers stay unanswered). */
static bool write_durable(struct gos_journal *j, uint64_t first_seq, bool sync)
{
	int tries = 0;
	for (;;) {
		int e = 0;
		const char *what = NULL;
		if (j->wbuf_off == 0 && (j->seg_fd < 0 || j->seg_bytes >= j->o.segment_bytes)) {
			/* a sync later covers only the new segment: this one first */
			if (j->seg_fd >= 0 && j->unsynced && timed_fdatasync(j) != 0) {
				set_stall(j, "cannot sync the journal", errno);
				sleep_ms(RETRY_MS);
				continue;
			}
			j->unsynced = false;
			if (j->seg_fd >= 0)
				close(j->seg_fd);
			j->seg_fd = open_segment(j, first_seq);
			if (j->seg_fd < 0) {
				e = -j->seg_fd;
				what = "cannot open a segment";
			}
		}
		while (!what && j->wbuf_off < j->wbuf.len) {
			uint64_t t0 = gos_now_ns();
			ssize_t n = write(j->seg_fd, j->wbuf.data + j->wbuf_off, j->wbuf.len - j->wbuf_off);
			gos_hist_observe(&j->write_hist, (double)(gos_now_ns() - t0) * 1e-9);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				e = errno;
				what = "cannot write the journal";
				break;
			}
			j->wbuf_off += (size_t)n;
			j->seg_bytes += (uint64_t)n;
			j->unsynced = true;
		}
		bool synced = false;
		if (!what && sync && j->unsynced) {
			if (timed_fdatasync(j) != 0) {
				e = errno;
				what = "cannot sync the journal";
			} else {
				synced = true;
				j->unsynced = false;
				j->last_sync = gos_now_s();
			}
		}
		if (!what) {
			pthread_mutex_lock(&j->lock);
			j->st.bytes += j->wbuf.len;
			j->st.disk_bytes += j->wbuf.len;
			j->st.fsyncs += synced;
			pthread_mutex_unlock(&j->lock);
			gos_buf_clear(&j->wbuf);
			j->wbuf_off = 0;
			clear_stall(j);
			return true;
		}
		set_stall(j, what, e);
		if (atomic_load(&j->stopping) && ++tries >= 4) {
			gos_log_error("journal", "giving up at shutdown; %zu bytes were not written "
			              "(their sync replies were never sent)", j->wbuf.len - j->wbuf_off);
			return false;
		}
		sleep_ms(RETRY_MS);
	}
}

static uint64_t lease_cost(const struct gos_event *ev)
{
	switch (ev->type) {
	case GOS_EV_TOKEN: return 4;     /* new stream, eviction, token, stream count */
	case GOS_EV_STATE: return 2;     /* new stream, stream */
	case GOS_EV_VIZ: return 4ull * ev->viz.n_tokens;
	default: return 0;
	}
}

uint64_t gos_journal_lease_bound(const struct gos_batch *b)
{
	uint64_t n = 0;
	for (size_t i = 0; i < b->n; i++)
		n += lease_cost(&b->ev[i]);
	return n;
}

/* One event as a recording line, straight into the write buffer: the line
 * the producer sent (or, for an event made in-process, its serialization)
 * with "_t" as the last key. tkey: ',"_t":T}' for the batch. */
static void encode_event(struct gos_journal *j, const struct gos_event *ev, uint64_t seq_first,
                         uint64_t seq_last, double t, const struct gos_buf *tkey)
{
	struct gos_buf *w = &j->wbuf;
	size_t at = gos_journal_begin(w);
	if (ev->raw && ev->raw_len >= 2 && ev->raw[ev->raw_len - 1] == '}') {
		gos_buf_append(w, ev->raw, ev->raw_len);
	} else if (!gos_protocol_write(w, ev) || w->len - at - GOS_JREC_HEADER < 2) {
		w->len = at;   /* nothing to record */
		return;
	}
	w->len--;   /* drop the closing brace */
	gos_buf_append(w, tkey->data, tkey->len);
	gos_journal_end(w, at, GOS_JREC_EVENT, seq_first, seq_last, t);
}

static bool is_barrier(enum gos_event_type t)
{
	return t == GOS_EV_SYNC || t == GOS_EV_SCREENSHOT;
}

/* A journal writer without a beat for this long is stalled (/health). */
#define JOURNAL_HB_BOUND_S 15.0

static void *journal_main(void *arg)
{
	struct gos_journal *j = arg;
	pthread_setname_np(pthread_self(), "gos-journal");
	struct gos_batch **take = calloc(j->o.max_batches, sizeof(*take));
	if (!take)
		abort();
	/* waits at most 250 ms for work; a write and fsync may take long */
	gos_hb_start(GOS_HB_JOURNAL, JOURNAL_HB_BOUND_S);
	for (;;) {
		gos_hb_beat(GOS_HB_JOURNAL);
		pthread_mutex_lock(&j->lock);
		if (!j->count && j->lease_requested <= j->lease_written && !atomic_load(&j->stopping)) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 250 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&j->wake, &j->lock, &until);
		}
		size_t n = 0;
		while (j->count) {
			take[n++] = j->ring[j->head];
			j->head = (j->head + 1) % j->o.max_batches;
			j->count--;
		}
		uint64_t lease = j->lease_requested;
		bool stop = atomic_load(&j->stopping) && n == 0;
		pthread_mutex_unlock(&j->lock);
		pthread_cond_broadcast(&j->room);

		uint64_t first = j->last_seq + 1, events = 0;
		bool barrier = stop;
		for (size_t k = 0; k < n; k++) {
			struct gos_batch *b = take[k];
			if (b->seq_floor > j->last_seq) {
				/* the seqs jumped: a gap. When the map was replaced there (a
				 * replica's checkpoint), a SEQ_LEASE with seq_first says
				 * where: seeks before it have no base here */
				if (b->adopt_seq)
					gos_journal_encode(&j->wbuf, GOS_JREC_LEASE, b->seq_floor,
					                   lease > b->seq_floor ? lease : b->seq_floor,
					                   gos_now_realtime_s(), NULL, 0);
				j->last_seq = b->seq_floor;
			}
			gos_buf_clear(&j->tkey);
			gos_buf_append(&j->tkey, ",\"_t\":", 6);
			gos_buf_json_f64(&j->tkey, b->t);
			gos_buf_putc(&j->tkey, '}');
			for (size_t i = 0; i < b->n; i++) {
				if (is_barrier(b->ev[i].type)) {
					barrier = true;
					continue;
				}
				encode_event(j, &b->ev[i], j->last_seq + 1, b->seq_end[i], b->t, &j->tkey);
				j->last_seq = b->seq_end[i];
				events++;
			}
		}
		if (lease > j->lease_written)
			gos_journal_encode(&j->wbuf, GOS_JREC_LEASE, 0, lease, gos_now_realtime_s(), NULL, 0);
		bool ok = true;
		bool sync = barrier || lease > j->lease_written || gos_now_s() - j->last_sync >= SYNC_EVERY_S;
		if (j->wbuf.len || (sync && j->unsynced))
			ok = write_durable(j, first, sync);
		if (ok && lease > j->lease_written) {
			pthread_mutex_lock(&j->lock);
			j->lease_written = lease;
			atomic_store(&j->lease_granted, lease);
			pthread_mutex_unlock(&j->lock);
			pthread_cond_broadcast(&j->granted_cv);
		}
		for (size_t k = 0; k < n; k++) {
			struct gos_batch *b = take[k];
			for (size_t i = 0; ok && i < b->n; i++)
				if (b->ev[i].type == GOS_EV_SYNC && j->o.on_sync)
					j->o.on_sync(j->o.ctx, &b->ev[i].sync, b->ev[i].sync.tokens);
			gos_queue_put_batch(j->o.pool, b);
		}
		pthread_mutex_lock(&j->lock);
		j->st.records += events;
		j->st.batches += n;
		if (ok && !j->unsynced)
			j->st.durable_seq = j->last_seq;
		pthread_mutex_unlock(&j->lock);
		gos_journal_checkpoint_tick(j, events);
		if (stop || !ok)
			break;
	}
	gos_hb_stop(GOS_HB_JOURNAL);
	free(take);
	return NULL;
}

struct gos_journal *gos_journal_start(const struct gos_journal_opts *opts, char *err,
                                      size_t errlen)
{
	struct gos_journal *j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	j->o = *opts;
	if (!j->o.segment_bytes)
		j->o.segment_bytes = DEFAULT_SEGMENT;
	if (!j->o.max_bytes)
		j->o.max_bytes = DEFAULT_MAX_BYTES;
	if (!j->o.checkpoint_events)
		j->o.checkpoint_events = DEFAULT_CKPT_EV;
	if (j->o.checkpoint_s <= 0)
		j->o.checkpoint_s = DEFAULT_CKPT_S;
	if (!j->o.max_batches)
		j->o.max_batches = DEFAULT_BATCHES;
	j->ring = calloc(j->o.max_batches, sizeof(*j->ring));
	if (!j->ring)
		abort();
	static const double write_bounds[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	                                      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	                                      0.5, 1};
	static const double fsync_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	                                      0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
	gos_hist_init(&j->write_hist, write_bounds, sizeof(write_bounds) / sizeof(write_bounds[0]));
	gos_hist_init(&j->fsync_hist, fsync_bounds, sizeof(fsync_bounds) / sizeof(fsync_bounds[0]));
	j->seg_fd = -1;
	j->last_seq = j->o.seq;
	j->lease_written = j->o.seq;
	atomic_store(&j->lease_granted, j->o.seq);
	j->lease_requested = j->o.seq;
	j->st.durable_seq = j->o.seq;
	j->last_ckpt = gos_now_s();
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->wake, NULL);
	pthread_cond_init(&j->room, NULL);
	pthread_cond_init(&j->granted_cv, NULL);
	if (!gos_journal_checkpoint_init(j, err, errlen))
		goto error;
	if (pthread_create(&j->thread, NULL, journal_main, j) != 0) {
		snprintf(err, errlen, "cannot start the journal thread");
		goto error;
	}
	j->started = true;
	return j;
error:
	gos_journal_stop(j);
	return NULL;
}

void gos_journal_stop(struct gos_journal *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	atomic_store(&j->stopping, true);
	pthread_mutex_unlock(&j->lock);
	pthread_cond_broadcast(&j->wake);
	pthread_cond_broadcast(&j->granted_cv);
	pthread_cond_broadcast(&j->room);
	if (j->started)
		pthread_join(j->thread, NULL);
	/* batches the thread never took (it gave up on a dead disk) */
	while (j->count) {
		gos_queue_put_batch(j->o.pool, j->ring[j->head]);
		j->head = (j->head + 1) % j->o.max_batches;
		j->count--;
	}
	gos_journal_checkpoint_finish(j);
	if (j->seg_fd >= 0)
		close(j->seg_fd);
	gos_buf_finish(&j->wbuf);
	gos_buf_finish(&j->tkey);
	pthread_cond_destroy(&j->wake);
	pthread_cond_destroy(&j->room);
	pthread_cond_destroy(&j->granted_cv);
	pthread_mutex_destroy(&j->lock);
	free(j->ring);
	free(j);
}

bool gos_journal_lease(struct gos_journal *j, uint64_t need)
{
	uint64_t granted = atomic_load(&j->lease_granted);
	if (need + LEASE_STEP / 2 <= granted)
		return true;
	pthread_mutex_lock(&j->lock);
	if (j->lease_requested < need + LEASE_STEP) {
		j->lease_requested = need + LEASE_STEP;
		pthread_cond_signal(&j->wake);
	}
	while (atomic_load(&j->lease_granted) < need && !atomic_load(&j->stopping))
		pthread_cond_wait(&j->granted_cv, &j->lock);
	bool ok = atomic_load(&j->lease_granted) >= need;
	pthread_mutex_unlock(&j->lock);
	return ok;
}

void gos_journal_submit(struct gos_journal *j, struct gos_batch *b)
{
	pthread_mutex_lock(&j->lock);
	while (j->count == j->o.max_batches && !atomic_load(&j->stopping))
		pthread_cond_wait(&j->room, &j->lock);
	if (j->count == j->o.max_batches) {   /* stopping with a dead disk */
		pthread_mutex_unlock(&j->lock);
		gos_queue_put_batch(j->o.pool, b);
		return;
	}
	j->ring[(j->head + j->count) % j->o.max_batches] = b;
	j->count++;
	pthread_mutex_unlock(&j->lock);
	pthread_cond_signal(&j->wake);
}

void gos_journal_stats(struct gos_journal *j, struct gos_journal_stats *out)
{
	pthread_mutex_lock(&j->lock);
	*out = j->st;
	out->queued = j->count;
	pthread_mutex_unlock(&j->lock);
}

void gos_journal_metrics(struct gos_journal *j, struct gos_buf *out)
{
	gos_metrics_hist(out, "gos_journal_write_seconds",
	                 "Time per write(2) of journal records to a segment.", &j->write_hist);
	gos_metrics_hist(out, "gos_journal_fsync_seconds",
	                 "Time per fdatasync of a segment (one per group commit).", &j->fsync_hist);
	struct statvfs fs;
	bool ok = statvfs(j->o.dir, &fs) == 0;
	gos_metrics_family(out, "gos_journal_filesystem_avail_bytes", "gauge",
	                   "Bytes free for the compositor on the state dir's file system.");
	if (ok)
		gos_metrics_sample_u64(out, "gos_journal_filesystem_avail_bytes", NULL,
		                       (uint64_t)fs.f_bavail * fs.f_frsize);
	gos_metrics_family(out, "gos_journal_filesystem_size_bytes", "gauge",
	                   "Size of the state dir's file system.");
	if (ok)
		gos_metrics_sample_u64(out, "gos_journal_filesystem_size_bytes", NULL,
		                       (uint64_t)fs.f_blocks * fs.f_frsize);
}
