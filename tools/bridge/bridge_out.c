/* gos-bridge, the compositor side: what the jobs produce becomes ingest
 * lines (token_activation, neural_state) in a bounded ring; they are written
 * to the compositor's socket with a sync barrier now and then and let go
 * once its reply confirms them. While the compositor is away the ring keeps
 * the newest --buffer lines and the connection is retried; what was not
 * confirmed is sent again. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "bridge.h"
#include "gos_nats.h"
#include "gos_llm.h"
#include "gos_protocol.h"
#include "gos_reply.h"
#include "gos_time.h"

#define SYNC_EVERY_LINES 256     /* a sync barrier after this many lines */
#define SYNC_EVERY_S 0.1         /* or after this long with lines unconfirmed */

static void out_on_line(void *ctx, const char *line, size_t len)
{
	struct out *o = ctx;
	struct gos_reply r;
	enum gos_reply_type type = gos_reply_parse(line, len, &r);
	if (type == GOS_REPLY_SYNC) {
		o->result = (struct gos_sync_result){
			.applied = r.sync.applied,
			.rejected = r.sync.rejected,
			.tokens = r.sync.tokens,
		};
		o->have_result = true;
		if (o->outage) {
			o->outage = false;
			bridge_note("reconnected to the compositor at %s: buffered events delivered%s", o->path,
			            o->dropped > o->dropped_reported ? "" : ", none dropped");
			if (o->dropped > o->dropped_reported) {
				bridge_fail("dropped %llu events while the compositor was away "
				            "(the --buffer limit is %zu)",
				            (unsigned long long)(o->dropped - o->dropped_reported), o->cap);
				o->dropped_reported = o->dropped;
			}
		}
		if (o->n_marks) {
			uint64_t m = o->marks[o->mark_head];
			o->mark_head = (o->mark_head + 1) % MAX_MARKS;
			o->n_marks--;
			while (o->base < m) {
				free(o->ring[o->base % o->cap]);
				o->ring[o->base % o->cap] = NULL;
				o->base++;
			}
		}
	} else if (type == GOS_REPLY_ERROR) {
		o->rejected++;
		if (o->rejects_printed++ < 5)
			bridge_fail("the compositor rejected a line: %s",
			            r.error.reason[0] ? r.error.reason : "(no reason given)");
	}
}

bool bridge_out_open(struct bridge *b, char *err, size_t errlen)
{
	struct out *o = &b->out;
	o->cap = b->o.buffer;
	o->path = b->o.socket_path;
	o->ring = calloc(o->cap, sizeof *o->ring);
	if (!o->ring)
		abort();
	if (b->o.nats_url) {
		o->path = b->o.nats_url;
		o->nats = gos_nats_producer_connect(b->o.nats_url, b->o.cluster, err, errlen);
		if (!o->nats)
			return false;
		gos_nats_producer_on_line(o->nats, out_on_line, o);
		return true;
	}
	o->c = gos_client_connect(b->o.socket_path, err, errlen);
	if (!o->c)
		return false;
	gos_client_on_line(o->c, out_on_line, o);
	return true;
}

void bridge_out_finish(struct bridge *b)
{
	struct out *o = &b->out;
	gos_client_close(o->c);
	o->c = NULL;
	gos_nats_producer_close(o->nats);
	o->nats = NULL;
	if (o->ring)
		for (uint64_t s = o->base; s < o->end; s++)
			free(o->ring[s % o->cap]);
	free(o->ring);
	o->ring = NULL;
}

void bridge_out_lost(struct bridge *b)
{
	struct out *o = &b->out;
	gos_client_close(o->c);
	o->c = NULL;
	o->sent = o->base;   /* unconfirmed lines go again after a reconnect */
	o->n_marks = 0;
	o->last_mark = o->base;
	o->have_result = false;   /* counts are per connection */
	o->next_reconnect = gos_now_s() + 0.25;
	if (!o->outage)
		bridge_fail("lost the compositor at %s: keeping up to %zu events and reconnecting",
		            b->o.socket_path, o->cap);
	o->outage = true;
}

