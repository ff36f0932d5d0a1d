/* Restore at start: the newest readable checkpoint, then the journal after
 * it, through the same gos_map_apply_seq as live. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gos_log.h"
#include "gos_journal_internal.h"
#include "gos_protocol.h"
#include "gos_time.h"

#define REPLAY_BATCH 1024

/* ---- replay: records into a map, shared by restore and the seek worker ---- */

struct gos_jreplay {
	struct gos_map *map;
	uint64_t base;            /* records up to it are in the map */
	uint64_t limit;           /* records above it are not applied */
	uint64_t last_seq;        /* seq_last of the last record applied or skipped */
	double last_t;
	uint64_t events;
	struct gos_event ev[REPLAY_BATCH];
	uint64_t want[REPLAY_BATCH], got[REPLAY_BATCH];
	size_t n;
	struct gos_arena arena;
	bool diverged;
	bool bad;                 /* a record with a good checksum that does not parse */
	size_t bad_off;
	char why[200];
};

struct gos_jreplay *gos_jreplay_create(struct gos_map *map, uint64_t base, uint64_t limit)
{
	struct gos_jreplay *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->map = map;
	r->base = base;
	r->limit = limit;
	r->last_seq = base;
	r->last_t = NAN;
	return r;
}

void gos_jreplay_flush(struct gos_jreplay *r)
{
	if (!r->n)
		return;
	gos_map_apply_seq(r->map, r->ev, r->n, r->got);
	for (size_t i = 0; i < r->n && !r->diverged; i++) {
		if (r->got[i] != r->want[i]) {
			r->diverged = true;
			gos_log_warn("journal", "replay: the map reached seq %" PRIu64 " where the "
			             "journal says %" PRIu64 "; going on with the journal's numbering",
			             r->got[i], r->want[i]);
		}
	}
	if (r->diverged)
		gos_map_advance_seq(r->map, r->want[r->n - 1]);
	r->events += r->n;
	r->n = 0;
	gos_arena_reset(&r->arena);
}

void gos_jreplay_destroy(struct gos_jreplay *r)
{
	if (!r)
		return;
	gos_jreplay_flush(r);
	gos_arena_finish(&r->arena);
	free(r);
}

bool gos_jreplay_feed(void *ctx, const struct gos_jrec *rec)
{
	struct gos_jreplay *r = ctx;
	if (rec->type != GOS_JREC_EVENT)
		return true;
	if (rec->seq_last > r->limit)
		return false;
	if (rec->seq_last <= r->base) {
		r->last_t = rec->t;
		return true;
	}
	if (rec->seq_first != r->last_seq + 1) {
		/* a gap: seqs leased but never journaled before a restart */
		gos_jreplay_flush(r);
		gos_map_advance_seq(r->map, rec->seq_first - 1);
	}
	struct gos_parse_error perr;
	if (!gos_protocol_parse(rec->payload, rec->len, &r->ev[r->n], &r->arena, &perr)) {
		r->bad = true;
		r->bad_off = rec->offset;
		snprintf(r->why, sizeof(r->why), "a record at byte %zu does not parse (%s)",
		         rec->offset, perr.message);
		return false;
	}
	r->want[r->n++] = rec->seq_last;
	r->last_seq = rec->seq_last;
	r->last_t = rec->t;
	if (r->n == REPLAY_BATCH)
		gos_jreplay_flush(r);
	return true;
}

uint64_t gos_jreplay_last_seq(const struct gos_jreplay *r)
{
	return r->last_seq;
}

double gos_jreplay_last_t(const struct gos_jreplay *r)
{
	return r->last_t;
}

void gos_jreplay_set_limit(struct gos_jreplay *r, uint64_t limit)
{
	r->limit = limit;
}

const char *gos_jreplay_error(const struct gos_jreplay *r)
{
	return r->bad ? r->why : NULL;
}

uint64_t gos_jreplay_events(const struct gos_jreplay *r)
{
	return r->events + r->n;
}

/* ---- restore ---- */

struct replay {
	struct gos_jreplay *rp;
	uint64_t lease;
	double next_progress, start;
	uint64_t bytes_total, bytes_before;   /* progress */
	size_t seg_off;
};

static void progress(struct replay *r)
{
	double now = gos_now_s();
	if (now < r->next_progress)
		return;
	r->next_progress = now + 1.0;
	double done = r->bytes_total ? (double)(r->bytes_before + r->seg_off) / (double)r->bytes_total : 1;
	/* once a second by itself: never held back as a repeat */
	gos_log_always(GOS_LOG_INFO, "journal", "restoring: %" PRIu64 " events replayed (%.0f%% of "
	               "the journal, %.1f s)", gos_jreplay_events(r->rp), 100.0 * done, now - r->start);
}

static bool on_rec(void *ctx, const struct gos_jrec *rec)
{
	struct replay *r = ctx;
	if (rec->type == GOS_JREC_LEASE) {
		if (rec->seq_last > r->lease)
			r->lease = rec->seq_last;
		return true;
	}
	if (!gos_jreplay_feed(r->rp, rec))
		return false;
	if ((gos_jreplay_events(r->rp) & (REPLAY_BATCH - 1)) == 0) {
		r->seg_off = rec->offset;
		progress(r);
	}
	return true;
}

