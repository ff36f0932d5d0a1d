/* The compositor's side of gos over NATS: one thread pulls producer events
 * from the durable consumer, parses them as the socket does, and queues them
 * for the core in batches, each ending in a sync marker whose conn id names
 * the batch. When the core (or the journal, once durable) reports the
 * marker and its change-log records are stored, each of the batch's
 * messages is acked (explicit acks: an AckAll would also ack what a killed
 * predecessor had fetched and JetStream had not delivered again yet), and
 * the producers' sync requests it covers are answered. See gos_nats.h. */
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_crc32c.h"
#include "gos_nats.h"
#include "gos_protocol.h"
#include "gos_time.h"
#include "nats_internal.h"

#define RING 256          /* batches queued and not yet applied */
#define WAITERS 4096      /* producers' syncs waiting at once */

struct pend {
	natsMsgList list;      /* the batch's messages, each acked once it is applied */
};

/* A change-log record kept until it is known stored: sent again, in
 * order, when a publish failed (a NATS node died under the stream). */
struct rec {
	char *data;
	size_t len;
	uint64_t first, last, src;
};

struct waiter {
	char *reply;
	uint64_t target;       /* the stream sequence it waits for */
};

struct gos_nats_ingest {
	struct gos_nats_ingest_opts o;
	char cluster[GOS_NATS_CLUSTER_MAX + 1];
	char stream[GOS_NATS_CLUSTER_MAX + 16];
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *pull, *sync_sub;
	pthread_t th;
	bool started;
	atomic_bool stop;

	struct pend ring[RING];
	uint64_t next_id;          /* ids of batches queued: [done + 1, next_id) in the ring */
	atomic_uint_fast64_t done; /* the core applied batches up to this id */
	uint64_t acked;            /* ids acked up to */
	atomic_uint_fast64_t tokens;

	pthread_mutex_t lock;      /* waiters, applied_seq (the sync callback's thread) */
	/* applied_seq: the consumer's ack floor as last read: every message up
	 * to it is applied */
	struct waiter waiters[WAITERS];
	size_t n_waiters;
	uint64_t applied_seq;

	struct nats_watch watch;
	atomic_uint_fast64_t messages, accepted, rejected, syncs;
	atomic_uint_fast64_t log_records, log_failed, skipped;
	char log_subject[GOS_NATS_CLUSTER_MAX + 8];
	uint64_t log_expect;       /* the log's last stream seq the next publish expects */
	pthread_mutex_t pub_lock;  /* log publishes: the core's, resends, recovery; and: */
	struct rec *recs;          /* records published and not known stored, in log order */
	size_t n_recs, cap_recs;
	atomic_uint_fast64_t published_id;   /* batches whose records went out, up to this id */
	atomic_bool broken;        /* a publish failed: recover before publishing more */
	atomic_uint_fast64_t recoveries;
	atomic_uint_fast64_t resent;
	uint64_t ckpt_prev_first;  /* the checkpoint thread's: the last one's first part */
	atomic_uint_fast64_t checkpoints, ckpt_seq;
	atomic_bool fenced;
	/* Each ingest stream seq of a sliding window: queued (in a batch not
	 * acked yet) or done (applied, in the log, acked). JetStream delivers
	 * at least once: a message whose ack was lost (a NATS node died) or
	 * that waited past AckWait in our queue comes again. */
	uint8_t *win;              /* WIN entries, seq % WIN */
	uint64_t win_base;         /* seqs below it count as done */
};

#define WIN (1u << 22)
enum { SEQ_NEW = 0, SEQ_QUEUED = 1, SEQ_DONE = 2 };

static int win_get(const struct gos_nats_ingest *n, uint64_t seq)
{
	if (seq < n->win_base)
		return SEQ_DONE;
	if (seq >= n->win_base + WIN)
		return SEQ_NEW;
	return n->win[seq % WIN];
}

static void win_set(struct gos_nats_ingest *n, uint64_t seq, int v)
{
	if (seq < n->win_base)
		return;
	if (seq >= n->win_base + WIN) {
		uint64_t base = seq - WIN / 2;   /* slide: what falls out counts as done */
		if (base - n->win_base >= WIN)
			memset(n->win, 0, WIN);
		else
			for (uint64_t q = n->win_base; q < base; q++)
				n->win[q % WIN] = SEQ_NEW;
		n->win_base = base;
	}
	n->win[seq % WIN] = (uint8_t)v;
}

/* Publishes stop for good: the map holds what the log may not. */
static void fence(struct gos_nats_ingest *n, const char *why)
{
	if (atomic_exchange(&n->fenced, true))
		return;
	nats_log("fenced: %s; publishing, acking and answering syncs stopped", why);
	if (n->o.lease)
		gos_nats_lease_give_up(n->o.lease, why);
	if (n->o.on_fenced)
		n->o.on_fenced(n->o.ctx, why);
}

