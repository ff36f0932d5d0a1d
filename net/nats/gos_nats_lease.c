/* The cluster's leader lease (docs/scale-out.md): the key "leader" in the
 * JetStream key-value bucket NAME_LEASE, whose TTL is the lease. One thread
 * takes it (kvStore_Create: only while the key is absent, i.e. the holder's
 * last renewal aged out or it handed over) and renews it (kvStore_Update on
 * the revision it holds: compare-and-set). See gos_nats.h. */
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_nats.h"
#include "nats_internal.h"

#define LEASE_KEY "leader"

struct gos_nats_lease {
	struct gos_nats_lease_opts o;
	char cluster[GOS_NATS_CLUSTER_MAX + 1];
	char bucket[GOS_NATS_CLUSTER_MAX + 16];
	char holder[GOS_NATS_HOLDER_MAX];
	natsConnection *nc;
	jsCtx *js;
	kvStore *kv;
	pthread_t th;
	bool started;
	atomic_bool stop;
	struct nats_watch watch;
	pthread_mutex_t lock;     /* guards everything below */
	pthread_cond_t wake;
	bool held;                /* we hold it (the lease thread's view) */
	bool lost;                /* we held it and lost it: never again in this process */
	uint64_t rev;             /* the revision we hold */
	double renewed_at;        /* monotonic seconds the held revision's request went out */
	char current[GOS_NATS_HOLDER_MAX];   /* who holds it, as last read */
	uint64_t takeovers;
};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double ttl_s(const struct gos_nats_lease *l)
{
	return (double)l->o.lease_ms / 1000.0;
}

/* The bucket, created when missing. */
static bool bind_bucket(struct gos_nats_lease *l, char *err, size_t errlen)
{
	if (l->kv)
		return true;
	if (js_KeyValue(&l->kv, l->js, l->bucket) == NATS_OK)
		return true;
	kvConfig kc;
	kvConfig_Init(&kc);
	kc.Bucket = l->bucket;
	kc.History = 1;
	kc.TTL = (int64_t)l->o.lease_ms * 1000000LL;
	kc.StorageType = js_FileStorage;
	kc.Replicas = nats_replicas(l->nc);
	natsStatus s = js_CreateKeyValue(&l->kv, l->js, &kc);
	if (s == NATS_OK)
		return true;
	if (js_KeyValue(&l->kv, l->js, l->bucket) == NATS_OK)   /* another made it first */
		return true;
	snprintf(err, errlen, "cannot create the lease bucket %s: %s (is JetStream on?)", l->bucket,
	         natsStatus_GetText(s));
	return false;
}

/* Reads who holds the lease now (for /health). */
static void read_holder(struct gos_nats_lease *l)
{
	kvEntry *e = NULL;
	char who[GOS_NATS_HOLDER_MAX] = "";
	natsStatus s = kvStore_Get(&e, l->kv, LEASE_KEY);
	if (s == NATS_OK && e && kvEntry_ValueLen(e) > 0)
		snprintf(who, sizeof(who), "%.*s", kvEntry_ValueLen(e), (const char *)kvEntry_Value(e));
	kvEntry_Destroy(e);
	pthread_mutex_lock(&l->lock);
	snprintf(l->current, sizeof(l->current), "%s", who);
	pthread_mutex_unlock(&l->lock);
}

static void lose(struct gos_nats_lease *l, const char *why)
{
	pthread_mutex_lock(&l->lock);
	bool was = l->held;
	l->held = false;
	l->lost = true;
	pthread_mutex_unlock(&l->lock);
	if (was) {
		nats_log("lost the leader lease of cluster %s: %s", l->cluster, why);
		if (l->o.on_change)
			l->o.on_change(l->o.ctx, false);
	}
}

