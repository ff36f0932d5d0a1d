/* Following the leader's change log (CLUSTER.log) from its start with an
 * ordered consumer: each record's event and seqs go to the caller, which
 * applies them to its replica of the map (a relay), or, in batches, to the
 * core's queue (a standby compositor). See gos_nats.h and
 * docs/scale-out.md. */
#include <cjson/cJSON.h>
#include <math.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_arena.h"
#include "gos_crc32c.h"
#include "gos_nats.h"
#include "gos_protocol.h"
#include "gos_queue.h"
#include "nats_internal.h"

#define FOLLOW_SRC_RING (1u << 20)   /* > what a leader can hold unacked (gos_nats_ingest.c) */
#define FOLLOW_BATCH 1024

struct gos_nats_follow {
	struct gos_nats_follow_opts o;
	char cluster[GOS_NATS_CLUSTER_MAX + 1];
	char stream[GOS_NATS_CLUSTER_MAX + 16];
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	pthread_t th;
	bool started;
	atomic_bool stop;
	struct nats_watch watch;
	atomic_uint_fast64_t records, gaps, pending;
	_Atomic double lag_s;
	atomic_uint_fast64_t log_seq;   /* the log's stream sequence handed over up to */
	atomic_uint_fast64_t leaders;   /* takeover markers read */
	uint64_t marker;                /* finish: the stream sequence of ours */
	/* queue mode */
	struct gos_batch *batch;        /* being filled */
	uint64_t next_seq;              /* the map seq once what was handed over is applied */
	uint64_t src[FOLLOW_SRC_RING];  /* the ingest seqs of the last records */
	uint64_t n_src;
	atomic_uint_fast64_t ckpt_seq;  /* the checkpoint started from: records up to it are in it */
};

/* Subscribes from the log's stream sequence `from` (0: its start). */
static bool setup(struct gos_nats_follow *r, uint64_t from)
{
	char err[300] = "", subject[GOS_NATS_CLUSTER_MAX + 8];
	snprintf(subject, sizeof(subject), "%s.log", r->cluster);
	bool said = false;
	while (!atomic_load(&r->stop)) {
		if (nats_ensure_log_stream(r->nc, r->js, r->cluster, err, sizeof(err))) {
			jsSubOptions so;
			jsSubOptions_Init(&so);
			so.Stream = r->stream;
			so.Ordered = true;   /* in order, no gaps: it recreates itself when it misses one */
			so.Config.DeliverPolicy = from ? js_DeliverByStartSequence : js_DeliverAll;
			so.Config.OptStartSeq = from;
			jsErrCode jerr = 0;
			natsStatus s = js_SubscribeSync(&r->sub, r->js, subject, NULL, &so, &jerr);
			if (s == NATS_OK) {
				if (from)
					nats_log("following %s (stream %s) from stream sequence %llu", subject,
					         r->stream, (unsigned long long)from);
				else
					nats_log("following %s (stream %s) from its start", subject, r->stream);
				return true;
			}
			snprintf(err, sizeof(err), "subscribing to %s: %s", subject, natsStatus_GetText(s));
		}
		if (!said)
			nats_log("not following the change log yet: %s (retrying)", err);
		said = true;
		usleep(500 * 1000);
	}
	return false;
}

static uint64_t header_u64(natsMsg *m, const char *key)
{
	const char *v = NULL;
	if (natsMsgHeader_Get(m, key, &v) != NATS_OK || !v)
		return 0;
	return strtoull(v, NULL, 10);
}

/* Queue mode: the batch being filled goes to the core. False: the queue
 * is closed. */
static bool push_batch(struct gos_nats_follow *r)
{
	if (!r->batch || !r->batch->n)
		return true;
	struct gos_batch *b = r->batch;
	r->batch = NULL;
	if (gos_queue_push(r->o.queue, b))
		return true;
	gos_queue_put_batch(r->o.queue, b);
	return false;
}

/* Queue mode: one record into the batch (a new batch where the leader's
 * seqs jumped). False: the queue is closed. */
