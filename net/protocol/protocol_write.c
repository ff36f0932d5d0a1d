/* The protocol's serializers (gos_protocol.h): events back to their wire
 * form, and the error, sync and screenshot reply lines. They write through
 * gos_buf, the JSON writer the broadcaster uses too. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_protocol.h"

/* s must be a string literal (sizeof gives its length). */
#define jw_lit(w, s) gos_buf_append((w), "" s, sizeof(s) - 1)

static void jw_str(struct gos_buf *w, const char *s)
{
	gos_buf_json_str(w, s ? s : "");
}

static bool has_text(const char *s)
{
	return s && s[0];
}

static void write_token(struct gos_buf *w, const struct gos_token_ev *t)
{
	jw_lit(w, "{\"type\":\"token_activation\",\"token_id\":");
	jw_str(w, t->id);
	jw_lit(w, ",\"token_text\":");
	jw_str(w, t->text);
	jw_lit(w, ",\"timestamp\":");
	gos_buf_json_f64(w, t->timestamp);
	if (!isnan(t->confidence)) {
		jw_lit(w, ",\"confidence\":");
		gos_buf_json_f32(w, t->confidence);
	}
	if (t->has_position) {
		jw_lit(w, ",\"position\":[");
		gos_buf_json_f32(w, t->x);
		jw_lit(w, ",");
		gos_buf_json_f32(w, t->y);
		jw_lit(w, "]");
	}
	if (has_text(t->stream)) {
		jw_lit(w, ",\"stream\":");
		jw_str(w, t->stream);
	}
	if (!isnan(t->logprob)) {
		jw_lit(w, ",\"logprob\":");
		gos_buf_json_f32(w, t->logprob);
	}
	if (t->n_alts) {
		jw_lit(w, ",\"top_logprobs\":[");
		for (uint32_t i = 0; i < t->n_alts; i++) {
			jw_lit(w, "{\"token\":");
			jw_str(w, t->alts[i].token);
			jw_lit(w, ",\"logprob\":");
			gos_buf_json_f32(w, t->alts[i].logprob);
			jw_lit(w, "}");
			if (i + 1 < t->n_alts)
				jw_lit(w, ",");
		}
		jw_lit(w, "]");
	}
	jw_lit(w, "}");
}

static void write_state(struct gos_buf *w, const struct gos_state_ev *s)
{
	jw_lit(w, "{\"type\":\"neural_state\",\"state\":");
	jw_str(w, s->state);
	if (s->tokens_processed >= 0) {
		jw_lit(w, ",\"tokens_processed\":");
		gos_buf_u64(w, (uint64_t)s->tokens_processed);
	}
	if (s->total_tokens >= 0) {
		jw_lit(w, ",\"total_tokens\":");
		gos_buf_u64(w, (uint64_t)s->total_tokens);
	}
	if (!isnan(s->elapsed_ms)) {
		jw_lit(w, ",\"elapsed_ms\":");
		gos_buf_json_f64(w, s->elapsed_ms);
	}
	if (!isnan(s->ttft_ms)) {
		jw_lit(w, ",\"ttft_ms\":");
		gos_buf_json_f64(w, s->ttft_ms);
	}
	if (s->finish_reason) {
		jw_lit(w, ",\"finish_reason\":");
		jw_str(w, s->finish_reason);
	}
	if (s->message) {
		jw_lit(w, ",\"message\":");
		jw_str(w, s->message);
	}
	if (s->model) {
		jw_lit(w, ",\"model\":");
		jw_str(w, s->model);
	}
	if (has_text(s->stream)) {
		jw_lit(w, ",\"stream\":");
		jw_str(w, s->stream);
	}
	jw_lit(w, "}");
}