static void out_reconnect(struct bridge *b)
{
	struct out *o = &b->out;
	if (o->c || gos_now_s() < o->next_reconnect)
		return;
	char err[512];
	o->c = gos_client_connect(b->o.socket_path, err, sizeof err);
	if (!o->c) {
		o->next_reconnect = gos_now_s() + 0.5;
		return;
	}
	gos_client_on_line(o->c, out_on_line, o);
	o->reconnects++;
}

/* Writes every unsent line, with a sync barrier now and then so that lines
 * the compositor has applied can be let go. force: a barrier now. */
void bridge_out_flush(struct bridge *b, bool force)
{
	struct out *o = &b->out;
	if (o->nats)
		return;   /* published as they come */
	out_reconnect(b);
	if (!o->c)
		return;
	double now = gos_now_s();
	bool want_sync = o->n_marks < MAX_MARKS &&
		(force ? o->last_mark < o->end || (o->n_marks == 0 && !o->have_result)
		       : o->end - o->last_mark >= SYNC_EVERY_LINES ||
		         (o->last_mark < o->end && now - o->last_sync >= SYNC_EVERY_S));
	if (o->sent == o->end && !want_sync)
		return;
	size_t len = 0;
	for (uint64_t s = o->sent; s < o->end; s++)
		len += strlen(o->ring[s % o->cap]);
	static const char sync_line[] = "{\"type\":\"sync\"}\n";
	char *buf = malloc(len + sizeof sync_line);
	if (!buf)
		abort();
	size_t at = 0;
	for (uint64_t s = o->sent; s < o->end; s++) {
		size_t n = strlen(o->ring[s % o->cap]);
		memcpy(buf + at, o->ring[s % o->cap], n);
		at += n;
	}
	if (want_sync) {
		memcpy(buf + at, sync_line, sizeof sync_line - 1);
		at += sizeof sync_line - 1;
		o->marks[(o->mark_head + o->n_marks) % MAX_MARKS] = o->end;
		o->n_marks++;
		o->last_mark = o->end;
		o->last_sync = now;
	}
	uint64_t upto = o->end;
	bool ok = gos_client_send(o->c, buf, at);
	free(buf);
	if (!ok) {
		bridge_out_lost(b);
		return;
	}
	o->sent = upto;
}

/* Takes ownership of line (which ends in '\n'). When the ring is full: with
 * a compositor, waits for it to confirm; without, drops the oldest line. */
void bridge_out_push(struct bridge *b, char *line)
{
	struct out *o = &b->out;
	if (o->nats) {
		/* JetStream keeps it once acked; the drain waits for the acks */
		if (!gos_nats_producer_send(o->nats, line, strlen(line)))
			o->dropped++;
		free(line);
		o->base++;
		o->sent++;
		o->end++;
		return;
	}
	while (o->end - o->base == o->cap) {
		if (o->c) {
			bridge_out_flush(b, true);
			if (o->c && !gos_client_poll(o->c, 100))
				bridge_out_lost(b);
			continue;
		}
		if (o->sent == o->base)
			o->sent++;
		free(o->ring[o->base % o->cap]);
		o->ring[o->base % o->cap] = NULL;
		o->base++;
		o->dropped++;
		if (o->last_mark < o->base)
			o->last_mark = o->base;
	}
	o->ring[o->end % o->cap] = line;
	o->end++;
}

/* Waits until the compositor has confirmed every line, or until timeout_s.
 * Returns true when everything was delivered. */
bool bridge_out_drain(struct bridge *b, double timeout_s)
{
	struct out *o = &b->out;
	if (o->nats) {
		char why[300];
		o->have_result = gos_nats_producer_sync(o->nats, (int)(timeout_s * 1000), &o->result, why,
		                                        sizeof why);
		if (!o->have_result)
			bridge_fail("NATS at %s: %s", o->path, why);
		return o->have_result && !o->dropped;
	}
	double deadline = gos_now_s() + timeout_s;
	while (gos_now_s() < deadline) {
		out_reconnect(b);
		if (o->c && o->base == o->end && o->n_marks == 0 && o->have_result)
			return true;
		bridge_out_flush(b, true);
		if (o->c) {
			if (!gos_client_poll(o->c, 50))
				bridge_out_lost(b);
		} else {
			usleep(50 * 1000);
		}
	}
	return false;
}