static bool queue_record(struct gos_nats_follow *r, natsMsg *m)
{
	uint64_t first = header_u64(m, "Gos-Seq-First"), last = header_u64(m, "Gos-Seq-Last");
	if (last && last <= atomic_load(&r->ckpt_seq)) {
		/* in the checkpoint already; read for the ingest seqs it carries */
		uint64_t src = header_u64(m, "Gos-Src-Seq");
		if (src)
			r->src[r->n_src++ % FOLLOW_SRC_RING] = src;
		return true;
	}
	if (first && first - 1 > r->next_seq) {
		if (!push_batch(r))
			return false;
		r->batch = gos_queue_get_batch(r->o.queue);
		r->batch->seq_floor = first - 1;
	} else if (first && first - 1 < r->next_seq) {
		atomic_fetch_add(&r->gaps, 1);   /* seqs behind the replica's: not from one leader */
	}
	if (!r->batch)
		r->batch = gos_queue_get_batch(r->o.queue);
	struct gos_batch *b = r->batch;
	b->replayed = true;
	const char *p = natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	struct gos_event *ev = gos_batch_push(b);
	struct gos_parse_error err;
	if (!gos_protocol_parse(p, len, ev, &b->arena, &err)) {
		b->n--;
		atomic_fetch_add(&r->gaps, 1);   /* the leader applied it: should not happen */
		return true;
	}
	ev->raw = gos_arena_strndup(&b->arena, p, len);
	ev->raw_len = (uint32_t)len;
	ev->src_seq = header_u64(m, "Gos-Src-Seq");
	if (ev->src_seq)
		r->src[r->n_src++ % FOLLOW_SRC_RING] = ev->src_seq;
	if (last)
		r->next_seq = last;
	atomic_fetch_add(&r->records, 1);
	return b->n < FOLLOW_BATCH || push_batch(r);
}

/* Hands one record to the caller. */
static void apply_record(struct gos_nats_follow *r, natsMsg *m, struct gos_arena *arena)
{
	uint64_t first = header_u64(m, "Gos-Seq-First"), last = header_u64(m, "Gos-Seq-Last");
	if (last && last <= atomic_load(&r->ckpt_seq))
		return;   /* in the checkpoint already */
	struct gos_event ev;
	struct gos_parse_error err;
	gos_arena_reset(arena);
	if (!gos_protocol_parse(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &ev, arena,
	                        &err)) {
		atomic_fetch_add(&r->gaps, 1);   /* the leader applied it: should not happen */
		return;
	}
	r->o.on_record(r->o.ctx, &ev, first, last);
	atomic_fetch_add(&r->records, 1);
}

/* The newest complete checkpoint into a memfd, handed to on_checkpoint.
 * Returns the log's stream sequence to read from (0: its start, when there
 * is none or it cannot be read). */
static uint64_t load_checkpoint(struct gos_nats_follow *r)
{
	char err[300] = "";
	bool said = false;
	while (!atomic_load(&r->stop) && !nats_ensure_ckpt_stream(r->nc, r->js, r->cluster, err,
	                                                          sizeof(err))) {
		if (!said)
			nats_log("no checkpoint yet: %s (retrying)", err);
		said = true;
		usleep(500 * 1000);
	}
	char stream[GOS_NATS_CLUSTER_MAX + 16], index_subj[GOS_NATS_CLUSTER_MAX + 16];
	nats_upper_name(r->cluster, "_CKPT", stream, sizeof(stream));
	snprintf(index_subj, sizeof(index_subj), "%s.ckpt.index", r->cluster);
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	if (atomic_load(&r->stop) || js_GetLastMsg(&m, r->js, stream, index_subj, NULL, &jerr) != NATS_OK)
		return 0;   /* none: the log from its start */
	cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
	natsMsg_Destroy(m);
	const cJSON *f[6];
	static const char *const keys[6] = {"seq", "log_pos", "first", "parts", "bytes", "crc32c"};
	bool ok = j != NULL;
	for (int i = 0; ok && i < 6; i++)
		ok = cJSON_IsNumber(f[i] = cJSON_GetObjectItemCaseSensitive(j, keys[i]));
	uint64_t v[6] = {0};
	for (int i = 0; ok && i < 6; i++)
		v[i] = (uint64_t)f[i]->valuedouble;
	cJSON_Delete(j);
	if (!ok) {
		nats_log("the checkpoint index is unreadable: reading the change log from its start");
		return 0;
	}
	int fd = memfd_create("gos-checkpoint", MFD_CLOEXEC);
	uint32_t crc = 0;
	uint64_t bytes = 0;
	for (uint64_t i = 0; ok && fd >= 0 && i < v[3]; i++) {
		natsMsg *pm = NULL;
		ok = js_GetMsg(&pm, r->js, stream, v[2] + i, NULL, &jerr) == NATS_OK &&
		     header_u64(pm, "Gos-Ckpt-Seq") == v[0] && header_u64(pm, "Gos-Part") == i;
		if (ok) {
			const char *d = natsMsg_GetData(pm);
			size_t len = (size_t)natsMsg_GetDataLength(pm);
			crc = gos_crc32c(crc, d, len);
			bytes += len;
			ok = write(fd, d, len) == (ssize_t)len;
		}
		natsMsg_Destroy(pm);
	}
	ok = ok && fd >= 0 && bytes == v[4] && crc == (uint32_t)v[5] && lseek(fd, 0, SEEK_SET) == 0;
	if (ok)
		ok = r->o.on_checkpoint(r->o.ctx, fd, v[0]);
	if (fd >= 0)
		close(fd);
	if (!ok) {
		nats_log("the checkpoint at seq %llu could not be read: reading the change log from its "
		         "start", (unsigned long long)v[0]);
		return 0;
	}
	nats_log("started from the checkpoint at seq %llu (%llu bytes); the change log after stream "
	         "sequence %llu follows", (unsigned long long)v[0], (unsigned long long)bytes,
	         (unsigned long long)v[1]);
	atomic_store(&r->ckpt_seq, v[0]);
	r->next_seq = v[0];
	/* a standby reads back over what its new leader may skip (ingest seqs
	 * of records a dying leader published and did not ack) */
	uint64_t from = v[1] + 1;
	if (r->o.queue)
		from = from > FOLLOW_SRC_RING / 4 ? from - FOLLOW_SRC_RING / 4 : 1;
	atomic_store(&r->log_seq, from - 1);
	return from;
}