/* A change-log publish JetStream refused (libnats's thread). */
static void on_publish_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	(void)js;
	struct gos_nats_ingest *n = closure;
	atomic_fetch_add(&n->log_failed, 1);
	/* ours lost (the stream moved to another node), or another leader's
	 * marker: the log's last record says which (recover) */
	if (!atomic_exchange(&n->broken, true))
		nats_log("a change-log publish was refused (%s): reading the log's end",
		         pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
}



/* Answers the waiting syncs that applied_seq covers (lock held). */
static void answer_waiters(struct gos_nats_ingest *n)
{
	if (atomic_load(&n->fenced))
		return;   /* a deposed leader confirms nothing */
	size_t k = 0;
	char body[160];
	int len = snprintf(body, sizeof(body), "{\"type\":\"sync\",\"stream_seq\":%llu,\"tokens\":%llu}",
	                   (unsigned long long)n->applied_seq,
	                   (unsigned long long)atomic_load(&n->tokens));
	for (size_t i = 0; i < n->n_waiters; i++) {
		struct waiter *w = &n->waiters[i];
		if (w->target <= n->applied_seq) {
			natsConnection_Publish(n->nc, w->reply, body, len);
			free(w->reply);
			atomic_fetch_add(&n->syncs, 1);
		} else {
			n->waiters[k++] = *w;
		}
	}
	n->n_waiters = k;
}

/* A producer's sync request (libnats's thread): answered once everything
 * stored in the stream when it arrived is applied. */
static void on_sync(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct gos_nats_ingest *n = closure;
	const char *reply = natsMsg_GetReply(msg);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	if (reply && js_GetStreamInfo(&si, n->js, n->stream, NULL, &jerr) == NATS_OK) {
		uint64_t target = si->State.LastSeq;
		jsStreamInfo_Destroy(si);
		pthread_mutex_lock(&n->lock);
		if (n->n_waiters < WAITERS) {
			n->waiters[n->n_waiters++] = (struct waiter){strdup(reply), target};
			if (!n->waiters[n->n_waiters - 1].reply)
				abort();
		}
		answer_waiters(n);
		pthread_mutex_unlock(&n->lock);
	}
	natsMsg_Destroy(msg);
}

/* Connects, creates what is missing, subscribes: retried until it works or
 * the thread stops. */
static bool setup(struct gos_nats_ingest *n)
{
	char err[300] = "";
	bool said = false;
	while (!atomic_load(&n->stop)) {
		jsErrCode jerr = 0;
		if (nats_ensure_stream(n->nc, n->js, n->cluster, err, sizeof(err)) &&
		    nats_ensure_log_stream(n->nc, n->js, n->cluster, err, sizeof(err))) {
			jsSubOptions so;
			jsSubOptions_Init(&so);
			so.Stream = n->stream;
			so.Config.Durable = NATS_CONSUMER;
			so.Config.AckPolicy = js_AckExplicit;
			/* what a killed compositor had fetched and not acked goes to the
			 * next one after this long */
			so.Config.AckWait = 5LL * 1000000000LL;
			so.Config.MaxAckPending = 1 << 20;
			so.Config.DeliverPolicy = js_DeliverAll;
			char subjects[GOS_NATS_CLUSTER_MAX + 16];
			snprintf(subjects, sizeof(subjects), "%s.ingest.>", n->cluster);
			natsStatus s = js_PullSubscribe(&n->pull, n->js, subjects, NATS_CONSUMER, NULL, &so,
			                                &jerr);
			char sync_subject[GOS_NATS_CLUSTER_MAX + 8];
			snprintf(sync_subject, sizeof(sync_subject), "%s.sync", n->cluster);
			if (s == NATS_OK)
				s = natsConnection_Subscribe(&n->sync_sub, n->nc, sync_subject, on_sync, n);
			if (s == NATS_OK) {
				/* what the consumer acked is applied: syncs for it answer at once */
				jsConsumerInfo *ci = NULL;
				if (js_GetConsumerInfo(&ci, n->js, n->stream, NATS_CONSUMER, NULL, &jerr) ==
				    NATS_OK) {
					pthread_mutex_lock(&n->lock);
					if (ci->AckFloor.Stream > n->applied_seq)
						n->applied_seq = ci->AckFloor.Stream;
					pthread_mutex_unlock(&n->lock);
					jsConsumerInfo_Destroy(ci);
				}
				nats_log("consuming %s (stream %s, consumer %s)", subjects, n->stream,
				         NATS_CONSUMER);
				return true;
			}
			snprintf(err, sizeof(err), "subscribing to %s: %s", subjects, natsStatus_GetText(s));
			natsSubscription_Destroy(n->pull);
			n->pull = NULL;
		}
		if (!said)
			nats_log("not consuming yet: %s (retrying)", err);
		said = true;
		usleep(500 * 1000);
	}
	return false;
}

