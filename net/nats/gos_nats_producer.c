/* A producer publishing to gos over NATS JetStream (gos_nats.h). */
#include <cjson/cJSON.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_nats.h"
#include "nats_internal.h"

struct gos_nats_producer {
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *errors;       /* NAME.reply.<id>, read after the sync reply */
	char cluster[GOS_NATS_CLUSTER_MAX + 1];
	char id[48];
	char reply_subject[128];
	uint64_t sent, rejected;
	gos_client_line_fn on_line;
	void *ctx;
	bool failed;
	char why[256];
	_Atomic double retry_since;     /* pub_err: the first transient failure since the last sync */
	atomic_uint_fast64_t retries;
};

/* A publish JetStream refused (on libnats's thread). No responder or no
 * answer in time (a NATS node died and the stream is electing a new leader,
 * a server restarting): sent again, the same message id (stored once), for
 * up to a minute of such failures in a row. Else the sync reports it. */
static void pub_err(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	struct gos_nats_producer *p = closure;
	bool transient = pae->Err == NATS_NO_RESPONDERS || pae->Err == NATS_TIMEOUT ||
	                 pae->ErrCode == JSClusterNotAvailErr || pae->ErrCode == JSStreamOfflineErr;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
	if (transient && !p->failed && pae->Msg) {
		if (p->retry_since == 0)
			p->retry_since = now;
		if (now - p->retry_since < 60.0) {
			usleep(50 * 1000);
			if (js_PublishMsgAsync(js, &pae->Msg, NULL) == NATS_OK) {
				p->retries++;
				return;
			}
		}
	}
	if (!p->failed)
		snprintf(p->why, sizeof(p->why), "JetStream refused an event: %s",
		         pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
	p->failed = true;
}

struct gos_nats_producer *gos_nats_producer_connect(const char *url, const char *cluster,
                                                    char *err, size_t errlen)
{
	if (!cluster)
		cluster = "gos";
	if (!gos_nats_check_cluster(cluster, err, errlen))
		return NULL;
	struct gos_nats_producer *p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	snprintf(p->cluster, sizeof(p->cluster), "%s", cluster);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(p->id, sizeof(p->id), "p%lx%lx%x", (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec,
	         (unsigned)getpid());
	snprintf(p->reply_subject, sizeof(p->reply_subject), "%s.reply.%s", cluster, p->id);
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = nats_set_servers(o, url);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, 60);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 500);
	if (s == NATS_OK)
		s = natsConnection_Connect(&p->nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		snprintf(err, errlen, "cannot reach NATS at %s: %s", url, natsStatus_GetText(s));
		gos_nats_producer_close(p);
		return NULL;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = 4096;   /* publishes wait when this many are unacked, */
	jo.PublishAsync.StallWait = 60000;   /* for as long as JetStream takes (back-pressure) */
	jo.PublishAsync.ErrHandler = pub_err;
	jo.PublishAsync.ErrHandlerClosure = p;
	s = natsConnection_JetStream(&p->js, p->nc, &jo);
	/* the stream may not exist yet (no compositor ever ran): events wait in it */
	/* JetStream may be electing its leaders (a cluster starting, a node
	 * lost): its answers are retried for a while */
	bool ensured = false;
	for (int tries = 0; s == NATS_OK && !ensured && tries < 20; tries++) {
		ensured = nats_ensure_stream(p->nc, p->js, cluster, err, errlen);
		if (!ensured)
			usleep(500 * 1000);
	}
	if (s == NATS_OK && !ensured) {
		gos_nats_producer_close(p);
		return NULL;
	}
	if (s == NATS_OK)
		s = natsConnection_SubscribeSync(&p->errors, p->nc, p->reply_subject);
	if (s != NATS_OK) {
		snprintf(err, errlen, "NATS at %s: %s", url, natsStatus_GetText(s));
		gos_nats_producer_close(p);
		return NULL;
	}
	return p;
}

void gos_nats_producer_close(struct gos_nats_producer *p)
{
	if (!p)
		return;
	natsSubscription_Destroy(p->errors);
	jsCtx_Destroy(p->js);
	natsConnection_Destroy(p->nc);
	free(p);
}

void gos_nats_producer_on_line(struct gos_nats_producer *p, gos_client_line_fn fn, void *ctx)
{
	p->on_line = fn;
	p->ctx = ctx;
}

bool gos_nats_producer_send(struct gos_nats_producer *p, const char *line, size_t len)
{
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (!len)
		return true;
	/* the subject names the event's stream ("_": none, or not a token event) */
	const char *stream = "";
	size_t sl = 0;
	cJSON *j = cJSON_ParseWithLength(line, len);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stream");
	if (cJSON_IsString(st)) {
		stream = st->valuestring;
		sl = strlen(stream);
	}
	char subject[NATS_SUBJECT_MAX], msg_id[96];
	nats_ingest_subject(p->cluster, stream, sl, subject, sizeof(subject));
	cJSON_Delete(j);
	natsMsg *m = NULL;
	natsStatus s = natsMsg_Create(&m, subject, NULL, line, (int)len);
	snprintf(msg_id, sizeof(msg_id), "%s-%llu", p->id, (unsigned long long)p->sent);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Gos-Reply", p->reply_subject);
	if (s == NATS_OK)
		s = js_PublishMsgAsync(p->js, &m, NULL);   /* takes m on success */
	natsMsg_Destroy(m);
	if (s != NATS_OK) {
		p->failed = true;
		snprintf(p->why, sizeof(p->why), "publishing to %.120s failed: %s", subject,
		         natsStatus_GetText(s));
		return false;
	}
	p->sent++;
	return true;
}

/* Hands the error answers received so far to on_line. */
static void drain_errors(struct gos_nats_producer *p)
{
	natsMsg *m = NULL;
	while (natsSubscription_NextMsg(&m, p->errors, 0) == NATS_OK && m) {
		p->rejected++;
		if (p->on_line)
			p->on_line(p->ctx, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
		m = NULL;
	}
}

bool gos_nats_producer_sync(struct gos_nats_producer *p, int timeout_ms,
                            struct gos_sync_result *out, char *why, size_t whylen)
{
	*out = (struct gos_sync_result){0};
	if (p->failed) {
		snprintf(why, whylen, "%s", p->why);
		return false;
	}
	/* Every publish acked. An ack lost with a connection (a NATS node died)
	 * never comes: what still waits after a while is sent again, the same
	 * message ids (JetStream stores each once). */
	int64_t wait_left = timeout_ms < 0 ? INT64_MAX : timeout_ms;
	natsStatus s;
	for (;;) {
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MaxWait = wait_left < 5000 ? wait_left : 5000;
		s = js_PublishAsyncComplete(p->js, &po);
		if (s != NATS_TIMEOUT || p->failed)
			break;
		wait_left -= po.MaxWait;
		if (wait_left <= 0)
			break;
		natsMsgList pending = {0};
		if (js_PublishAsyncGetPendingList(&pending, p->js) == NATS_OK) {
			for (int i = 0; i < pending.Count; i++)
				if (js_PublishMsgAsync(p->js, &pending.Msgs[i], NULL) == NATS_OK)
					atomic_fetch_add(&p->retries, 1);
			natsMsgList_Destroy(&pending);
		}
	}
	if (p->failed) {
		snprintf(why, whylen, "%s", p->why);
		return false;
	}
	if (s == NATS_OK)
		atomic_store(&p->retry_since, 0.0);
	if (s != NATS_OK) {
		snprintf(why, whylen, "JetStream did not acknowledge every event within the timeout "
		         "(%s)", natsStatus_GetText(s));
		return false;
	}
	/* everything is stored; now: applied? (no compositor running: wait) */
	char req[128];
	int n = snprintf(req, sizeof(req), "{\"producer\":\"%s\"}", p->id);
	char subject[128];
	snprintf(subject, sizeof(subject), "%s.sync", p->cluster);
	int64_t left = timeout_ms < 0 ? INT64_MAX : timeout_ms;
	natsMsg *reply = NULL;
	for (;;) {
		int64_t step = left < 2000 ? left : 2000;
		s = natsConnection_Request(&reply, p->nc, subject, req, n, step);
		if (s == NATS_OK)
			break;
		if (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS) {
			snprintf(why, whylen, "the sync request failed: %s", natsStatus_GetText(s));
			return false;
		}
		if (s == NATS_NO_RESPONDERS)
			usleep((useconds_t)(step < 200 ? step : 200) * 1000);
		left -= step;
		if (left <= 0) {
			snprintf(why, whylen, "every event is stored in JetStream, but no compositor "
			         "confirmed it applied them within %d ms", timeout_ms);
			return false;
		}
	}
	drain_errors(p);
	cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply));
	const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(j, "tokens");
	out->tokens = cJSON_IsNumber(tokens) ? (uint64_t)tokens->valuedouble : 0;
	cJSON_Delete(j);
	natsMsg_Destroy(reply);
	out->rejected = p->rejected;
	out->applied = p->sent - p->rejected;
	return true;
}
