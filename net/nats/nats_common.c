/* Names shared by both sides of gos over NATS (gos_nats.h). */
#include <nats/nats.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_log.h"
#include "gos_nats.h"
#include "nats_internal.h"

bool gos_nats_check_cluster(const char *name, char *err, size_t errlen)
{
	size_t n = name ? strlen(name) : 0;
	bool ok = n >= 1 && n <= GOS_NATS_CLUSTER_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		     name[i] == '_' || name[i] == '-';
	if (!ok)
		snprintf(err, errlen, "a cluster name is 1 to %d of a-z, 0-9, '_' and '-' (not \"%.80s\")",
		         GOS_NATS_CLUSTER_MAX, name ? name : "");
	return ok;
}

void nats_upper_name(const char *cluster, const char *suffix, char *out, size_t len)
{
	size_t i = 0;
	for (; cluster[i] && i + 8 < len; i++)
		out[i] = cluster[i] == '-' ? '_' : (cluster[i] >= 'a' && cluster[i] <= 'z')
		         ? (char)(cluster[i] - 'a' + 'A') : cluster[i];
	snprintf(out + i, len - i, "%s", suffix);
}

void nats_stream_name(const char *cluster, char *out, size_t len)
{
	nats_upper_name(cluster, "_INGEST", out, len);
}

void nats_log_stream_name(const char *cluster, char *out, size_t len)
{
	nats_upper_name(cluster, "_LOG", out, len);
}

void nats_ingest_subject(const char *cluster, const char *stream, size_t n, char *out, size_t len)
{
	int k = snprintf(out, len, "%s.ingest.", cluster);
	size_t at = k > 0 ? (size_t)k : 0;
	if (!n && at + 2 < len)
		out[at++] = '_';
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n && at + 4 < len; i++) {
		unsigned char c = (unsigned char)stream[i];
		/* subject tokens: no '.', '*', '>', white space or control bytes;
		 * '%' escaped so the encoding is one to one */
		if (c <= ' ' || c == '.' || c == '*' || c == '>' || c == '%' || c == 0x7f) {
			out[at++] = '%';
			out[at++] = hex[c >> 4];
			out[at++] = hex[c & 15];
		} else {
			out[at++] = (char)c;
		}
	}
	out[at < len ? at : len - 1] = '\0';
}

static bool ensure(natsConnection *nc, jsCtx *js, const char *name, const char *subjects, char *err,
                   size_t errlen)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, js, name, NULL, &jerr);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return true;
	}
	jsStreamConfig cfg;
	jsStreamConfig_Init(&cfg);
	cfg.Name = name;
	cfg.Subjects = (const char *[]){subjects};
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Retention = js_LimitsPolicy;
	cfg.MaxAge = (int64_t)24 * 3600 * 1000000000LL;   /* a day of events */
	cfg.Duplicates = (int64_t)120 * 1000000000LL;     /* retried publishes stored once */
	cfg.Replicas = nats_replicas(nc);
	s = js_AddStream(&si, js, &cfg, NULL, &jerr);
	if (s == NATS_OK || jerr == JSStreamNameExistErr) {
		jsStreamInfo_Destroy(si);
		return true;
	}
	snprintf(err, errlen, "cannot create the JetStream stream %s (%s): %s%s", name, subjects,
	         natsStatus_GetText(s), jerr ? " (is JetStream on: nats-server -js?)" : "");
	return false;
}

bool nats_ensure_stream(natsConnection *nc, jsCtx *js, const char *cluster, char *err, size_t errlen)
{
	char name[GOS_NATS_CLUSTER_MAX + 16], subjects[GOS_NATS_CLUSTER_MAX + 16];
	nats_stream_name(cluster, name, sizeof(name));
	snprintf(subjects, sizeof(subjects), "%s.ingest.>", cluster);
	return ensure(nc, js, name, subjects, err, errlen);
}

bool nats_ensure_ckpt_stream(natsConnection *nc, jsCtx *js, const char *cluster, char *err,
                             size_t errlen)
{
	char name[GOS_NATS_CLUSTER_MAX + 16], subjects[GOS_NATS_CLUSTER_MAX + 16];
	nats_upper_name(cluster, "_CKPT", name, sizeof(name));
	snprintf(subjects, sizeof(subjects), "%s.ckpt.>", cluster);
	return ensure(nc, js, name, subjects, err, errlen);
}

bool nats_ensure_log_stream(natsConnection *nc, jsCtx *js, const char *cluster, char *err, size_t errlen)
{
	char name[GOS_NATS_CLUSTER_MAX + 16], subjects[GOS_NATS_CLUSTER_MAX + 16];
	nats_log_stream_name(cluster, name, sizeof(name));
	snprintf(subjects, sizeof(subjects), "%s.log", cluster);
	return ensure(nc, js, name, subjects, err, errlen);
}

int nats_replicas(natsConnection *nc)
{
	char **servers = NULL;
	int n = 0;
	if (natsConnection_GetServers(nc, &servers, &n) != NATS_OK)
		return 1;
	for (int i = 0; i < n; i++)
		free(servers[i]);
	free(servers);
	return n >= 3 ? 3 : 1;
}

void nats_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	gos_log_always(GOS_LOG_INFO, "nats", "%s", line);
}

static void on_connected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct nats_watch *w = closure;
	atomic_store(&w->connected, true);
	nats_log("connected to NATS");
}

static void on_closed(natsConnection *nc, void *closure)
{
	(void)nc;
	struct nats_watch *w = closure;
	atomic_store(&w->connected, false);
	atomic_store(&w->closed, true);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct nats_watch *w = closure;
	if (atomic_exchange(&w->connected, false) && !atomic_load(&w->closing))
		nats_log("lost the connection to NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct nats_watch *w = closure;
	atomic_fetch_add(&w->reconnects, 1);
	if (!atomic_exchange(&w->connected, true))
		nats_log("connected to NATS again");
}

natsStatus nats_set_servers(natsOptions *o, const char *url)
{
	char copy[1024];
	const char *list[NATS_SERVERS_MAX];
	int n = 0;
	snprintf(copy, sizeof(copy), "%s", url);
	for (char *p = copy; p && *p && n < NATS_SERVERS_MAX;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		while (*p == ' ')
			p++;
		if (*p)
			list[n++] = p;
		p = comma ? comma + 1 : NULL;
	}
	if (!n)
		return NATS_INVALID_ARG;
	return natsOptions_SetServers(o, list, n);
}

natsStatus nats_connect_watched(const char *url, struct nats_watch *w, natsConnection **nc)
{
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = nats_set_servers(o, url);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 250);
	if (s == NATS_OK)   /* with a callback, the first connect is asynchronous too */
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, w);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, w);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, w);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, w);
	if (s == NATS_OK)
		s = natsConnection_Connect(nc, o);
	if (s == NATS_OK)
		atomic_store(&w->connected, true);
	if (s == NATS_NOT_YET_CONNECTED)
		s = NATS_OK;   /* it goes on trying in the background */
	natsOptions_Destroy(o);
	return s;
}

void nats_close_watched(natsConnection *nc, struct nats_watch *w)
{
	if (!nc)
		return;
	atomic_store(&w->closing, true);
	natsConnection_Close(nc);
	for (int i = 0; i < 500 && !atomic_load(&w->closed); i++)
		usleep(10 * 1000);
	natsConnection_Destroy(nc);
}