static natsStatus make_msg(struct gos_nats_ingest *n, const struct rec *r, natsMsg **out)
{
	char first_s[24], last_s[24], src_s[24], id_s[48];
	snprintf(first_s, sizeof(first_s), "%llu", (unsigned long long)r->first);
	snprintf(last_s, sizeof(last_s), "%llu", (unsigned long long)r->last);
	snprintf(src_s, sizeof(src_s), "%llu", (unsigned long long)r->src);
	/* one id per leadership and seq: a record sent again is stored once */
	snprintf(id_s, sizeof(id_s), "gos-%llu-%llu", (unsigned long long)n->o.log_seq,
	         (unsigned long long)r->last);
	natsMsg *m = NULL;
	natsStatus s = natsMsg_Create(&m, n->log_subject, NULL, r->data, (int)r->len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Gos-Seq-First", first_s);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Gos-Seq-Last", last_s);
	if (s == NATS_OK && r->src)
		s = natsMsgHeader_Set(m, "Gos-Src-Seq", src_s);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", id_s);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		m = NULL;
	}
	*out = m;
	return s;
}

/* pub_lock held: the first k records are stored. */
static void drop_recs(struct gos_nats_ingest *n, size_t k)
{
	for (size_t i = 0; i < k; i++)
		free(n->recs[i].data);
	memmove(n->recs, n->recs + k, (n->n_recs - k) * sizeof(*n->recs));
	n->n_recs -= k;
}

/* After a failed publish (ingest thread): the log's last message says
 * whether another leader wrote (fenced) or ours went missing (a NATS node
 * died under the stream); then what is missing is sent again, in order,
 * expecting the log's end. Retried each round until it works, or the lease
 * is gone. */
static void recover(struct gos_nats_ingest *n)
{
	pthread_mutex_lock(&n->pub_lock);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 2000;
	js_PublishAsyncComplete(n->js, &po);   /* what is in flight settles first */
	natsMsgList lost = {0};
	if (js_PublishAsyncGetPendingList(&lost, n->js) == NATS_OK)
		natsMsgList_Destroy(&lost);        /* no answer: recs has them */
	char stream[GOS_NATS_CLUSTER_MAX + 16];
	nats_log_stream_name(n->cluster, stream, sizeof(stream));
	natsMsg *last = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 2000;
	if (js_GetLastMsg(&last, n->js, stream, n->log_subject, &jo, &jerr) != NATS_OK) {
		pthread_mutex_unlock(&n->pub_lock);
		return;   /* JetStream away: next round */
	}
	uint64_t at = natsMsg_GetSequence(last), stored = 0;
	const char *id = NULL;
	char mine[48];
	int k = snprintf(mine, sizeof(mine), "gos-%llu-", (unsigned long long)n->o.log_seq);
	bool ours = at == n->o.log_seq;   /* our own takeover marker: nothing of ours yet */
	if (!ours && natsMsgHeader_Get(last, "Nats-Msg-Id", &id) == NATS_OK && id &&
	    !strncmp(id, mine, (size_t)k)) {
		ours = true;
		stored = strtoull(id + k, NULL, 10);
	}
	natsMsg_Destroy(last);
	if (!ours || (n->o.lease && !gos_nats_lease_held(n->o.lease))) {
		pthread_mutex_unlock(&n->pub_lock);
		fence(n, ours ? "the leader lease is no longer held"
		              : "another leader wrote to the change log");
		return;
	}
	size_t keep = 0;
	while (keep < n->n_recs && n->recs[keep].last <= stored)
		keep++;
	drop_recs(n, keep);
	/* the rest again, one at a time, each expecting the one before */
	uint64_t expect = at;
	size_t sent = 0;
	bool ok = true;
	for (; ok && sent < n->n_recs; sent++) {
		natsMsg *m = NULL;
		jsPubAck *pa = NULL;
		jsPubOptions_Init(&po);
		po.ExpectLastSeq = expect;
		po.MaxWait = 2000;
		ok = make_msg(n, &n->recs[sent], &m) == NATS_OK &&
		     js_PublishMsg(&pa, n->js, m, &po, &jerr) == NATS_OK;
		if (ok)
			expect = pa->Sequence;
		natsMsg_Destroy(m);
		jsPubAck_Destroy(pa);
	}
	if (ok) {
		drop_recs(n, n->n_recs);
		n->log_expect = expect;
		atomic_store(&n->broken, false);
		atomic_fetch_add(&n->recoveries, 1);
		nats_log("the change log is whole again: %zu records sent again after stream sequence "
		         "%llu", sent, (unsigned long long)at);
	}
	pthread_mutex_unlock(&n->pub_lock);
}