/* Idle this long: is the log ahead of us? (An ordered consumer whose
 * server died may stay silent: it is made again from where we are.) */
#define STALL_CHECK_MS 2000

static bool stalled(struct gos_nats_follow *r)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 1000;
	if (js_GetStreamInfo(&si, r->js, r->stream, &jo, &jerr) != NATS_OK)
		return false;
	uint64_t last = si->State.LastSeq, have = atomic_load(&r->log_seq);
	jsStreamInfo_Destroy(si);
	if (last <= have)
		return false;
	nats_log("the change log's consumer is silent at stream sequence %llu of %llu: following "
	         "again from there", (unsigned long long)have, (unsigned long long)last);
	return true;
}

static void *replica_main(void *arg)
{
	struct gos_nats_follow *r = arg;
	pthread_setname_np(pthread_self(), "gos-replica");
	if (!setup(r, r->o.on_checkpoint ? load_checkpoint(r) : 0))
		return NULL;
	struct gos_arena arena = {0};
	int idle_ms = 0;
	while (!atomic_load(&r->stop)) {
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, r->sub, 100);
		if (s != NATS_OK || !m) {
			atomic_store(&r->pending, 0);
			atomic_store(&r->lag_s, 0.0);
			if (r->o.queue && !push_batch(r))
				break;
			if ((idle_ms += 100) >= STALL_CHECK_MS) {
				idle_ms = 0;
				if (stalled(r)) {
					natsSubscription_Destroy(r->sub);
					r->sub = NULL;
					if (!setup(r, atomic_load(&r->log_seq) + 1))
						break;
				}
			}
			continue;
		}
		idle_ms = 0;
		jsMsgMetaData *md0 = NULL;
		uint64_t sseq = 0;
		if (natsMsg_GetMetaData(&md0, m) == NATS_OK) {
			sseq = md0->Sequence.Stream;
			jsMsgMetaData_Destroy(md0);
		}
		if (sseq && sseq <= atomic_load(&r->log_seq)) {
			natsMsg_Destroy(m);   /* seen before a resubscription */
			continue;
		}
		bool more = true;
		const char *leader = NULL;
		if (natsMsgHeader_Get(m, "Gos-Leader", &leader) == NATS_OK && leader)
			atomic_fetch_add(&r->leaders, 1);   /* a takeover marker: no event */
		else if (r->o.queue)
			more = queue_record(r, m);
		else
			apply_record(r, m, &arena);
		jsMsgMetaData *md = NULL;
		if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
			atomic_store(&r->log_seq, md->Sequence.Stream);
			/* caught up: what is filled goes to the core now */
			if (r->o.queue && md->NumPending == 0 && more)
				more = push_batch(r);
			atomic_store(&r->pending, md->NumPending);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			double age = (double)ts.tv_sec + ts.tv_nsec * 1e-9 - (double)md->Timestamp * 1e-9;
			atomic_store(&r->lag_s, md->NumPending ? fmax(age, 0.0) : 0.0);
			jsMsgMetaData_Destroy(md);
		}
		natsMsg_Destroy(m);
		if (!more)
			break;   /* the queue closed: the compositor is stopping */
	}
	if (r->o.queue)
		push_batch(r);
	gos_arena_finish(&arena);
	return NULL;
}

