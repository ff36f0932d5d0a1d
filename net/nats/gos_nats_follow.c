/* Following the leader's change log (CLUSTER.log) from its start with an
 * ordered consumer: each record's event and seqs go to the caller, which
 * applies them to its replica of the map. See gos_nats.h and
 * docs/scale-out.md. */
#include <math.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_arena.h"
#include "gos_nats.h"
#include "gos_protocol.h"
#include "nats_internal.h"

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
};

static bool setup(struct gos_nats_follow *r)
{
	char err[300] = "", subject[GOS_NATS_CLUSTER_MAX + 8];
	snprintf(subject, sizeof(subject), "%s.log", r->cluster);
	bool said = false;
	while (!atomic_load(&r->stop)) {
		if (nats_ensure_log_stream(r->js, r->cluster, err, sizeof(err))) {
			jsSubOptions so;
			jsSubOptions_Init(&so);
			so.Stream = r->stream;
			so.Ordered = true;   /* in order, no gaps: it recreates itself when it misses one */
			so.Config.DeliverPolicy = js_DeliverAll;
			jsErrCode jerr = 0;
			natsStatus s = js_SubscribeSync(&r->sub, r->js, subject, NULL, &so, &jerr);
			if (s == NATS_OK) {
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

/* Hands one record to the caller. */
static void apply_record(struct gos_nats_follow *r, natsMsg *m, struct gos_arena *arena)
{
	uint64_t first = header_u64(m, "Gos-Seq-First"), last = header_u64(m, "Gos-Seq-Last");
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

static void *replica_main(void *arg)
{
	struct gos_nats_follow *r = arg;
	pthread_setname_np(pthread_self(), "gos-replica");
	if (!setup(r))
		return NULL;
	struct gos_arena arena = {0};
	while (!atomic_load(&r->stop)) {
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, r->sub, 100);
		if (s != NATS_OK || !m) {
			atomic_store(&r->pending, 0);
			atomic_store(&r->lag_s, 0.0);
			continue;
		}
		apply_record(r, m, &arena);
		jsMsgMetaData *md = NULL;
		if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
			atomic_store(&r->pending, md->NumPending);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			double age = (double)ts.tv_sec + ts.tv_nsec * 1e-9 - (double)md->Timestamp * 1e-9;
			atomic_store(&r->lag_s, md->NumPending ? fmax(age, 0.0) : 0.0);
			jsMsgMetaData_Destroy(md);
		}
		natsMsg_Destroy(m);
	}
	gos_arena_finish(&arena);
	return NULL;
}

struct gos_nats_follow *gos_nats_follow_create(const struct gos_nats_follow_opts *opts,
                                                 char *err, size_t errlen)
{
	const char *cluster = opts->cluster ? opts->cluster : "gos";
	if (!opts->url || !opts->on_record) {
		snprintf(err, errlen, "following the change log needs a NATS URL and a callback");
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
	natsSubscription_Destroy(r->sub);
	jsCtx_Destroy(r->js);
	natsConnection_Destroy(r->nc);
	free(r);
}

void gos_nats_follow_stats(struct gos_nats_follow *r, struct gos_nats_follow_stats *out)
{
	*out = (struct gos_nats_follow_stats){
		.connected = atomic_load(&r->watch.connected),
		.records = atomic_load(&r->records),
		.lag_records = atomic_load(&r->pending),
		.lag_s = atomic_load(&r->lag_s),
		.unreadable = atomic_load(&r->gaps),
	};
}