static uint64_t seq_last_of(natsMsg *m)
{
	const char *v = NULL;
	return natsMsgHeader_Get(m, "Gos-Seq-Last", &v) == NATS_OK && v ? strtoull(v, NULL, 10) : 0;
}

static int cmp_seq_last(const void *a, const void *b)
{
	uint64_t x = seq_last_of(*(natsMsg *const *)a), y = seq_last_of(*(natsMsg *const *)b);
	return x < y ? -1 : x > y;
}

/* Change-log publishes whose acks did not come (the connection or the
 * stream's leader was lost with them): sent again in log order, each with
 * its message id (stored once) and its expected last sequence. */
static void resend_pending(struct gos_nats_ingest *n)
{
	pthread_mutex_lock(&n->pub_lock);
	natsMsgList list = {0};
	if (js_PublishAsyncGetPendingList(&list, n->js) == NATS_OK && list.Count) {
		qsort(list.Msgs, (size_t)list.Count, sizeof(*list.Msgs), cmp_seq_last);
		int sent = 0;
		for (int i = 0; i < list.Count; i++)
			if (js_PublishMsgAsync(n->js, &list.Msgs[i], NULL) == NATS_OK)
				sent++;
		atomic_fetch_add(&n->resent, (uint64_t)sent);
		nats_log("%d change-log publishes had no ack in time: sent again", sent);
	}
	natsMsgList_Destroy(&list);
	pthread_mutex_unlock(&n->pub_lock);
}

/* Acks the batches the core has applied, and answers syncs. */
static void ack_done(struct gos_nats_ingest *n)
{
	if (atomic_load(&n->broken) && !atomic_load(&n->fenced))
		recover(n);
	/* An event is acked (a new leader never gets it again) only once its
	 * change-log record is stored: batches whose records went out, once
	 * every publish in flight is answered with no failure. */
	uint64_t done = atomic_load(&n->done), out = atomic_load(&n->published_id);
	if (out < done)
		done = out;
	pthread_mutex_lock(&n->pub_lock);
	size_t upto = n->n_recs;
	pthread_mutex_unlock(&n->pub_lock);
	if (done <= n->acked && !upto)
		return;
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 2000;
	natsStatus s = js_PublishAsyncComplete(n->js, &po);
	if (s == NATS_TIMEOUT)
		resend_pending(n);
	if (s != NATS_OK)
		return;   /* JetStream slow or away: acked later, or delivered again */
	if (atomic_load(&n->fenced) || atomic_load(&n->broken))
		return;   /* not (known) in the log: recovered first, or the next leader's */
	pthread_mutex_lock(&n->pub_lock);
	if (!atomic_load(&n->broken))
		drop_recs(n, upto < n->n_recs ? upto : n->n_recs);
	pthread_mutex_unlock(&n->pub_lock);
	if (done <= n->acked)
		return;
	while (n->acked < done) {
		struct pend *p = &n->ring[++n->acked % RING];
		if (p->list.Count) {
			/* each one: AckAll would also ack what a killed predecessor had
			 * fetched and JetStream has not delivered again yet */
			for (int i = 0; i < p->list.Count; i++) {
				natsMsg *m = p->list.Msgs[i];
				jsMsgMetaData *md = NULL;
				if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
					win_set(n, md->Sequence.Stream, SEQ_DONE);
					jsMsgMetaData_Destroy(md);
				}
				natsMsg_Ack(m, NULL);
			}
			natsMsgList_Destroy(&p->list);
			p->list = (natsMsgList){0};
		}
	}
}

/* Syncs are answered from the consumer's ack floor: every message up to it
 * is acked (applied and in the log, by us or a predecessor). Our own acks
 * are not contiguous (a message the previous leader held comes again only
 * after AckWait), so the last one acked would answer too early. */
static void check_floor(struct gos_nats_ingest *n)
{
	pthread_mutex_lock(&n->lock);
	size_t waiting = n->n_waiters;
	pthread_mutex_unlock(&n->lock);
	if (!waiting || atomic_load(&n->fenced))
		return;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 1000;
	if (js_GetConsumerInfo(&ci, n->js, n->stream, NATS_CONSUMER, &jo, &jerr) != NATS_OK)
		return;
	uint64_t floor = ci->AckFloor.Stream;
	jsConsumerInfo_Destroy(ci);
	pthread_mutex_lock(&n->lock);
	if (floor > n->applied_seq)
		n->applied_seq = floor;
	answer_waiters(n);
	pthread_mutex_unlock(&n->lock);
}