static void write_viz(struct gos_buf *w, const struct gos_viz_ev *z)
{
	jw_lit(w, "{\"type\":\"token_visualization\",\"tokens\":[");
	for (uint32_t i = 0; i < z->n_tokens; i++) {
		const struct gos_viz_token *t = &z->tokens[i];
		jw_lit(w, "{\"id\":");
		jw_str(w, t->id);
		jw_lit(w, ",\"text\":");
		jw_str(w, t->text);
		jw_lit(w, ",\"x\":");
		gos_buf_json_f32(w, t->x);
		jw_lit(w, ",\"y\":");
		gos_buf_json_f32(w, t->y);
		if (!isnan(t->confidence)) {
			jw_lit(w, ",\"confidence\":");
			gos_buf_json_f32(w, t->confidence);
		}
		if (has_text(t->stream)) {
			jw_lit(w, ",\"stream\":");
			jw_str(w, t->stream);
		}
		jw_lit(w, "}");
		if (i + 1 < z->n_tokens)
			jw_lit(w, ",");
	}
	jw_lit(w, "]}");
}

bool gos_protocol_write(struct gos_buf *w, const struct gos_event *ev)
{
	switch (ev->type) {
	case GOS_EV_TOKEN: write_token(w, &ev->token); break;
	case GOS_EV_STATE: write_state(w, &ev->state); break;
	case GOS_EV_VIZ: write_viz(w, &ev->viz); break;
	case GOS_EV_SYNC: jw_lit(w, "{\"type\":\"sync\"}"); break;
	case GOS_EV_SCREENSHOT:
		jw_lit(w, "{\"type\":\"screenshot\",\"path\":");
		jw_str(w, ev->shot.path ? ev->shot.path : "");
		if (ev->shot.fit)
			jw_lit(w, ",\"fit\":true");
		jw_lit(w, "}");
		break;
	case GOS_EV_NONE:
	case GOS_EV_COUNT_: return false;
	}
	return true;
}

char *gos_protocol_serialize(const struct gos_event *ev)
{
	struct gos_buf w = {0};
	if (!gos_protocol_write(&w, ev))
		return NULL;
	return gos_buf_take(&w);
}

char *gos_protocol_error_line(uint64_t line_no, const struct gos_parse_error *err)
{
	struct gos_buf w = {0};
	jw_lit(&w, "{\"type\":\"error\",\"line\":");
	gos_buf_u64(&w, line_no);
	jw_lit(&w, ",\"reason\":");
	jw_str(&w, err->message);
	jw_lit(&w, ",\"code\":");
	jw_str(&w, gos_reject_name(err->reason));
	jw_lit(&w, "}");
	return gos_buf_take(&w);
}

char *gos_protocol_sync_reply(uint64_t applied, uint64_t rejected, uint64_t tokens)
{
	struct gos_buf w = {0};
	jw_lit(&w, "{\"type\":\"sync\",\"applied\":");
	gos_buf_u64(&w, applied);
	jw_lit(&w, ",\"rejected\":");
	gos_buf_u64(&w, rejected);
	jw_lit(&w, ",\"tokens\":");
	gos_buf_u64(&w, tokens);
	jw_lit(&w, "}");
	return gos_buf_take(&w);
}

char *gos_protocol_screenshot_reply(const char *path, bool ok, uint32_t width, uint32_t height,
                                    uint64_t tokens, const char *reason)
{
	struct gos_buf w = {0};
	jw_lit(&w, "{\"type\":\"screenshot\",\"path\":");
	jw_str(&w, path ? path : "");
	if (ok) {
		jw_lit(&w, ",\"ok\":true,\"width\":");
		gos_buf_u64(&w, width);
		jw_lit(&w, ",\"height\":");
		gos_buf_u64(&w, height);
		jw_lit(&w, ",\"tokens\":");
		gos_buf_u64(&w, tokens);
	} else {
		jw_lit(&w, ",\"ok\":false,\"reason\":");
		jw_str(&w, reason ? reason : "unknown failure");
	}
	jw_lit(&w, "}");
	return gos_buf_take(&w);
}
