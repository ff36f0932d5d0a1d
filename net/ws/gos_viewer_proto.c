/* The gos.v1 viewer messages, written and read (see gos_viewer_proto.h).
 * The bytes are the protocol: docs/protocol.md shows them, the Python and
 * browser tests compare them, so field order and number formats stay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gos_json.h"
#include "gos_viewer_proto.h"

#ifndef GOS_VERSION
#define GOS_VERSION "0"
#endif

enum { MSG_SNAPSHOT = 1, MSG_TOKEN_VISUALIZATION, MSG_NEURAL_STATE };
enum { LIST_NONE = 0, LIST_TOKENS, LIST_STREAMS };

static void misuse(const char *what)
{
	fprintf(stderr, "gos_viewer: %s (a programming error)\n", what);
	abort();
}

void gos_viewer_hello(struct gos_buf *out)
{
	gos_buf_puts(out, "{\"type\":\"hello\",\"protocol\":\"" GOS_VIEWER_PROTOCOL "\","
	             "\"protocol_version\":");
	gos_buf_u64(out, GOS_VIEWER_PROTOCOL_VERSION);
	gos_buf_puts(out, ",\"server\":\"gos\",\"server_version\":\"" GOS_VERSION "\"}");
}

void gos_viewer_resync(struct gos_buf *out)
{
	gos_buf_puts(out, "{\"type\":\"resync\"}");
}

void gos_viewer_pong(struct gos_buf *out, double t)
{
	gos_buf_printf(out, "{\"type\":\"pong\",\"t\":%.17g}", t);
}

static void begin(struct gos_viewer_writer *w, struct gos_buf *out, int kind, const char *type)
{
	*w = (struct gos_viewer_writer){.out = out, .kind = kind};
	gos_buf_puts(out, "{\"type\":\"");
	gos_buf_puts(out, type);
	gos_buf_puts(out, "\",");
}

static void since_seq(struct gos_buf *out, uint64_t since, uint64_t seq)
{
	gos_buf_puts(out, "\"since\":");
	gos_buf_u64(out, since);
	gos_buf_puts(out, ",\"seq\":");
	gos_buf_u64(out, seq);
}

void gos_viewer_snapshot_begin(struct gos_viewer_writer *w, struct gos_buf *out, uint64_t seq)
{
	begin(w, out, MSG_SNAPSHOT, "snapshot");
	gos_buf_puts(out, "\"seq\":");
	gos_buf_u64(out, seq);
	gos_buf_puts(out, ",\"tokens\":[");
	w->list = LIST_TOKENS;
}

void gos_viewer_token_visualization_begin(struct gos_viewer_writer *w, struct gos_buf *out,
                                          uint64_t since, uint64_t seq, uint64_t live_tokens,
                                          uint64_t n)
{
	begin(w, out, MSG_TOKEN_VISUALIZATION, "token_visualization");
	since_seq(out, since, seq);
	gos_buf_puts(out, ",\"live_tokens\":");
	gos_buf_u64(out, live_tokens);
	gos_buf_puts(out, ",\"n\":");
	gos_buf_u64(out, n);
	gos_buf_puts(out, ",\"tokens\":[");
	w->list = LIST_TOKENS;
	w->announced = n;
}

void gos_viewer_neural_state_begin(struct gos_viewer_writer *w, struct gos_buf *out,
                                   uint64_t since, uint64_t seq)
{
	begin(w, out, MSG_NEURAL_STATE, "neural_state");
	since_seq(out, since, seq);
	gos_buf_puts(out, ",\"streams\":[");
	w->list = LIST_STREAMS;
}

static void entry(struct gos_viewer_writer *w)
{
	if (w->n++)
		gos_buf_putc(w->out, ',');
}

void gos_viewer_put_token(struct gos_viewer_writer *w, const struct gos_viewer_token *tk)
{
	struct gos_buf *t = w->out;
	if (w->list != LIST_TOKENS)
		misuse("a token put where the message has no token list open");
	entry(w);
	w->tokens++;
	gos_buf_puts(t, "{\"id\":");
	gos_buf_json_str(t, tk->id);
	if (tk->removed) {
		gos_buf_puts(t, ",\"removed\":true}");
		return;
	}
	gos_buf_puts(t, ",\"text\":");
	gos_buf_json_str(t, tk->text ? tk->text : "");
	gos_buf_puts(t, ",\"x\":");
	gos_buf_json_f32(t, tk->x);
	gos_buf_puts(t, ",\"y\":");
	gos_buf_json_f32(t, tk->y);
	gos_buf_puts(t, ",\"w\":");
	gos_buf_json_f32(t, tk->w);
	gos_buf_puts(t, ",\"confidence\":");
	gos_buf_json_f32(t, tk->confidence);
	gos_buf_puts(t, ",\"stream\":");
	gos_buf_json_str(t, tk->stream ? tk->stream : "");
	gos_buf_puts(t, ",\"timestamp\":");
	gos_buf_json_f64(t, tk->timestamp);
	if (isfinite(tk->logprob)) {
		gos_buf_puts(t, ",\"logprob\":");
		gos_buf_json_f32(t, tk->logprob);
	}
	if (tk->n_alts) {
		gos_buf_puts(t, ",\"alts\":[");
		for (uint32_t i = 0; i < tk->n_alts; i++) {
			if (i)
				gos_buf_putc(t, ',');
			gos_buf_puts(t, "{\"token\":");
			gos_buf_json_str(t, tk->alts[i].token ? tk->alts[i].token : "");
			gos_buf_puts(t, ",\"logprob\":");
			gos_buf_json_f32(t, tk->alts[i].logprob);
			gos_buf_putc(t, '}');
		}
		gos_buf_putc(t, ']');
	}
	gos_buf_putc(t, '}');
}

/* A snapshot's streams follow its tokens. */
static void snapshot_streams(struct gos_viewer_writer *w)
{
	gos_buf_puts(w->out, "],\"streams\":[");
	w->list = LIST_STREAMS;
	w->n = 0;
}

