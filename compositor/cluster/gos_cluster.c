/* A compositor in a cluster: standby, takeover, leader. See gos_cluster.h
 * and docs/scale-out.md. Threads: the lease's (net/nats), the follower's
 * (standby: the log into the core's queue), "gos-role" (the takeover) and
 * "gos-hold" (this host's producers into the core's queue once leading). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gos_cluster.h"
#include "gos_log.h"
#include "gos_metrics.h"
#include "gos_nats.h"

enum role { ROLE_STANDBY, ROLE_TAKING_OVER, ROLE_LEADER, ROLE_DEPOSED };

struct gos_cluster {
	struct gos_cluster_opts o;
	struct gos_nats_lease *lease;
	struct gos_nats_follow *follow;
	_Atomic(struct gos_nats_ingest *) ingest;
	atomic_int role;
	atomic_bool deposed_said;
	pthread_t role_th, hold_th;
	bool role_started, hold_started;
	pthread_mutex_t lock;          /* lease_taken, stopping */
	pthread_cond_t wake;
	bool lease_taken, stopping;
	_Atomic double takeover_s;     /* the last takeover: lease taken -> consuming */
	atomic_uint_fast64_t takeovers;
	pthread_t ckpt_th;
	bool ckpt_started;
	atomic_uint_fast64_t ckpt_failed;
	_Atomic double ckpt_took_s;    /* the last checkpoint: fork to index published */
};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void depose(struct gos_cluster *c, const char *why)
{
	atomic_store(&c->role, ROLE_DEPOSED);
	if (atomic_exchange(&c->deposed_said, true))
		return;
	gos_log_error("cluster", "no longer the leader: %s; stopping (the map may hold what the "
	              "change log does not: restart as a standby)", why);
	if (c->o.on_deposed)
		c->o.on_deposed(c->o.ctx, why);
}

static void on_fenced(void *ctx, const char *why)
{
	depose(ctx, why);
}

/* The lease thread: taken (the role thread takes over) or lost. */
static void on_lease(void *ctx, bool held)
{
	struct gos_cluster *c = ctx;
	if (held) {
		pthread_mutex_lock(&c->lock);
		c->lease_taken = true;
		pthread_cond_broadcast(&c->wake);
		pthread_mutex_unlock(&c->lock);
	} else if (atomic_load(&c->role) != ROLE_STANDBY) {
		depose(c, "the leader lease was lost");
	}
}

/* Taking over: the log read to its end (the old leader's last records are
 * in the map), then the durable consumer from where the old leader acked,
 * skipping what it applied and did not ack, publishing with the fence. */
static void *role_main(void *arg)
{
	struct gos_cluster *c = arg;
	pthread_setname_np(pthread_self(), "gos-role");
	pthread_mutex_lock(&c->lock);
	while (!c->lease_taken && !c->stopping)
		pthread_cond_wait(&c->wake, &c->lock);
	bool stopping = c->stopping;
	pthread_mutex_unlock(&c->lock);
	if (stopping)
		return NULL;
	double t0 = mono_s();
	atomic_store(&c->role, ROLE_TAKING_OVER);
	gos_log_info("cluster", "took the lease: marking the change log and reading it to the mark");
	struct gos_nats_follow_end end;
	char why[300];
	for (;;) {
		if (atomic_load(&c->role) == ROLE_DEPOSED)
			return NULL;
		pthread_mutex_lock(&c->lock);
		stopping = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (stopping)
			return NULL;
		struct gos_nats_lease_stats ls;
		gos_nats_lease_stats(c->lease, &ls);
		if (gos_nats_follow_finish(c->follow, ls.self, 2000, &end, why, sizeof(why)))
			break;
		gos_log_warn("cluster", "taking over: %s; trying again", why);
		usleep(200 * 1000);
	}
	char err[300];
	struct gos_nats_ingest *in = gos_nats_ingest_create(&(struct gos_nats_ingest_opts){
		.url = c->o.url, .cluster = c->o.cluster, .queue = c->o.queue, .lease = c->lease,
		.log_seq = end.log_seq, .skip = end.src, .n_skip = end.n_src, .on_fenced = on_fenced,
		.ctx = c}, err, sizeof(err));
	free(end.src);
	if (!in) {
		depose(c, err);
		return NULL;
	}
	atomic_store(&c->ingest, in);
	int expect = ROLE_TAKING_OVER;
	if (!atomic_compare_exchange_strong(&c->role, &expect, ROLE_LEADER))
		return NULL;   /* deposed meanwhile */
	double took = mono_s() - t0;
	atomic_store(&c->takeover_s, took);
	atomic_fetch_add(&c->takeovers, 1);
	gos_log_info("cluster", "leading cluster %s: the log read to its takeover mark at stream "
	             "sequence %llu (map seq %llu) in %.3f s; consuming producer events", c->o.cluster ? c->o.cluster : "gos",
	             (unsigned long long)end.log_seq, (unsigned long long)end.next_seq, took);
	return NULL;
}