static void reject(struct gos_nats_ingest *n, natsMsg *m, const struct gos_parse_error *e)
{
	atomic_fetch_add(&n->rejected, 1);
	const char *reply = NULL;
	if (natsMsgHeader_Get(m, "Gos-Reply", &reply) != NATS_OK || !reply)
		return;
	jsMsgMetaData *md = NULL;
	uint64_t line = 0;
	if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
		line = md->Sequence.Stream;   /* the "line" is the event's stream sequence */
		jsMsgMetaData_Destroy(md);
	}
	char *text = gos_protocol_error_line(line, e);
	if (!text)
		abort();
	natsConnection_PublishString(n->nc, reply, text);
	free(text);
}

/* Parses a fetched list into one batch ending in its sync marker and queues
 * it. False when the queue is closed. */
static bool queue_list(struct gos_nats_ingest *n, natsMsgList *list)
{
	/* a slot is free once its batch is acked (not only applied: its
	 * messages are acked from the slot) */
	while (n->next_id - n->acked >= RING - 1) {
		ack_done(n);   /* the core or JetStream is behind: wait (back-pressure) */
		if (atomic_load(&n->stop))
			return false;
		usleep(1000);
	}
	struct gos_batch *b = gos_queue_get_batch(n->o.queue);
	b->t_in_ns = gos_now_ns();   /* the batch's arrival (gos_pipeline) */
	for (int i = 0; i < list->Count; i++) {
		natsMsg *m = list->Msgs[i];
		const char *p = natsMsg_GetData(m);
		size_t len = (size_t)natsMsg_GetDataLength(m);
		atomic_fetch_add(&n->messages, 1);
		uint64_t sseq = 0;
		jsMsgMetaData *md = NULL;
		if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
			sseq = md->Sequence.Stream;
			jsMsgMetaData_Destroy(md);
		}
		int st = sseq ? win_get(n, sseq) : SEQ_NEW;
		if (st == SEQ_DONE) {
			/* applied and in the change log (by us, or by the previous
			 * leader, which died before acking it): its ack again */
			natsMsg_Ack(m, NULL);
			atomic_fetch_add(&n->skipped, 1);
			continue;
		}
		if (st == SEQ_QUEUED) {
			/* in a batch of ours not acked yet: that batch's ack covers it
			 * (if that ack is lost, JetStream delivers it once more) */
			atomic_fetch_add(&n->skipped, 1);
			continue;
		}
		if (sseq)
			win_set(n, sseq, SEQ_QUEUED);
		struct gos_event *ev = gos_batch_push(b);
		struct gos_parse_error err = {0};
		if (!gos_protocol_parse(p, len, ev, &b->arena, &err)) {
			b->n--;
			reject(n, m, &err);
		} else if (ev->type == GOS_EV_SYNC) {
			b->n--;   /* a sync over NATS is the NAME.sync request */
		} else if (ev->type == GOS_EV_SCREENSHOT) {
			b->n--;
			err.reason = GOS_REJECT_UNKNOWN_TYPE;
			snprintf(err.message, sizeof(err.message),
			         "\"screenshot\" is taken on the compositor's socket, not over NATS");
			reject(n, m, &err);
		} else {
			atomic_fetch_add(&n->accepted, 1);
			while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r' ||
			               p[len - 1] == '\n'))
				len--;
			while (len && (p[0] == ' ' || p[0] == '\t'))
				p++, len--;
			ev->raw = gos_arena_strndup(&b->arena, p, len);
			ev->raw_len = (uint32_t)len;
			ev->src_seq = sseq;
		}
	}
	uint64_t id = n->next_id++;
	struct gos_event *mark = gos_batch_push(b);
	mark->type = GOS_EV_SYNC;
	mark->sync.conn = GOS_NATS_CONN_BIT | id;
	struct pend *pe = &n->ring[id % RING];
	pe->list = *list;   /* kept for their acks */
	*list = (natsMsgList){0};
	return gos_queue_push(n->o.queue, b);
}