void gos_viewer_put_stream(struct gos_viewer_writer *w, const struct gos_viewer_stream *s)
{
	struct gos_buf *t = w->out;
	if (w->kind == MSG_SNAPSHOT && w->list == LIST_TOKENS)
		snapshot_streams(w);
	if (w->list != LIST_STREAMS)
		misuse("a stream put where the message has no stream list open");
	entry(w);
	gos_buf_puts(t, "{\"stream\":");
	gos_buf_json_str(t, s->name ? s->name : "");
	gos_buf_puts(t, ",\"state\":");
	gos_buf_json_str(t, s->state ? s->state : "");
	gos_buf_puts(t, ",\"tokens_processed\":");
	gos_buf_i64(t, s->tokens_processed);
	gos_buf_puts(t, ",\"total_tokens\":");
	gos_buf_i64(t, s->total_tokens);
	gos_buf_puts(t, ",\"elapsed_ms\":");
	gos_buf_json_f64(t, s->elapsed_ms);
	gos_buf_puts(t, ",\"tokens\":");
	gos_buf_u64(t, s->tokens);
	gos_buf_putc(t, '}');
}

uint64_t gos_viewer_end(struct gos_viewer_writer *w)
{
	switch (w->kind) {
	case MSG_SNAPSHOT:
		if (w->list == LIST_TOKENS)
			snapshot_streams(w);
		gos_buf_puts(w->out, "],\"live_tokens\":");
		gos_buf_u64(w->out, w->tokens);
		gos_buf_putc(w->out, '}');
		break;
	case MSG_TOKEN_VISUALIZATION:
		if (w->tokens != w->announced)
			misuse("a token_visualization with other than its n tokens");
		gos_buf_puts(w->out, "]}");
		break;
	case MSG_NEURAL_STATE:
		gos_buf_puts(w->out, "]}");
		break;
	default:
		misuse("gos_viewer_end without a message begun");
	}
	w->kind = 0;
	w->list = LIST_NONE;
	return w->tokens;
}

enum gos_viewer_in_type gos_viewer_parse(const char *msg, size_t len, struct gos_viewer_in *out)
{
	*out = (struct gos_viewer_in){.type = GOS_VIEWER_IN_IGNORED};
	cJSON *j = gos_json_parse(msg, len);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	if (!cJSON_IsString(type)) {
		/* ignored */
	} else if (!strcmp(type->valuestring, "viewport")) {
		/* Bit i of viewport_has is keys[i] (GOS_VIEWER_VP_*). */
		static const char *const keys[5] = {"x", "y", "w", "h", "zoom"};
		double *dst[5] = {&out->viewport.x, &out->viewport.y, &out->viewport.w,
		                  &out->viewport.h, &out->viewport.zoom};
		out->type = GOS_VIEWER_IN_VIEWPORT;
		for (unsigned i = 0; i < 5; i++) {
			const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
			if (cJSON_IsNumber(n)) {
				*dst[i] = n->valuedouble;
				out->viewport_has |= 1u << i;
			}
		}
	} else if (!strcmp(type->valuestring, "ping")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "t");
		out->type = GOS_VIEWER_IN_PING;
		out->ping_t = cJSON_IsNumber(t) ? t->valuedouble : 0.0;
	}
	cJSON_Delete(j);
	return out->type;
}

void gos_viewer_viewport_update(struct gos_viewer_viewport *vp, const struct gos_viewer_in *in)
{
	if (in->type != GOS_VIEWER_IN_VIEWPORT)
		return;
	unsigned has = in->viewport_has;
	if (has & GOS_VIEWER_VP_X)
		vp->x = in->viewport.x;
	if (has & GOS_VIEWER_VP_Y)
		vp->y = in->viewport.y;
	if (has & GOS_VIEWER_VP_W)
		vp->w = in->viewport.w;
	if (has & GOS_VIEWER_VP_H)
		vp->h = in->viewport.h;
	if (has & GOS_VIEWER_VP_ZOOM)
		vp->zoom = in->viewport.zoom;
}
