/* The gos.v1 viewer messages, written and read (see gos_viewer_proto.h).
 * The bytes are the protocol: docs/protocol.md shows them, the Python and
 * browser tests compare them, so field order and number formats stay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gos_event.h"
#include "gos_json.h"
#include "gos_utf8.h"
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

void gos_viewer_snapshot_begin_mode(struct gos_viewer_writer *w, struct gos_buf *out,
                                    uint64_t seq, const char *mode, bool has_time, double time)
{
	gos_viewer_snapshot_begin(w, out, seq);
	w->mode = mode;
	w->has_time = has_time;
	w->time = time;
}

void gos_viewer_error(struct gos_buf *out, const char *code, const char *message)
{
	gos_buf_puts(out, "{\"type\":\"error\",\"code\":");
	gos_buf_json_str(out, code);
	gos_buf_puts(out, ",\"message\":");
	gos_buf_json_str(out, message);
	gos_buf_putc(out, '}');
}

void gos_viewer_error_range(struct gos_buf *out, uint64_t first, uint64_t last,
                            const char *message)
{
	gos_buf_puts(out, "{\"type\":\"error\",\"code\":\"seek_range\",\"first\":");
	gos_buf_u64(out, first);
	gos_buf_puts(out, ",\"last\":");
	gos_buf_u64(out, last);
	gos_buf_puts(out, ",\"message\":");
	gos_buf_json_str(out, message);
	gos_buf_putc(out, '}');
}

void gos_viewer_paused(struct gos_buf *out, uint64_t seq)
{
	gos_buf_puts(out, "{\"type\":\"paused\",\"seq\":");
	gos_buf_u64(out, seq);
	gos_buf_putc(out, '}');
}

void gos_viewer_timeline(struct gos_buf *out, uint64_t first_seq, uint64_t last_seq,
                         double first_time, double last_time, const double *t,
                         const uint64_t *seq, size_t n)
{
	gos_buf_puts(out, "{\"type\":\"timeline\",\"first_seq\":");
	gos_buf_u64(out, first_seq);
	gos_buf_puts(out, ",\"last_seq\":");
	gos_buf_u64(out, last_seq);
	gos_buf_puts(out, ",\"first_time\":");
	gos_buf_json_f64(out, first_time);
	gos_buf_puts(out, ",\"last_time\":");
	gos_buf_json_f64(out, last_time);
	gos_buf_puts(out, ",\"points\":[");
	for (size_t i = 0; i < n; i++) {
		gos_buf_puts(out, i ? ",[" : "[");
		gos_buf_json_f64(out, t[i]);
		gos_buf_putc(out, ',');
		gos_buf_u64(out, seq[i]);
		gos_buf_putc(out, ']');
	}
	gos_buf_puts(out, "]}");
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
	gos_buf_puts(t, ",\"index\":");
	gos_buf_u64(t, tk->index);
	if (tk->rank) {
		gos_buf_puts(t, ",\"rank\":");
		gos_buf_i64(t, tk->rank == UINT32_MAX ? -1 : (int64_t)tk->rank);
	}
	if (isfinite(tk->gap_ms)) {
		gos_buf_puts(t, ",\"gap_ms\":");
		gos_buf_json_f32(t, tk->gap_ms);
	}
	if (isfinite(tk->entropy)) {
		gos_buf_puts(t, ",\"entropy\":");
		gos_buf_json_f32(t, tk->entropy);
	}
	if (isfinite(tk->agree)) {
		gos_buf_puts(t, ",\"agree\":");
		gos_buf_json_f32(t, tk->agree);
	}
	if (tk->diverges)
		gos_buf_puts(t, ",\"diverges\":true");
	gos_buf_putc(t, '}');
}

/* A snapshot's streams follow its tokens. */
static void snapshot_streams(struct gos_viewer_writer *w)
{
	gos_buf_puts(w->out, "],\"streams\":[");
	w->list = LIST_STREAMS;
	w->n = 0;
}

/* A number, or null when it is not finite (nothing to say yet). */
static void num_or_null(struct gos_buf *t, const char *key, double v)
{
	gos_buf_puts(t, key);
	if (isfinite(v))
		gos_buf_json_f64(t, v);
	else
		gos_buf_puts(t, "null");
}

void gos_viewer_stream_derived(const struct gos_viewer_stream *s, double out[5])
{
	const struct gos_stream_stats *a = s->stats;
	for (int i = 0; i < 5; i++)
		out[i] = NAN;
	if (!a)
		return;
	double span = a->last_ts - a->first_ts;
	if (s->tokens > 1 && span > 0)
		out[0] = (double)(s->tokens - 1) / span;
	if (a->n_conf)
		out[1] = a->conf_sum / (double)a->n_conf;
	out[2] = a->conf_min;
	if (a->n_logprob)
		out[3] = exp(-a->logprob_sum / (double)a->n_logprob);
	if (a->n_entropy)
		out[4] = a->entropy_sum / (double)a->n_entropy;
}