static void *ingest_main(void *arg)
{
	struct gos_nats_ingest *n = arg;
	pthread_setname_np(pthread_self(), "gos-nats");
	if (!setup(n))
		return NULL;
	double floor_at = 0;
	while (!atomic_load(&n->stop)) {
		ack_done(n);
		if (gos_now_s() - floor_at >= 0.05) {
			check_floor(n);
			floor_at = gos_now_s();
		}
		/* What is there now, without waiting for a full batch (latency);
		 * when nothing is, wait up to 100 ms for the next message. */
		natsMsgList list = {0};
		jsErrCode jerr = 0;
		jsFetchRequest fr;
		jsFetchRequest_Init(&fr);
		fr.Batch = (int)n->o.batch_events;
		fr.NoWait = true;
		fr.Expires = 100LL * 1000000;
		natsStatus s = natsSubscription_FetchRequest(&list, n->pull, &fr);
		if (s != NATS_OK || list.Count == 0) {
			natsMsgList_Destroy(&list);
			list = (natsMsgList){0};
			s = natsSubscription_Fetch(&list, n->pull, 1, 100, &jerr);
		}
		if (s == NATS_OK && list.Count > 0) {
			if (!queue_list(n, &list))
				break;
		} else {
			natsMsgList_Destroy(&list);
			if (s != NATS_TIMEOUT && s != NATS_OK)
				usleep(100 * 1000);   /* disconnected: libnats reconnects */
		}
	}
	return NULL;
}

void gos_nats_ingest_applied(struct gos_nats_ingest *n, uint64_t conn, uint64_t tokens)
{
	uint64_t id = conn & ~GOS_NATS_CONN_BIT;
	atomic_store(&n->tokens, tokens);
	uint64_t cur = atomic_load(&n->done);
	while (id > cur && !atomic_compare_exchange_weak(&n->done, &cur, id))
		;
}

struct gos_nats_ingest *gos_nats_ingest_create(const struct gos_nats_ingest_opts *opts, char *err,
                                               size_t errlen)
{
	const char *cluster = opts->cluster ? opts->cluster : "gos";
	if (!opts->url || !opts->queue) {
		snprintf(err, errlen, "the NATS ingest needs a URL and a queue");
		return NULL;
	}
	if (!gos_nats_check_cluster(cluster, err, errlen))
		return NULL;
	struct gos_nats_ingest *n = calloc(1, sizeof(*n));
	if (!n)
		abort();
	n->o = *opts;
	if (!n->o.batch_events)
		n->o.batch_events = 1024;
	snprintf(n->cluster, sizeof(n->cluster), "%s", cluster);
	nats_stream_name(cluster, n->stream, sizeof(n->stream));
	snprintf(n->log_subject, sizeof(n->log_subject), "%s.log", cluster);
	pthread_mutex_init(&n->lock, NULL);
	pthread_mutex_init(&n->pub_lock, NULL);
	n->next_id = 1;   /* id 0: none applied yet */
	n->log_expect = opts->log_seq;
	n->win = calloc(WIN, 1);
	if (!n->win)
		abort();
	for (size_t i = 0; i < opts->n_skip; i++)
		if (opts->skip[i] >= n->win_base + WIN / 2)
			n->win_base = opts->skip[i] - WIN / 2;
	for (size_t i = 0; i < opts->n_skip; i++)
		win_set(n, opts->skip[i], SEQ_DONE);
	natsStatus s = nats_connect_watched(opts->url, &n->watch, &n->nc);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.ErrHandler = on_publish_error;
	jo.PublishAsync.ErrHandlerClosure = n;
	if (s == NATS_OK)
		s = natsConnection_JetStream(&n->js, n->nc, &jo);
	if (s != NATS_OK) {
		snprintf(err, errlen, "NATS at %s: %s", opts->url, natsStatus_GetText(s));
		gos_nats_ingest_destroy(n);
		return NULL;
	}
	if (pthread_create(&n->th, NULL, ingest_main, n) != 0) {
		snprintf(err, errlen, "cannot start the NATS ingest thread");
		gos_nats_ingest_destroy(n);
		return NULL;
	}
	n->started = true;
	return n;
}

void gos_nats_ingest_destroy(struct gos_nats_ingest *n)
{
	if (!n)
		return;
	atomic_store(&n->stop, true);
	if (n->started)
		pthread_join(n->th, NULL);
	ack_done(n);
	natsSubscription_Destroy(n->sync_sub);
	natsSubscription_Destroy(n->pull);
	for (size_t i = 0; i < RING; i++)
		natsMsgList_Destroy(&n->ring[i].list);
	for (size_t i = 0; i < n->n_waiters; i++)
		free(n->waiters[i].reply);
	jsCtx_Destroy(n->js);
	nats_close_watched(n->nc, &n->watch);
	pthread_mutex_destroy(&n->lock);
	pthread_mutex_destroy(&n->pub_lock);
	for (size_t i = 0; i < n->n_recs; i++)
		free(n->recs[i].data);
	free(n->recs);
	free(n->win);
	free(n);
}

