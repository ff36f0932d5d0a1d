/* gos_ws: named users (ws_internal.h): the table in force and the accounts
 * that outlive reloads, their rate buckets and /metrics families, and the
 * access log's lines. Service thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_buf.h"
#include "gos_metrics.h"
#include "ws_internal.h"

static struct ws_account *account_get(struct gos_ws *ws, const char *name)
{
	for (struct ws_account *a = ws->accounts; a; a = a->next)
		if (!strcmp(a->name, name))
			return a;
	struct ws_account *a = calloc(1, sizeof(*a));
	if (!a)
		abort();
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->next = ws->accounts;
	ws->accounts = a;
	return a;
}

void ws_users_install(struct gos_ws *ws, struct gos_users *u)
{
	for (struct ws_account *a = ws->accounts; a; a = a->next) {
		a->present = false;
		a->role = GOS_ROLE_NONE;
		memset(a->token, 0, sizeof(a->token));
	}
	free(ws->acct);
	ws->acct = NULL;
	gos_users_destroy(ws->users);
	ws->users = u;
	if (!u)
		return;
	ws->acct = calloc(u->n ? u->n : 1, sizeof(*ws->acct));
	if (!ws->acct)
		abort();
	for (size_t i = 0; i < u->n; i++) {
		const struct gos_user *e = &u->user[i];
		struct ws_account *a = account_get(ws, e->name);
		a->present = true;
		a->role = e->role;
		memcpy(a->token, e->token, e->token_len + 1);
		if (a->rate != e->rate || a->burst != e->burst) {
			a->rate = e->rate;
			a->burst = e->burst;
			a->bucket = e->burst;
			a->bucket_ms = 0;
		}
		ws->acct[i] = a;
	}
}

void ws_users_free(struct gos_ws *ws)
{
	ws_users_install(ws, NULL);
	while (ws->accounts) {
		struct ws_account *a = ws->accounts;
		ws->accounts = a->next;
		memset(a, 0, sizeof(*a));
		free(a);
	}
}

bool ws_account_charge(struct ws_account *a, uint64_t now)
{
	if (!a || !a->rate)
		return true;
	if (a->bucket_ms) {
		a->bucket += (double)(now - a->bucket_ms) * a->rate / 1000.0;
		if (a->bucket > a->burst)
			a->bucket = a->burst;
	} else {
		a->bucket = a->burst;
	}
	a->bucket_ms = now;
	if (a->bucket >= 1.0) {
		a->bucket -= 1.0;
		return true;
	}
	a->limited++;
	return false;
}

/* user="NAME" with the label value escaped (names are plain, but a label
 * is no place to trust that). */
static void user_label(char *out, size_t cap, const char *name)
{
	size_t n = 0;
	n += (size_t)snprintf(out, cap, "user=\"");
	for (const char *p = name; *p && n + 4 < cap; p++) {
		if (*p == '"' || *p == '\\')
			out[n++] = '\\';
		out[n++] = *p == '\n' ? 'n' : *p;
	}
	snprintf(out + n, cap - n, "\"");
}

void ws_users_metrics(struct gos_ws *ws, struct gos_buf *t)
{
	static const struct { const char *name, *type, *help; size_t off; } m[] = {
#define M(n, ty, h, f) {n, ty, h, offsetof(struct ws_account, f)}
		M("gos_user_requests_total", "counter", "HTTP requests and viewer upgrades by user (--users-file; anonymous: --auth-token-file).", requests),
		M("gos_user_viewers", "gauge", "Viewers connected now, by user.", viewers),
		M("gos_user_inbound_messages_total", "counter", "Messages received from the user's viewers.", inbound),
		M("gos_user_rate_limited_total", "counter", "The user's viewer messages over its rate= (dropped).", limited),
		M("gos_user_forbidden_total", "counter", "Requests refused (403) for the user's role.", forbidden),
		M("gos_user_sent_bytes_total", "counter", "Payload bytes written to the user's viewers.", bytes_sent),
#undef M
	};
	if (!ws->auth)
		return;
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		gos_metrics_family(t, m[i].name, m[i].type, m[i].help);
		for (const struct ws_account *a = ws->accounts; a; a = a->next) {
			char lab[GOS_USER_NAME_MAX * 2 + 16];
			user_label(lab, sizeof(lab), a->name);
			gos_metrics_sample_u64(t, m[i].name, lab,
			                       *(const uint64_t *)((const char *)a + m[i].off));
		}
	}
}

void ws_access_log(struct gos_ws *ws, double start_wall, const struct ws_account *a,
                   const char *addr, const char *path, uint64_t session, unsigned status,
                   int close, uint64_t bytes, int64_t bytes_in, uint64_t duration_ms)
{
	if (!ws->alog)
		return;
	time_t secs = (time_t)start_wall;
	struct tm tm;
	char when[32];
	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	struct gos_buf b = {0};
	gos_buf_printf(&b, "{\"time\":\"%s.%03dZ\",\"user\":", when,
	               (int)((start_wall - (double)secs) * 1000.0) % 1000);
	if (a)
		gos_buf_json_str(&b, a->name);
	else
		gos_buf_puts(&b, "null");
	gos_buf_puts(&b, ",\"address\":");
	gos_buf_json_str(&b, addr && addr[0] ? addr : "");
	gos_buf_puts(&b, ",\"path\":");
	gos_buf_json_str(&b, path);
	if (session)
		gos_buf_printf(&b, ",\"session\":%llu", (unsigned long long)session);
	gos_buf_printf(&b, ",\"status\":%u", status);
	if (close)
		gos_buf_printf(&b, ",\"close\":%d", close);
	gos_buf_printf(&b, ",\"bytes\":%llu", (unsigned long long)bytes);
	if (bytes_in >= 0)
		gos_buf_printf(&b, ",\"bytes_in\":%lld", (long long)bytes_in);
	gos_buf_printf(&b, ",\"duration_ms\":%llu}\n", (unsigned long long)duration_ms);
	/* one write per line: lines from a log rotated meanwhile stay whole */
	fwrite(b.data, 1, b.len, ws->alog);
	fflush(ws->alog);
	gos_buf_finish(&b);
}