static bool only_leases(void *ctx, const struct gos_jrec *rec)
{
	struct replay *r = ctx;
	if (rec->type == GOS_JREC_LEASE && rec->seq_last > r->lease)
		r->lease = rec->seq_last;
	return true;
}

/* Moves path to DIR/bad/NAME.TIME; returns the new name's base for the log. */
static void set_aside(const char *dir, const char *path)
{
	const char *name = strrchr(path, '/');
	name = name ? name + 1 : path;
	char to[4608];
	snprintf(to, sizeof(to), "%s/bad/%s.%lld", dir, name, (long long)time(NULL));
	if (rename(path, to) != 0)
		gos_log_error("journal", "restore: cannot move %s to %s: %s", path, to, strerror(errno));
	else
		gos_log_warn("journal", "restore: set %s aside as %s (kept, not deleted)", path, to);
}

/* Writes the first `good` bytes of a set-aside segment back under its name,
 * so what came before the corruption stays in the journal. */
static void keep_prefix(const char *path, const void *buf, size_t good)
{
	if (!good)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	const char *p = buf;
	size_t off = 0;
	while (off < good) {
		ssize_t n = write(fd, p + off, good - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	fdatasync(fd);
	close(fd);
}

static struct gos_map *load_checkpoint(const struct gos_journal_files *f,
                                       const struct gos_map_opts *mo, uint64_t *seq)
{
	for (size_t i = f->n_ckpt; i-- > 0;) {
		int fd = open(f->ckpt[i].path, O_RDONLY | O_CLOEXEC);
		char err[256] = "cannot open it";
		struct gos_map *m = fd >= 0 ? gos_map_image_read(fd, mo, err, sizeof(err)) : NULL;
		if (fd >= 0)
			close(fd);
		if (m) {
			*seq = f->ckpt[i].seq;
			return m;
		}
		gos_log_warn("journal", "restore: checkpoint %s is unusable (%s); trying an older one",
		             f->ckpt[i].path, err);
	}
	*seq = 0;
	return NULL;
}

struct gos_map *gos_journal_restore(const char *dir, const struct gos_map_opts *mo,
                                    struct gos_journal_restore_info *info,
                                    char *err, size_t errlen)
{
	*info = (struct gos_journal_restore_info){0};
	struct gos_journal_files f;
	if (!gos_journal_list(dir, &f, err, errlen))
		return NULL;
	struct replay *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->start = gos_now_s();
	r->next_progress = r->start + 1.0;
	uint64_t base;
	struct gos_map *map = load_checkpoint(&f, mo, &base);
	if (!map)
		map = gos_map_create(mo);
	r->rp = gos_jreplay_create(map, base, UINT64_MAX);
	for (size_t i = 0; i < f.n_seg; i++)
		r->bytes_total += f.seg[i].bytes;

	for (size_t i = 0; i < f.n_seg; i++) {
		bool last = i + 1 == f.n_seg;
		bool below = !last && f.seg[i + 1].seq <= base + 1;
		size_t len = 0;
		char rerr[256];
		void *buf = gos_journal_read_file(f.seg[i].path, &len, rerr, sizeof(rerr));
		if (!buf) {
			gos_log_error("journal", "restore: %s; stopping the restore there", rerr);
			info->corrupt = true;
			break;
		}
		struct gos_jscan sc;
		r->seg_off = 0;
		gos_journal_scan(buf, len, below ? only_leases : on_rec, r, &sc);
		gos_jreplay_flush(r->rp);
		r->bytes_before += f.seg[i].bytes;
		if (sc.end == GOS_JSCAN_TORN && last) {
			info->torn_bytes = len - sc.good;
			if (truncate(f.seg[i].path, (off_t)sc.good) != 0)
				gos_log_error("journal", "restore: cannot cut %s: %s", f.seg[i].path,
				              strerror(errno));
			gos_log_warn("journal", "restore: the journal's last record was torn (%s): "
			             "dropped %zu bytes at the end of %s", sc.why, len - sc.good, f.seg[i].path);
		} else if (sc.end != GOS_JSCAN_CLEAN) {
			const char *bad = gos_jreplay_error(r->rp);
			info->corrupt = true;
			gos_log_error("journal", "restore: %s in %s (%s); the map keeps the %" PRIu64
			              " events before it, and the rest of the journal is set aside",
			              bad ? "an unreadable event" : "a corrupt record", f.seg[i].path,
			              bad ? bad : sc.why, gos_jreplay_events(r->rp));
			for (size_t k = i; k < f.n_seg; k++)
				set_aside(dir, f.seg[k].path);
			keep_prefix(f.seg[i].path, buf, bad ? r->rp->bad_off : sc.good);
			free(buf);
			break;
		}
		free(buf);
	}
	gos_jreplay_flush(r->rp);
	uint64_t last = gos_jreplay_last_seq(r->rp);
	uint64_t seq = last > r->lease ? last : r->lease;
	struct gos_map_stats st;
	gos_map_stats(map, &st);
	if (st.seq > seq)
		seq = st.seq;
	gos_map_advance_seq(map, seq);
	info->checkpoint_seq = base;
	info->events = gos_jreplay_events(r->rp);
	info->seq = seq;
	info->seconds = gos_now_s() - r->start;
	gos_jreplay_destroy(r->rp);
	free(r);
	struct gos_map *m = map;
	gos_journal_files_finish(&f);
	return m;
}