void gos_nats_log_publish(struct gos_nats_ingest *n, const struct gos_batch *b, uint64_t seq_start)
{
	if (b->replayed)
		return;   /* read from the log: it is there */
	pthread_mutex_lock(&n->pub_lock);
	if (!atomic_load(&n->fenced) && n->o.lease && !gos_nats_lease_held(n->o.lease))
		fence(n, "the leader lease is no longer held");
	uint64_t prev = b->seq_floor > seq_start ? b->seq_floor : seq_start, batch_id = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct gos_event *ev = &b->ev[i];
		uint64_t last = b->seq_end[i];
		if (ev->type == GOS_EV_SYNC && (ev->sync.conn & GOS_NATS_CONN_BIT))
			batch_id = ev->sync.conn & ~GOS_NATS_CONN_BIT;
		if (ev->type == GOS_EV_SYNC || ev->type == GOS_EV_SCREENSHOT || ev->type == GOS_EV_NONE) {
			prev = last;
			continue;
		}
		if (atomic_load(&n->fenced)) {
			atomic_fetch_add(&n->log_failed, 1);
			prev = last;
			continue;
		}
		struct rec r = {.first = prev + 1, .last = last, .src = ev->src_seq};
		if (ev->raw) {
			r.data = malloc(ev->raw_len ? ev->raw_len : 1);
			if (!r.data)
				abort();
			memcpy(r.data, ev->raw, ev->raw_len);
			r.len = ev->raw_len;
		} else {   /* made in-process (the demo): serialized as the journal does */
			r.data = gos_protocol_serialize(ev);
			r.len = strlen(r.data);
		}
		if (n->n_recs == n->cap_recs) {
			n->cap_recs = n->cap_recs ? n->cap_recs * 2 : 4096;
			n->recs = realloc(n->recs, n->cap_recs * sizeof(*n->recs));
			if (!n->recs)
				abort();
		}
		n->recs[n->n_recs++] = r;
		prev = last;
		if (atomic_load(&n->broken))
			continue;   /* kept: recover() sends it in order */
		natsMsg *m = NULL;
		natsStatus s = make_msg(n, &r, &m);
		jsPubOptions po;
		jsPubOptions_Init(&po);
		/* the fence: each publish expects the one before it to be the
		 * log's last, from the takeover marker on */
		if (n->o.lease)
			po.ExpectLastSeq = n->log_expect;
		if (s == NATS_OK)
			s = js_PublishMsgAsync(n->js, &m, &po);
		natsMsg_Destroy(m);
		if (s == NATS_OK) {
			atomic_fetch_add(&n->log_records, 1);
			n->log_expect++;
		} else {
			atomic_fetch_add(&n->log_failed, 1);
			if (!atomic_exchange(&n->broken, true))
				nats_log("a change-log publish failed (%s): reading the log's end",
				         natsStatus_GetText(s));
		}
	}
	if (batch_id)
		atomic_store(&n->published_id, batch_id);
	pthread_mutex_unlock(&n->pub_lock);
}

void gos_nats_ingest_stats(struct gos_nats_ingest *n, struct gos_nats_ingest_stats *out)
{
	*out = (struct gos_nats_ingest_stats){
		.connected = atomic_load(&n->watch.connected),
		.reconnects = atomic_load(&n->watch.reconnects),
		.messages = atomic_load(&n->messages),
		.accepted = atomic_load(&n->accepted),
		.rejected = atomic_load(&n->rejected),
		.syncs_answered = atomic_load(&n->syncs),
		.log_records = atomic_load(&n->log_records),
		.log_failed = atomic_load(&n->log_failed),
		.skipped = atomic_load(&n->skipped),
		.recoveries = atomic_load(&n->recoveries),
		.fenced = atomic_load(&n->fenced),
		.checkpoints = atomic_load(&n->checkpoints),
		.checkpoint_seq = atomic_load(&n->ckpt_seq),
	};
	pthread_mutex_lock(&n->lock);
	out->applied_stream_seq = n->applied_seq;
	pthread_mutex_unlock(&n->lock);
}

bool gos_nats_log_position(struct gos_nats_ingest *n, uint64_t *pos)
{
	char name[GOS_NATS_CLUSTER_MAX + 16];
	nats_log_stream_name(n->cluster, name, sizeof(name));
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 2000;
	if (js_GetStreamInfo(&si, n->js, name, &jo, &jerr) != NATS_OK)
		return false;
	*pos = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return true;
}

static bool still_leading(struct gos_nats_ingest *n, char *err, size_t errlen)
{
	if (atomic_load(&n->fenced) || (n->o.lease && !gos_nats_lease_held(n->o.lease))) {
		snprintf(err, errlen, "no longer the leader");
		return false;
	}
	return true;
}

