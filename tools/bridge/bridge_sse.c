/* gos-bridge --sse: follows any server-sent event stream. Each event of
 * the chosen type (--event) becomes tokens, or is passed on as it is when
 * its data is already an ingest event. A dropped stream is reconnected
 * with Last-Event-ID after the server's retry delay; failed connects back
 * off. (The HTTP attempt itself is bridge_upstream.c's.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "gos_llm.h"
#include "gos_protocol.h"
#include "gos_time.h"

#define SSE_BACKOFF_MAX_S 60.0   /* the longest wait between failed connects */

/* Splits valid UTF-8 text into tokens of at most GOS_MAX_TEXT bytes. NUL
 * bytes (possible in SSE data) become spaces. */
static void emit_text(struct job *j, const char *s, size_t len)
{
	char piece[GOS_MAX_TEXT + 1];
	while (len > 0) {
		size_t n = len < GOS_MAX_TEXT ? len : GOS_MAX_TEXT;
		if (n < len)
			while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
				n--;
		for (size_t i = 0; i < n; i++)
			piece[i] = s[i] ? s[i] : ' ';
		piece[n] = '\0';
		bridge_emit_token(j, piece, NAN, NULL, 0);
		s += n;
		len -= n;
	}
}

void bridge_sse_event(struct job *j, const struct gos_sse_event *ev)
{
	struct bridge *b = j->b;
	if (j->aborted || strcmp(ev->type, b->o.event_type))
		return;
	j->events++;
	if (b->o.max_events && j->events >= b->o.max_events) {
		j->aborted = true;   /* this one is the last */
		snprintf(j->abort_reason, sizeof j->abort_reason, "reached --max-events");
	}
	if (ev->data_len == 0)
		return;
	const char *d = ev->data;
	size_t i = 0;
	while (i < ev->data_len && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n'))
		i++;
	if (i < ev->data_len && d[i] == '{') {
		gos_arena_reset(&j->arena);
		struct gos_event e;
		struct gos_parse_error perr;
		if (gos_protocol_parse(d, ev->data_len, &e, &j->arena, &perr) && e.type != GOS_EV_SYNC &&
		    e.type != GOS_EV_SCREENSHOT) {
			char *line;
			if (memchr(d, '\n', ev->data_len) || memchr(d, '\r', ev->data_len)) {
				line = bridge_with_newline(gos_protocol_serialize(&e));
			} else {
				line = malloc(ev->data_len + 2);
				if (!line)
					abort();
				memcpy(line, d, ev->data_len);
				memcpy(line + ev->data_len, "\n", 2);
			}
			bridge_out_push(b, line);
			j->forwarded++;
			return;
		}
		if (j->malformed++ < 3)
			bridge_note("event data looks like JSON but is not an ingest event (%s): shown as text",
			            e.type == GOS_EV_SYNC ? "a sync barrier is not forwarded" :
			            e.type == GOS_EV_SCREENSHOT ? "a screenshot request is not forwarded" :
			            perr.message);
	}
	emit_text(j, ev->data, ev->data_len);
	if (gos_now_s() - j->last_state >= STATE_EVERY_S)
		bridge_emit_state(j, "processing", NULL);
}

void bridge_sse_attempt_ended(struct job *j, CURLcode res)
{
	struct bridge *b = j->b;
	char what[700];
	double now = gos_now_s();
	if (j->status == 204) {
		/* "No Content": the server says the stream is over; never reconnect. */
		bridge_note("%s answered 204 No Content: the stream is over", b->o.sse_url);
		bridge_job_done(j);
		return;
	}
	if (j->is_sse) {
		j->ever_streamed = true;
		j->sse_failures = 0;
		if (b->stopping || (b->o.max_events && j->events >= b->o.max_events)) {
			bridge_job_done(j);
			return;
		}
		if (j->abort_reason[0])
			snprintf(what, sizeof what, "%s", j->abort_reason);
		else if (res != CURLE_OK)
			snprintf(what, sizeof what, "the event stream broke: %s",
			         j->curl_err[0] ? j->curl_err : curl_easy_strerror(res));
		else
			snprintf(what, sizeof what, "the event stream ended");
		double delay = (double)j->sse_retry_ms / 1e3;
		size_t idl;
		const char *id = gos_sse_last_event_id(j->sse, &idl);
		bridge_note("%s; reconnecting in %.1f s%s%.*s", what, delay, idl ? " with Last-Event-ID " : "",
		            (int)(idl > 64 ? 64 : idl), id);
		j->wake_at = now + delay;
		j->state = JOB_WAIT;
		return;
	}
	int code = EXIT_UNREACHABLE;
	if (j->status == 0) {
		if (j->abort_reason[0])
			snprintf(what, sizeof what, "%s", j->abort_reason);
		else
			snprintf(what, sizeof what, "cannot reach %s: %s", b->o.sse_url,
			         j->curl_err[0] ? j->curl_err : curl_easy_strerror(res));
	} else {
		bridge_describe_http(j, what, sizeof what);
		code = EXIT_HTTP;
		if (j->status / 100 == 2) {
			bridge_job_fail(j, EXIT_NOT_SSE, "%s answered with Content-Type '%s', not an event "
			                "stream (text/event-stream)", b->o.sse_url,
			                j->content_type[0] ? j->content_type : "(none)");
			return;
		}
		if (!bridge_http_retryable(j)) {
			bridge_job_fail(j, EXIT_HTTP, "%s%s", what, j->status / 100 == 5 ?
			                " (not retried: the server says the request is invalid)" : "");
			return;
		}
	}
	if (b->stopping) {
		bridge_job_done(j);
		return;
	}
	j->sse_failures++;
	if (b->o.max_retries >= 0 && j->sse_failures > b->o.max_retries) {
		bridge_job_fail(j, code, "%s (gave up after %d attempts in a row)", what, j->sse_failures);
		return;
	}
	j->retries++;
	b->total_retries++;
	double ra = gos_llm_retry_after(j->retry_after, time(NULL));
	double delay = ra >= 0 ? (ra > 600 ? 600 : ra)
	             : bridge_backoff(j->sse_failures, (double)j->sse_retry_ms / 1e3, SSE_BACKOFF_MAX_S);
	bridge_note("%s; retrying in %.1f s", what, delay);
	j->wake_at = now + delay;
	j->state = JOB_WAIT;
}