struct gos_nats_follow *gos_nats_follow_create(const struct gos_nats_follow_opts *opts,
                                                 char *err, size_t errlen)
{
	const char *cluster = opts->cluster ? opts->cluster : "gos";
	if (!opts->url || !opts->on_record == !opts->queue) {
		snprintf(err, errlen, "following the change log needs a NATS URL and a callback or a queue");
		return NULL;
	}
	if (!gos_nats_check_cluster(cluster, err, errlen))
		return NULL;
	struct gos_nats_follow *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->o = *opts;
	snprintf(r->cluster, sizeof(r->cluster), "%s", cluster);
	nats_log_stream_name(cluster, r->stream, sizeof(r->stream));
	natsStatus s = nats_connect_watched(opts->url, &r->watch, &r->nc);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&r->js, r->nc, NULL);
	if (s != NATS_OK) {
		snprintf(err, errlen, "NATS at %s: %s", opts->url, natsStatus_GetText(s));
		gos_nats_follow_destroy(r);
		return NULL;
	}
	if (pthread_create(&r->th, NULL, replica_main, r) != 0) {
		snprintf(err, errlen, "cannot start the replica thread");
		gos_nats_follow_destroy(r);
		return NULL;
	}
	r->started = true;
	return r;
}

void gos_nats_follow_destroy(struct gos_nats_follow *r)
{
	if (!r)
		return;
	atomic_store(&r->stop, true);
	if (r->started)
		pthread_join(r->th, NULL);
	if (r->batch)
		gos_queue_put_batch(r->o.queue, r->batch);
	natsSubscription_Destroy(r->sub);
	jsCtx_Destroy(r->js);
	nats_close_watched(r->nc, &r->watch);
	free(r);
}

bool gos_nats_follow_finish(struct gos_nats_follow *r, const char *holder, int timeout_ms,
                            struct gos_nats_follow_end *out, char *why, size_t whylen)
{
	*out = (struct gos_nats_follow_end){0};
	/* The takeover marker, published with no expectation: what the old
	 * leader stored before it is read below; what it still had in flight
	 * lands after it and is refused (each of its publishes expects the log
	 * to end where its own last one did). */
	uint64_t end = r->marker;
	if (!end) {
		char subject[GOS_NATS_CLUSTER_MAX + 8];
		snprintf(subject, sizeof(subject), "%s.log", r->cluster);
		natsMsg *m = NULL;
		jsPubAck *pa = NULL;
		jsErrCode jerr = 0;
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MaxWait = timeout_ms;
		natsStatus s = natsMsg_Create(&m, subject, NULL, NULL, 0);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, "Gos-Leader", holder);
		if (s == NATS_OK)
			s = js_PublishMsg(&pa, r->js, m, &po, &jerr);
		natsMsg_Destroy(m);
		if (s != NATS_OK) {
			snprintf(why, whylen, "cannot publish the takeover marker to the change log: %s",
			         natsStatus_GetText(s));
			return false;
		}
		end = r->marker = pa->Sequence;
		jsPubAck_Destroy(pa);
	}
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load(&r->log_seq) < end) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms) {
			snprintf(why, whylen, "the change log was read to %llu of %llu in %d ms",
			         (unsigned long long)atomic_load(&r->log_seq), (unsigned long long)end,
			         timeout_ms);
			return false;
		}
		usleep(2000);
	}
	atomic_store(&r->stop, true);
	pthread_join(r->th, NULL);   /* hands its last batch over */
	r->started = false;
	/* a leader's own records would pile up in it unread (and libnats would
	 * keep resetting it as a slow consumer) */
	natsSubscription_Destroy(r->sub);
	r->sub = NULL;
	out->log_seq = end;   /* the marker: the new leader's first publish expects it */
	out->next_seq = r->next_seq;
	size_t n = r->n_src < FOLLOW_SRC_RING ? (size_t)r->n_src : FOLLOW_SRC_RING;
	out->src = malloc((n ? n : 1) * sizeof(*out->src));
	if (!out->src)
		abort();
	memcpy(out->src, r->src, n * sizeof(*out->src));
	out->n_src = n;
	return true;
}

void gos_nats_follow_stats(struct gos_nats_follow *r, struct gos_nats_follow_stats *out)
{
	*out = (struct gos_nats_follow_stats){
		.connected = atomic_load(&r->watch.connected),
		.reconnects = atomic_load(&r->watch.reconnects),
		.records = atomic_load(&r->records),
		.lag_records = atomic_load(&r->pending),
		.lag_s = atomic_load(&r->lag_s),
		.unreadable = atomic_load(&r->gaps),
		.log_seq = atomic_load(&r->log_seq),
		.leaders = atomic_load(&r->leaders),
		.checkpoint_seq = atomic_load(&r->ckpt_seq),
	};
}