bool gos_nats_checkpoint_publish(struct gos_nats_ingest *n, int fd, uint64_t seq, uint64_t log_pos,
                                 char *err, size_t errlen)
{
	if (!nats_ensure_ckpt_stream(n->nc, n->js, n->cluster, err, errlen))
		return false;
	char stream[GOS_NATS_CLUSTER_MAX + 16], data_subj[GOS_NATS_CLUSTER_MAX + 16],
	     index_subj[GOS_NATS_CLUSTER_MAX + 16];
	nats_upper_name(n->cluster, "_CKPT", stream, sizeof(stream));
	snprintf(data_subj, sizeof(data_subj), "%s.ckpt.data", n->cluster);
	snprintf(index_subj, sizeof(index_subj), "%s.ckpt.index", n->cluster);
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || lseek(fd, 0, SEEK_SET) != 0) {
		snprintf(err, errlen, "the map image is empty or unreadable");
		return false;
	}
	uint64_t parts = ((uint64_t)size + NATS_CKPT_CHUNK - 1) / NATS_CKPT_CHUNK, first = 0;
	char *chunk = malloc(NATS_CKPT_CHUNK);
	if (!chunk)
		abort();
	uint32_t crc = 0;
	bool ok = true;
	char seq_s[24], part_s[24], parts_s[24];
	snprintf(seq_s, sizeof(seq_s), "%llu", (unsigned long long)seq);
	snprintf(parts_s, sizeof(parts_s), "%llu", (unsigned long long)parts);
	for (uint64_t i = 0; ok && i < parts; i++) {
		size_t want = i + 1 < parts ? NATS_CKPT_CHUNK : (size_t)size - (size_t)i * NATS_CKPT_CHUNK;
		size_t got = 0;
		while (got < want) {
			ssize_t r = read(fd, chunk + got, want - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got != want || !still_leading(n, err, errlen)) {
			if (got != want)
				snprintf(err, errlen, "reading the map image failed");
			ok = false;
			break;
		}
		crc = gos_crc32c(crc, chunk, got);
		snprintf(part_s, sizeof(part_s), "%llu", (unsigned long long)i);
		natsMsg *m = NULL;
		jsPubAck *pa = NULL;
		jsErrCode jerr = 0;
		natsStatus s = natsMsg_Create(&m, data_subj, NULL, chunk, (int)got);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, "Gos-Ckpt-Seq", seq_s);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, "Gos-Part", part_s);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, "Gos-Parts", parts_s);
		if (s == NATS_OK)
			s = js_PublishMsg(&pa, n->js, m, NULL, &jerr);
		natsMsg_Destroy(m);
		if (s != NATS_OK) {
			snprintf(err, errlen, "publishing part %llu of %llu: %s", (unsigned long long)i,
			         (unsigned long long)parts, natsStatus_GetText(s));
			ok = false;
		} else if (i == 0) {
			first = pa->Sequence;
		} else if (pa->Sequence != first + i) {
			snprintf(err, errlen, "another process wrote to %s meanwhile", stream);
			ok = false;
		}
		jsPubAck_Destroy(pa);
	}
	free(chunk);
	/* the index last, and only while leading: a deposed leader's image
	 * may hold what the log does not */
	if (ok && !still_leading(n, err, errlen))
		ok = false;
	if (ok) {
		char index[256];
		int len = snprintf(index, sizeof(index), "{\"seq\":%llu,\"log_pos\":%llu,\"first\":%llu,"
		                   "\"parts\":%llu,\"bytes\":%lld,\"crc32c\":%u}", (unsigned long long)seq,
		                   (unsigned long long)log_pos, (unsigned long long)first,
		                   (unsigned long long)parts, (long long)size, crc);
		jsPubAck *pa = NULL;
		jsErrCode jerr = 0;
		natsStatus s = js_Publish(&pa, n->js, index_subj, index, len, NULL, &jerr);
		jsPubAck_Destroy(pa);
		if (s != NATS_OK) {
			snprintf(err, errlen, "publishing the checkpoint's index: %s", natsStatus_GetText(s));
			ok = false;
		}
	}
	if (ok) {
		/* the parts of all but this checkpoint and the one before it go */
		if (n->ckpt_prev_first) {
			jsOptions jo;
			jsOptions_Init(&jo);
			jo.Stream.Purge.Subject = data_subj;
			jo.Stream.Purge.Sequence = n->ckpt_prev_first;
			jsErrCode jerr = 0;
			js_PurgeStream(n->js, stream, &jo, &jerr);
		}
		n->ckpt_prev_first = first;
		atomic_fetch_add(&n->checkpoints, 1);
		atomic_store(&n->ckpt_seq, seq);
	}
	return ok;
}