/* The generation's analytics (docs/protocol.md, "Stream fields"). */
static void put_analytics(struct gos_buf *t, const struct gos_viewer_stream *s)
{
	const struct gos_stream_stats *a = s->stats;
	double d[5];
	gos_viewer_stream_derived(s, d);
	num_or_null(t, ",\"ttft_ms\":", s->ttft_ms);
	gos_buf_puts(t, ",\"finish_reason\":");
	gos_buf_json_str(t, s->finish_reason ? s->finish_reason : "");
	gos_buf_puts(t, ",\"message\":");
	gos_buf_json_str(t, s->message ? s->message : "");
	gos_buf_puts(t, ",\"model\":");
	gos_buf_json_str(t, s->model ? s->model : "");
	num_or_null(t, ",\"tokens_per_s\":", d[0]);
	num_or_null(t, ",\"mean_confidence\":", d[1]);
	num_or_null(t, ",\"min_confidence\":", d[2]);
	num_or_null(t, ",\"perplexity\":", d[3]);
	num_or_null(t, ",\"mean_entropy\":", d[4]);
	gos_buf_puts(t, ",\"confidence_hist\":[");
	for (int i = 0; i < 10; i++) {
		if (i)
			gos_buf_putc(t, ',');
		gos_buf_u64(t, a->hist[i]);
	}
	gos_buf_putc(t, ']');
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
	if (s->stats)
		put_analytics(t, s);
	gos_buf_puts(t, ",\"group\":");
	gos_buf_json_str(t, s->group ? s->group : s->name ? s->name : "");
	gos_buf_puts(t, ",\"diverge_at\":");
	gos_buf_i64(t, s->diverge_at);
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
		if (w->mode) {
			gos_buf_puts(w->out, ",\"mode\":");
			gos_buf_json_str(w->out, w->mode);
			if (w->has_time) {
				gos_buf_puts(w->out, ",\"time\":");
				gos_buf_json_f64(w->out, w->time);
			}
		}
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

void gos_viewer_search_result(struct gos_buf *out, const char *q, uint64_t count,
                              const struct gos_viewer_match *m, size_t n)
{
	gos_buf_puts(out, "{\"type\":\"search_result\",\"q\":");
	gos_buf_json_str(out, q);
	gos_buf_puts(out, ",\"count\":");
	gos_buf_u64(out, count);
	gos_buf_puts(out, ",\"matches\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			gos_buf_putc(out, ',');
		gos_buf_puts(out, "{\"stream\":");
		gos_buf_json_str(out, m[i].stream ? m[i].stream : "");
		gos_buf_puts(out, ",\"ids\":[");
		for (uint32_t k = 0; k < m[i].n_ids; k++) {
			if (k)
				gos_buf_putc(out, ',');
			gos_buf_json_str(out, m[i].ids[k]);
		}
		gos_buf_puts(out, "],\"x\":");
		gos_buf_json_f32(out, m[i].x);
		gos_buf_puts(out, ",\"y\":");
		gos_buf_json_f32(out, m[i].y);
		gos_buf_putc(out, '}');
	}
	gos_buf_puts(out, "],\"truncated\":");
	gos_buf_puts(out, count > n ? "true" : "false");
	gos_buf_putc(out, '}');
}

/* A whole number >= 0 that a double holds exactly (2^53). */
static bool as_seq(const cJSON *n, uint64_t *out)
{
	if (!cJSON_IsNumber(n) || !isfinite(n->valuedouble) || n->valuedouble < 0 ||
	    n->valuedouble > 9007199254740992.0 || n->valuedouble != floor(n->valuedouble))
		return false;
	*out = (uint64_t)n->valuedouble;
	return true;
}

static void parse_seek(const cJSON *j, bool play, struct gos_viewer_in *out)
{
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(j, "time");
	const cJSON *speed = cJSON_GetObjectItemCaseSensitive(j, "speed");
	const char *what = play ? "play" : "seek";
	out->type = GOS_VIEWER_IN_BAD;
	out->speed = 1.0;
	if (!play && !seq && time) {
		if (!cJSON_IsNumber(time) || !isfinite(time->valuedouble) || time->valuedouble < 0) {
			snprintf(out->bad, sizeof(out->bad), "seek: \"time\" must be a number of "
			         "seconds >= 0");
			return;
		}
		out->seek_time = time->valuedouble;
		out->has_time = true;
		out->type = GOS_VIEWER_IN_SEEK;
		return;
	}
	if (!as_seq(seq, &out->seek_seq)) {
		snprintf(out->bad, sizeof(out->bad), "%s: \"seq\" must be a whole number >= 0%s",
		         what, play ? "" : " (or give \"time\")");
		return;
	}
	if (play && speed) {
		if (!cJSON_IsNumber(speed) || !(speed->valuedouble >= GOS_VIEWER_SPEED_MIN &&
		                                 speed->valuedouble <= GOS_VIEWER_SPEED_MAX)) {
			snprintf(out->bad, sizeof(out->bad), "play: \"speed\" must be a number from "
			         "0.0625 to 64");
			return;
		}
		out->speed = speed->valuedouble;
	}
	out->type = play ? GOS_VIEWER_IN_PLAY : GOS_VIEWER_IN_SEEK;
}

/* A probability bound: absent or null is NAN; else a number in 0..1. */
static bool as_p(const cJSON *n, double *out)
{
	*out = NAN;
	if (!n || cJSON_IsNull(n))
		return true;
	if (!cJSON_IsNumber(n) || !(n->valuedouble >= 0 && n->valuedouble <= 1))
		return false;
	*out = n->valuedouble;
	return true;
}

#define BAD(...) do { snprintf(out->bad, sizeof(out->bad), __VA_ARGS__); return; } while (0)

static void parse_search(const cJSON *j, struct gos_viewer_in *out)
{
	struct gos_viewer_search *s = &out->search;
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "q");
	const cJSON *limit = cJSON_GetObjectItemCaseSensitive(j, "limit");
	const cJSON *streams = cJSON_GetObjectItemCaseSensitive(j, "streams");
	out->type = GOS_VIEWER_IN_BAD;
	if (!cJSON_IsString(q) || !q->valuestring[0])
		BAD("search: \"q\" must be a string that is not empty");
	size_t qlen = strlen(q->valuestring);
	if (qlen > GOS_VIEWER_SEARCH_Q_MAX || !gos_utf8_valid(q->valuestring, qlen))
		BAD("search: \"q\" must be at most %d bytes of UTF-8", GOS_VIEWER_SEARCH_Q_MAX);
	memcpy(s->q, q->valuestring, qlen + 1);
	s->limit = GOS_VIEWER_SEARCH_LIMIT;
	if (limit && !cJSON_IsNull(limit)) {
		uint64_t v;
		if (!as_seq(limit, &v) || v < 1 || v > GOS_VIEWER_SEARCH_LIMIT_MAX)
			BAD("search: \"limit\" must be a whole number from 1 to %d",
			    GOS_VIEWER_SEARCH_LIMIT_MAX);
		s->limit = (uint32_t)v;
	}
	if (!as_p(cJSON_GetObjectItemCaseSensitive(j, "min_p"), &s->min_p) ||
	    !as_p(cJSON_GetObjectItemCaseSensitive(j, "max_p"), &s->max_p))
		BAD("search: \"min_p\" and \"max_p\" must be numbers from 0 to 1");
	if (s->min_p > s->max_p)
		BAD("search: \"min_p\" is above \"max_p\"");
	if (streams && !cJSON_IsNull(streams)) {
		if (!cJSON_IsArray(streams))
			BAD("search: \"streams\" must be an array of stream names");
		size_t used = 0;
		const cJSON *e;
		cJSON_ArrayForEach(e, streams) {
			if (!cJSON_IsString(e))
				BAD("search: \"streams\" must be an array of stream names");
			size_t n = strlen(e->valuestring);
			if (n > GOS_MAX_STREAM)
				BAD("search: a stream name is longer than %d bytes", GOS_MAX_STREAM);
			if (s->n_streams == GOS_VIEWER_SEARCH_STREAMS_MAX ||
			    used + n + 1 > sizeof(s->streams))
				BAD("search: \"streams\" names more than %d streams or %d bytes",
				    GOS_VIEWER_SEARCH_STREAMS_MAX, GOS_VIEWER_SEARCH_STREAMS_BYTES);
			memcpy(s->streams + used, e->valuestring, n + 1);
			used += n + 1;
			s->n_streams++;
		}
		s->has_streams = true;
	}
	out->type = GOS_VIEWER_IN_SEARCH;
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
			if (cJSON_IsNumber(n) && isfinite(n->valuedouble)) {
				*dst[i] = n->valuedouble;
				out->viewport_has |= 1u << i;
			}
		}
	} else if (!strcmp(type->valuestring, "ping")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "t");
		out->type = GOS_VIEWER_IN_PING;
		/* echoed in the pong: a number JSON can carry (1e999 reads as inf) */
		out->ping_t = cJSON_IsNumber(t) && isfinite(t->valuedouble) ? t->valuedouble : 0.0;
	} else if (!strcmp(type->valuestring, "seek") || !strcmp(type->valuestring, "play")) {
		parse_seek(j, !strcmp(type->valuestring, "play"), out);
	} else if (!strcmp(type->valuestring, "pause")) {
		out->type = GOS_VIEWER_IN_PAUSE;
	} else if (!strcmp(type->valuestring, "live")) {
		out->type = GOS_VIEWER_IN_LIVE;
	} else if (!strcmp(type->valuestring, "search")) {
		parse_search(j, out);
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