char *bridge_with_newline(char *s)
{
	if (!s)
		abort();
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t)
		abort();
	t[n] = '\n';
	t[n + 1] = '\0';
	return t;
}

void bridge_emit_token(struct job *j, const char *text, double logprob,
                       const struct gos_alt *alts, uint32_t n_alts)
{
	struct bridge *b = j->b;
	char id[GOS_MAX_ID + 1];
	snprintf(id, sizeof id, "%s/%llu", j->stream, (unsigned long long)j->tokens);
	struct gos_event ev = {.type = GOS_EV_TOKEN};
	ev.token = (struct gos_token_ev){
		.id = id,
		.text = text,
		.stream = j->stream,
		.timestamp = bridge_wall(),
		.confidence = gos_llm_confidence(logprob),
		.logprob = isnan(logprob) ? NAN : (float)logprob,
		.n_alts = n_alts,
		.alts = alts,
	};
	if (j->tokens == 0)
		j->t_first = gos_now_s();
	j->tokens++;
	bridge_out_push(b, bridge_with_newline(gos_protocol_serialize(&ev)));
	if (b->o.echo) {
		fputs(text, stdout);
		fflush(stdout);
		b->echo_nl = text[strlen(text) - 1] != '\n';
	}
}

/* s into out (cap bytes with the NUL), cut on a UTF-8 boundary. */
static void bridge_clip(char *out, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n >= cap) {
		n = cap - 1;
		while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	out[n] = '\0';
}

/* A neural_state line, with the generation's time to first token, finish
 * reason, error message and model when known. */
void bridge_emit_state(struct job *j, const char *state, const char *message)
{
	struct bridge *b = j->b;
	double now = gos_now_s();
	bool final = !strcmp(state, "done") || !strcmp(state, "error") || !strcmp(state, "cancelled");
	int64_t total = b->o.max_tokens > 0 ? b->o.max_tokens : -1;
	if (!strcmp(state, "done"))
		total = j->completion_tokens >= 0 ? j->completion_tokens : (int64_t)j->tokens;
	struct gos_event ev = {.type = GOS_EV_STATE};
	ev.state = (struct gos_state_ev){
		.state = state,
		.stream = j->stream,
		.tokens_processed = (int64_t)j->tokens,
		.total_tokens = b->o.sse_url ? -1 : total,
		.elapsed_ms = ((final && j->t_end > 0 ? j->t_end : now) - j->t_start) * 1e3,
		.ttft_ms = j->t_first > 0 ? round((j->t_first - j->t_start) * 1e4) / 10 : NAN,
		.finish_reason = j->finish_reason[0] ? j->finish_reason : NULL,
		.message = message && message[0] ? message : NULL,
		.model = b->o.model && b->o.model[0] ? b->o.model : NULL,
	};
	char msg[GOS_MAX_MESSAGE + 1], model[GOS_MAX_MODEL + 1];
	char via[GOS_MAX_MESSAGE + 1];
	if (j->replaying && !ev.state.message)
		ev.state.message = "replayed from the cache";
	if (!b->o.sse_url && b->n_up > 1 && j->attempts > 0) {
		const struct upstream *u = &b->up[j->url];
		snprintf(via, sizeof via, "%s%svia %s (breaker %s)", ev.state.message ? ev.state.message : "",
		         ev.state.message ? " | " : "", u->host, bridge_breaker_name(u));
		ev.state.message = via;
	}
	if (ev.state.message) {  /* within the compositor's limits, cut on a UTF-8 boundary */
		bridge_clip(msg, sizeof msg, ev.state.message);
		ev.state.message = msg;
	}
	if (ev.state.model) {
		bridge_clip(model, sizeof model, ev.state.model);
		ev.state.model = model;
	}
	char *s = gos_protocol_serialize(&ev);
	if (!s)
		abort();
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	if (!line)
		abort();
	memcpy(line, s, n);
	memcpy(line + n, "\n", 2);
	free(s);
	bridge_out_push(b, line);
	j->last_state = now;
}