/* The standby's follower found a checkpoint (its thread): the core's map
 * becomes it, before the records after it. */
static bool on_checkpoint(void *ctx, int fd, uint64_t seq)
{
	struct gos_cluster *c = ctx;
	char err[256];
	struct gos_map *m = gos_map_image_read(fd, &c->o.map_opts, err, sizeof(err));
	if (!m) {
		gos_log_warn("cluster", "the checkpoint at seq %llu: %s", (unsigned long long)seq, err);
		return false;
	}
	struct gos_batch *b = gos_queue_get_batch(c->o.queue);
	b->adopt = m;
	b->seq_floor = seq;
	b->replayed = true;
	if (!gos_queue_push(c->o.queue, b)) {
		gos_map_destroy(m);
		b->adopt = NULL;
		gos_queue_put_batch(c->o.queue, b);
		return false;
	}
	return true;
}

static bool stopping(struct gos_cluster *c)
{
	pthread_mutex_lock(&c->lock);
	bool s = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* One checkpoint: the log's position, then the map imaged in a forked
 * child (the core goes on at once), then published. */
static void checkpoint(struct gos_cluster *c, struct gos_nats_ingest *in)
{
	double t0 = mono_s();
	uint64_t pos = 0, seq = 0;
	char err[300] = "";
	int fd = -1;
	bool ok = gos_nats_log_position(in, &pos);
	if (!ok)
		snprintf(err, sizeof(err), "cannot read the change log's position");
	if (ok && (fd = memfd_create("gos-checkpoint", MFD_CLOEXEC)) < 0) {
		snprintf(err, sizeof(err), "memfd_create: %s", strerror(errno));
		ok = false;
	}
	if (ok) {
		pid_t pid = gos_map_fork(c->o.map, &seq);
		if (pid == 0)
			_exit(gos_map_image_write(c->o.map, fd) ? 0 : 1);
		int st = 0;
		ok = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
		if (!ok)
			snprintf(err, sizeof(err), "imaging the map failed");
	}
	if (ok)
		ok = gos_nats_checkpoint_publish(in, fd, seq, pos, err, sizeof(err));
	if (fd >= 0)
		close(fd);
	if (ok) {
		atomic_store(&c->ckpt_took_s, mono_s() - t0);
		gos_log_debug("cluster", "checkpoint at seq %llu published (log position %llu) in %.3f s",
		              (unsigned long long)seq, (unsigned long long)pos, mono_s() - t0);
	} else {
		atomic_fetch_add(&c->ckpt_failed, 1);
		gos_log_warn("cluster", "no checkpoint this time: %s", err);
	}
}

static void *ckpt_main(void *arg)
{
	struct gos_cluster *c = arg;
	pthread_setname_np(pthread_self(), "gos-ckpt");
	uint64_t last = 0;
	double next = mono_s() + c->o.checkpoint_s;
	while (!stopping(c)) {
		usleep(100 * 1000);
		if (mono_s() < next)
			continue;
		next = mono_s() + c->o.checkpoint_s;
		struct gos_nats_ingest *in = atomic_load(&c->ingest);
		uint64_t seq = gos_map_seq(c->o.map);
		if (in && atomic_load(&c->role) == ROLE_LEADER && seq != last) {
			checkpoint(c, in);
			last = seq;
		}
	}
	return NULL;
}

/* This host's producers reach the core only while this compositor leads. */
static void *hold_main(void *arg)
{
	struct gos_cluster *c = arg;
	pthread_setname_np(pthread_self(), "gos-hold");
	for (;;) {
		if (atomic_load(&c->role) != ROLE_LEADER) {
			if (gos_queue_closed(c->o.hold))
				break;
			usleep(10 * 1000);
			continue;
		}
		struct gos_batch *b = gos_queue_pop(c->o.hold, 100);
		if (!b) {
			if (gos_queue_closed(c->o.hold))
				break;
			continue;
		}
		if (!gos_queue_push(c->o.queue, b)) {
			gos_queue_put_batch(c->o.hold, b);
			break;
		}
	}
	return NULL;
}

struct gos_cluster *gos_cluster_create(const struct gos_cluster_opts *opts, char *err,
                                       size_t errlen)
{
	struct gos_cluster *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->o = *opts;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	if (!c->o.checkpoint_s)
		c->o.checkpoint_s = 60;
	c->follow = gos_nats_follow_create(&(struct gos_nats_follow_opts){
		.url = opts->url, .cluster = opts->cluster, .queue = opts->queue,
		.on_checkpoint = on_checkpoint, .ctx = c}, err, errlen);
	if (!c->follow)
		goto error;
	if (pthread_create(&c->role_th, NULL, role_main, c) != 0) {
		snprintf(err, errlen, "cannot start the cluster's role thread");
		goto error;
	}
	c->role_started = true;
	if (pthread_create(&c->hold_th, NULL, hold_main, c) != 0) {
		snprintf(err, errlen, "cannot start the cluster's hold thread");
		goto error;
	}
	c->hold_started = true;
	if (c->o.checkpoint_s > 0) {
		if (pthread_create(&c->ckpt_th, NULL, ckpt_main, c) != 0) {
			snprintf(err, errlen, "cannot start the cluster's checkpoint thread");
			goto error;
		}
		c->ckpt_started = true;
	}
	c->lease = gos_nats_lease_create(&(struct gos_nats_lease_opts){
		.url = opts->url, .cluster = opts->cluster, .lease_ms = opts->lease_ms,
		.on_change = on_lease, .ctx = c}, err, errlen);
	if (!c->lease)
		goto error;
	return c;
error:
	gos_cluster_stop_hold(c);
	gos_cluster_destroy(c);
	return NULL;
}

void gos_cluster_stop_hold(struct gos_cluster *c)
{
	if (!c || !c->hold_started)
		return;
	gos_queue_close(c->o.hold);
	pthread_join(c->hold_th, NULL);
	c->hold_started = false;
}

void gos_cluster_destroy(struct gos_cluster *c)
{
	if (!c)
		return;
	gos_cluster_stop_hold(c);
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	if (c->role_started)
		pthread_join(c->role_th, NULL);
	if (c->ckpt_started)
		pthread_join(c->ckpt_th, NULL);
	gos_nats_follow_destroy(c->follow);
	/* acks what the core applied; what it did not, whoever leads next gets */
	gos_nats_ingest_destroy(atomic_load(&c->ingest));
	gos_nats_lease_destroy(c->lease);   /* handed over while still ours */
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const char *gos_cluster_role(struct gos_cluster *c)
{
	switch (atomic_load(&c->role)) {
	case ROLE_LEADER: return "leader";
	case ROLE_DEPOSED: return "deposed";
	default: return "standby";
	}
}

void gos_cluster_applied(struct gos_cluster *c, uint64_t conn, uint64_t tokens)
{
	struct gos_nats_ingest *in = atomic_load(&c->ingest);
	if (in)
		gos_nats_ingest_applied(in, conn, tokens);
}

void gos_cluster_publish(struct gos_cluster *c, const struct gos_batch *b, uint64_t seq_start)
{
	if (b->replayed)
		return;
	struct gos_nats_ingest *in = atomic_load(&c->ingest);
	if (in)
		gos_nats_log_publish(in, b, seq_start);
	else   /* this host's events reach the core only once leading */
		depose(c, "a batch was applied before this compositor led");
}

bool gos_cluster_health(struct gos_cluster *c, struct gos_buf *t)
{
	struct gos_nats_lease_stats ls;
	gos_nats_lease_stats(c->lease, &ls);
	struct gos_nats_follow_stats fs = {0};
	struct gos_nats_ingest_stats is = {0};
	struct gos_nats_ingest *in = atomic_load(&c->ingest);
	if (in)
		gos_nats_ingest_stats(in, &is);
	else
		gos_nats_follow_stats(c->follow, &fs);
	bool connected = in ? is.connected : fs.connected;
	gos_buf_printf(t, ",\"nats\":{\"connected\":%s,\"reconnects\":%llu,\"consumed\":%llu,"
	               "\"applied_stream_seq\":%llu,\"log_records\":%llu,\"log_failed\":%llu,"
	               "\"skipped\":%llu}",
	               connected ? "true" : "false",
	               (unsigned long long)(in ? is.reconnects : fs.reconnects),
	               (unsigned long long)is.messages, (unsigned long long)is.applied_stream_seq,
	               (unsigned long long)is.log_records, (unsigned long long)is.log_failed,
	               (unsigned long long)is.skipped);
	gos_buf_printf(t, ",\"lag\":{\"records\":%llu,\"seconds\":%.3f}",
	               (unsigned long long)fs.lag_records, fs.lag_s);
	gos_buf_puts(t, ",\"lease\":{\"held\":");
	gos_buf_puts(t, ls.held ? "true" : "false");
	gos_buf_puts(t, ",\"holder\":");
	gos_buf_json_str(t, ls.holder);
	gos_buf_puts(t, ",\"self\":");
	gos_buf_json_str(t, ls.self);
	gos_buf_printf(t, ",\"takeovers\":%llu,\"last_takeover_s\":%.3f}",
	               (unsigned long long)atomic_load(&c->takeovers), atomic_load(&c->takeover_s));
	struct gos_nats_follow_stats fs_all;
	gos_nats_follow_stats(c->follow, &fs_all);
	gos_buf_printf(t, ",\"checkpoint\":{\"published\":%llu,\"seq\":%llu,\"failed\":%llu,"
	               "\"started_from_seq\":%llu}",
	               (unsigned long long)is.checkpoints, (unsigned long long)is.checkpoint_seq,
	               (unsigned long long)atomic_load(&c->ckpt_failed),
	               (unsigned long long)fs_all.checkpoint_seq);
	return connected && atomic_load(&c->role) != ROLE_DEPOSED;
}

void gos_cluster_metrics(struct gos_cluster *c, struct gos_buf *t)
{
	struct gos_nats_follow_stats fs = {0};
	struct gos_nats_ingest_stats is = {0};
	struct gos_nats_ingest *in = atomic_load(&c->ingest);
	if (in)
		gos_nats_ingest_stats(in, &is);
	else
		gos_nats_follow_stats(c->follow, &fs);
	gos_metrics_one(t, "gos_nats_connected", "gauge", "1 while connected to NATS.",
	                in ? is.connected : fs.connected);
	gos_metrics_one(t, "gos_nats_reconnects_total", "counter", "Reconnections to NATS.",
	                in ? is.reconnects : fs.reconnects);
	gos_metrics_one(t, "gos_leader", "gauge",
	                "1 on the cluster's leader (the compositor consuming).",
	                atomic_load(&c->role) == ROLE_LEADER);
	gos_metrics_one(t, "gos_cluster_takeovers_total", "counter",
	                "Times this compositor took the lead.", atomic_load(&c->takeovers));
	gos_metrics_family(t, "gos_cluster_takeover_seconds", "gauge",
	                   "The last takeover: lease taken to consuming producer events.");
	gos_metrics_sample(t, "gos_cluster_takeover_seconds", NULL, atomic_load(&c->takeover_s));
	gos_metrics_one(t, "gos_replica_records_total", "counter",
	                "Change-log records applied as a standby.", fs.records);
	gos_metrics_one(t, "gos_replica_lag_records", "gauge",
	                "Change-log records not applied yet (standby).", fs.lag_records);
	gos_metrics_family(t, "gos_replica_lag_seconds", "gauge",
	                   "Age of the last record applied while more wait (0: caught up).");
	gos_metrics_sample(t, "gos_replica_lag_seconds", NULL, fs.lag_s);
	gos_metrics_one(t, "gos_nats_ingest_messages_total", "counter",
	                "Producer events consumed from JetStream.", is.messages);
	gos_metrics_one(t, "gos_nats_ingest_rejected_total", "counter",
	                "Events from JetStream rejected (answered on the producer's reply subject).",
	                is.rejected);
	gos_metrics_one(t, "gos_nats_ingest_skipped_total", "counter",
	                "Redelivered events already in the change log (a takeover's).", is.skipped);
	gos_metrics_one(t, "gos_nats_applied_stream_seq", "gauge",
	                "The ingest stream's sequence applied and acked up to.", is.applied_stream_seq);
	gos_metrics_one(t, "gos_nats_log_records_total", "counter",
	                "Change-log records published to JetStream.", is.log_records);
	gos_metrics_one(t, "gos_nats_log_failed_total", "counter",
	                "Change-log records that could not be published.", is.log_failed);
	gos_metrics_one(t, "gos_nats_checkpoints_total", "counter",
	                "Checkpoints of the map published to JetStream (leader).", is.checkpoints);
	gos_metrics_one(t, "gos_nats_checkpoint_failures_total", "counter",
	                "Checkpoints that could not be made or published.",
	                atomic_load(&c->ckpt_failed));
	gos_metrics_family(t, "gos_nats_checkpoint_seconds", "gauge",
	                   "The last checkpoint: imaging and publishing the map.");
	gos_metrics_sample(t, "gos_nats_checkpoint_seconds", NULL, atomic_load(&c->ckpt_took_s));
}