static void *lease_main(void *arg)
{
	struct gos_nats_lease *l = arg;
	pthread_setname_np(pthread_self(), "gos-lease");
	const double period = ttl_s(l) / 3.0;
	char err[300] = "";
	bool said = false;
	while (!atomic_load(&l->stop)) {
		if (!bind_bucket(l, err, sizeof(err))) {
			if (!said)
				nats_log("no lease yet: %s (retrying)", err);
			said = true;
			usleep(250 * 1000);
			continue;
		}
		pthread_mutex_lock(&l->lock);
		bool held = l->held, lost = l->lost;
		uint64_t rev = l->rev;
		double renewed_at = l->renewed_at;
		pthread_mutex_unlock(&l->lock);
		double sent = mono_s();
		if (lost) {
			/* a deposed leader's map holds what the log does not: it
			 * never leads again without a restart */
		} else if (!held) {
			uint64_t nrev = 0;
			natsStatus s = kvStore_Create(&nrev, l->kv, LEASE_KEY, l->holder,
			                              (int)strlen(l->holder));
			if (s == NATS_OK) {
				pthread_mutex_lock(&l->lock);
				l->held = true;
				l->rev = nrev;
				l->renewed_at = sent;
				l->takeovers++;
				snprintf(l->current, sizeof(l->current), "%s", l->holder);
				pthread_mutex_unlock(&l->lock);
				nats_log("took the leader lease of cluster %s (%s, revision %llu)", l->cluster,
				         l->holder, (unsigned long long)nrev);
				if (l->o.on_change)
					l->o.on_change(l->o.ctx, true);
			} else {
				read_holder(l);
			}
		} else if (sent - renewed_at >= ttl_s(l) * 0.9) {
			/* our own clock says it may have aged out (a paused process,
			 * NATS away too long): someone else may hold it now */
			lose(l, "not renewed within its TTL");
		} else {
			uint64_t nrev = 0;
			natsStatus s = kvStore_Update(&nrev, l->kv, LEASE_KEY, l->holder,
			                              (int)strlen(l->holder), rev);
			if (s == NATS_OK) {
				pthread_mutex_lock(&l->lock);
				l->rev = nrev;
				l->renewed_at = sent;
				pthread_mutex_unlock(&l->lock);
			} else if (s == NATS_ERR && atomic_load(&l->watch.connected)) {
				/* JetStream answered: the revision moved, someone else holds it */
				lose(l, "another compositor holds it");
			}   /* else NATS away: retried until our clock says it aged out */
		}
		/* sleep a period, woken early by destroy */
		pthread_mutex_lock(&l->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		double wait = held ? period : period / 2.0;
		until.tv_sec += (time_t)wait;
		until.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!atomic_load(&l->stop))
			pthread_cond_timedwait(&l->wake, &l->lock, &until);
		pthread_mutex_unlock(&l->lock);
	}
	return NULL;
}

struct gos_nats_lease *gos_nats_lease_create(const struct gos_nats_lease_opts *opts, char *err,
                                             size_t errlen)
{
	const char *cluster = opts->cluster ? opts->cluster : "gos";
	if (!opts->url) {
		snprintf(err, errlen, "the leader lease needs a NATS URL");
		return NULL;
	}
	if (!gos_nats_check_cluster(cluster, err, errlen))
		return NULL;
	struct gos_nats_lease *l = calloc(1, sizeof(*l));
	if (!l)
		abort();
	l->o = *opts;
	if (!l->o.lease_ms)
		l->o.lease_ms = 3000;
	snprintf(l->cluster, sizeof(l->cluster), "%s", cluster);
	nats_upper_name(cluster, "_LEASE", l->bucket, sizeof(l->bucket));
	if (opts->holder && opts->holder[0]) {
		snprintf(l->holder, sizeof(l->holder), "%s", opts->holder);
	} else {
		char host[128] = "";
		gethostname(host, sizeof(host) - 1);
		snprintf(l->holder, sizeof(l->holder), "%s:%ld", host, (long)getpid());
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->wake, NULL);
	natsStatus s = nats_connect_watched(opts->url, &l->watch, &l->nc);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&l->js, l->nc, NULL);
	if (s != NATS_OK) {
		snprintf(err, errlen, "NATS at %s: %s", opts->url, natsStatus_GetText(s));
		gos_nats_lease_destroy(l);
		return NULL;
	}
	if (pthread_create(&l->th, NULL, lease_main, l) != 0) {
		snprintf(err, errlen, "cannot start the lease thread");
		gos_nats_lease_destroy(l);
		return NULL;
	}
	l->started = true;
	return l;
}

void gos_nats_lease_destroy(struct gos_nats_lease *l)
{
	if (!l)
		return;
	atomic_store(&l->stop, true);
	pthread_mutex_lock(&l->lock);
	pthread_cond_broadcast(&l->wake);
	pthread_mutex_unlock(&l->lock);
	if (l->started)
		pthread_join(l->th, NULL);
	if (l->kv && l->held && !l->lost) {
		/* hand over at once: a standby need not wait for the TTL (only
		 * while the revision is still ours) */
		uint64_t nrev = 0;
		if (kvStore_Update(&nrev, l->kv, LEASE_KEY, "", 0, l->rev) == NATS_OK)
			kvStore_Delete(l->kv, LEASE_KEY);
		nats_log("handed the leader lease of cluster %s over", l->cluster);
	}
	kvStore_Destroy(l->kv);
	jsCtx_Destroy(l->js);
	nats_close_watched(l->nc, &l->watch);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

bool gos_nats_lease_held(struct gos_nats_lease *l)
{
	pthread_mutex_lock(&l->lock);
	bool ok = l->held && !l->lost && mono_s() - l->renewed_at < ttl_s(l) * 0.9;
	pthread_mutex_unlock(&l->lock);
	return ok;
}

void gos_nats_lease_give_up(struct gos_nats_lease *l, const char *why)
{
	lose(l, why);
}

void gos_nats_lease_stats(struct gos_nats_lease *l, struct gos_nats_lease_stats *out)
{
	pthread_mutex_lock(&l->lock);
	*out = (struct gos_nats_lease_stats){
		.connected = atomic_load(&l->watch.connected),
		.held = l->held && !l->lost,
		.lost = l->lost,
		.revision = l->rev,
		.takeovers = l->takeovers,
	};
	snprintf(out->holder, sizeof(out->holder), "%s", l->current);
	snprintf(out->self, sizeof(out->self), "%s", l->holder);
	pthread_mutex_unlock(&l->lock);
}
