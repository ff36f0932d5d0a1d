/* gos_render, HUD: the overlay's geometry, built on the CPU each frame as
 * triangles (solid or sampling the glyph atlas): the marker on each
 * stream's newest token, the stats and streams panel, the scale bar, the
 * key help, the banner and the hover box. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_render_internal.h"
#include "gos_text.h"

#define MAX_STREAMS_SHOWN 10

static void ov_quad(struct gos_render *r, float x0, float y0, float x1, float y1,
                    float u0, float v0, float u1, float v1, const float c[4], float mode)
{
	if (r->n_ov + 6 > r->cap_ov) {
		size_t cap = r->cap_ov ? r->cap_ov * 2 : 4096;
		struct ov_vertex *p = realloc(r->ov, cap * sizeof(*p));
		if (!p)
			return;
		r->ov = p;
		r->cap_ov = cap;
	}
	struct ov_vertex q[4] = {
		{x0, y0, u0, v0, c[0], c[1], c[2], c[3], mode},
		{x1, y0, u1, v0, c[0], c[1], c[2], c[3], mode},
		{x1, y1, u1, v1, c[0], c[1], c[2], c[3], mode},
		{x0, y1, u0, v1, c[0], c[1], c[2], c[3], mode},
	};
	static const int idx[6] = {0, 1, 2, 0, 2, 3};
	for (int i = 0; i < 6; i++)
		r->ov[r->n_ov++] = q[idx[i]];
}

static void ov_rect(struct gos_render *r, float x, float y, float w, float h, const float c[4])
{
	ov_quad(r, x, y, x + w, y + h, 0, 0, 0, 0, c, 0);
}

/* Draws UTF-8 text with its top-left at (x, y), `px` pixels per line;
 * returns the x after it. */
static float ov_text(struct gos_render *r, float x, float y, float px, const char *s,
                     const float c[4])
{
	float cw = px * (GOS_FLOW_CHAR_W / GOS_FLOW_LINE_H);
	uint32_t cp;
	while ((cp = gos_text_utf8_next(&s)) != 0) {
		uint32_t cell = gos_text_glyph(r->text, cp);
		if (cell != GOS_TEXT_CELL_BLANK) {
			float u0 = (float)((cell % GOS_TEXT_COLS) * GOS_TEXT_CELL_W) / GOS_TEXT_ATLAS_W;
			float v0 = (float)((cell / GOS_TEXT_COLS) * GOS_TEXT_CELL_H) / GOS_TEXT_ATLAS_H;
			float u1 = u0 + (float)GOS_TEXT_CELL_W / GOS_TEXT_ATLAS_W;
			float v1 = v0 + (float)GOS_TEXT_CELL_H / GOS_TEXT_ATLAS_H;
			ov_quad(r, x, y, x + cw, y + px, u0, v0, u1, v1, c, 1);
		}
		x += cw;
	}
	return x;
}

static float text_width(float px, const char *s)
{
	float cw = px * (GOS_FLOW_CHAR_W / GOS_FLOW_LINE_H);
	size_t n = 0;
	while (gos_text_utf8_next(&s))
		n++;
	return cw * (float)n;
}

static void fmt_count(char *out, size_t len, double v)
{
	if (v >= 1e9)
		snprintf(out, len, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(out, len, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(out, len, "%.1fk", v / 1e3);
	else
		snprintf(out, len, "%.0f", v);
}

/* A distinct, pleasant hue per stream (golden-angle steps). */
static void stream_color(uint32_t i, float c[4])
{
	double h = fmod(0.58 + i * 0.381966, 1.0) * 6.0;
	double s = 0.55, v = 0.95;
	int k = (int)h;
	double f = h - k, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
	double rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
	c[0] = (float)rgb[k % 6][0];
	c[1] = (float)rgb[k % 6][1];
	c[2] = (float)rgb[k % 6][2];
	c[3] = 1;
}

/* The HUD's colors: panels, text, secondary text. */
static const float panel[4] = {0.02f, 0.025f, 0.04f, 0.78f};
static const float white[4] = {0.93f, 0.95f, 1.0f, 1.0f};
static const float dim[4] = {0.62f, 0.67f, 0.76f, 1.0f};

/* The newest token of each stream: a caret after it and an underline
 * (a dot when too small), pulsing unless fi->no_fade. */
static void overlay_markers(struct gos_render *r, const struct gos_frame_info *fi, double vw,
                            double vh)
{
	const struct gos_view *v = &fi->view;
	double pulse = fi->no_fade ? 1.0 : 0.6 + 0.4 * cos(fi->now * 5.0);
	struct gos_compute_style st;
	gos_compute_get_style(r->compute, &st);
	for (size_t i = 0; i < r->n_streams; i++) {
		const struct gos_stream *s = &r->streams[i].s;
		float x, y, w;
		if (s->newest_slot < 0 || !gos_render_slot(r, (uint32_t)s->newest_slot, &x, &y, &w))
			continue;
		/* a hidden stream's marker goes with it */
		struct gos_gpu_token probe = {.attrs = (uint32_t)(i < GOS_TOKEN_STREAM_MAX ? i
		                                                  : GOS_TOKEN_STREAM_MAX)};
		struct gos_compute_style streams_only = st;
		streams_only.filter &= GOS_FILTER_STREAMS | GOS_FILTER_BEYOND;
		if (!gos_compute_ref_shown(&probe, &streams_only))
			continue;
		double sx, sy;
		gos_view_to_screen(v, vw, vh, x + w * 0.5, y, &sx, &sy);
		double h = GOS_FLOW_LINE_H * v->zoom;
		if (sx < -20 || sy < -20 || sx > vw + 20 || sy > vh + 20)
			continue;
		float c[4];
		stream_color((uint32_t)i, c);
		c[3] = (float)pulse;
		if (h >= 6) {
			ov_rect(r, (float)sx + 1, (float)(sy - h * 0.45), 2.5f, (float)(h * 0.9), c);
			double ux0 = (x - w * 0.5 - v->cx) * v->zoom + vw * 0.5;
			c[3] = (float)(0.7 * pulse);
			ov_rect(r, (float)ux0, (float)(sy + h * 0.5 - 1), (float)(sx - ux0), 2, c);
		} else {
			ov_rect(r, (float)sx - 3, (float)sy - 3, 6, 6, c);
		}
	}
}

/* The top-left panel: the stats line (GOS_HUD_STATS) and one line per
 * stream (GOS_HUD_STREAMS), the active one marked. */
static void overlay_panel(struct gos_render *r, const struct gos_frame_info *fi)
{
	const float px = 15, lh = 20;   /* text and line height, pixels */
	char line[MAX_STREAMS_SHOWN + 2][160];
	int nl = 0;
	if (fi->hud & GOS_HUD_STATS) {
		char tok[32], ev[32];
		fmt_count(tok, sizeof(tok), (double)r->live_tokens);
		fmt_count(ev, sizeof(ev), fi->events_per_s);
		if (fi->viewers >= 0)
			snprintf(line[nl++], sizeof(line[0]), "%5.1f fps  %s tokens  %s events/s  %lld viewers",
			         fi->fps, tok, ev, (long long)fi->viewers);
		else
			snprintf(line[nl++], sizeof(line[0]), "%5.1f fps  %s tokens  %s events/s",
			         fi->fps, tok, ev);
	}
	size_t first_stream_line = (size_t)nl;
	if (fi->hud & GOS_HUD_STREAMS) {
		for (size_t i = 0; i < r->n_streams && nl < MAX_STREAMS_SHOWN + 1; i++) {
			const struct render_stream *c = &r->streams[i];
			char prog[64] = "";
			if (c->s.total_tokens > 0)
				snprintf(prog, sizeof(prog), "  %lld/%lld", (long long)c->s.tokens_processed,
				         (long long)c->s.total_tokens);
			else if (c->s.tokens_processed > 0)
				snprintf(prog, sizeof(prog), "  %lld", (long long)c->s.tokens_processed);
			char el[32] = "";
			if (c->s.elapsed_ms > 0)
				snprintf(el, sizeof(el), "  %.1fs", c->s.elapsed_ms / 1000.0);
			/* a failed generation says why; else the model that made it */
			const char *why = c->message[0] ? c->message : c->model;
			char div[40] = "";
			if (c->s.diverge_at >= 0)
				snprintf(div, sizeof(div), "  diverges at %lld", (long long)c->s.diverge_at);
			snprintf(line[nl++], sizeof(line[0]), "   %.24s  %.16s%s%s  (%llu tokens)%s%s%.60s",
			         c->name[0] ? c->name : "default", c->state[0] ? c->state : "-",
			         prog, el, (unsigned long long)c->s.n_tokens, div, why[0] ? "  " : "", why);
		}
		if (r->n_streams > MAX_STREAMS_SHOWN)
			snprintf(line[nl++], sizeof(line[0]), "   + %zu more streams",
			         r->n_streams - MAX_STREAMS_SHOWN);
	}
	float wmax = 0;
	for (int i = 0; i < nl; i++) {
		float w = text_width(px, line[i]);
		if (w > wmax)
			wmax = w;
	}
	if (nl) {
		ov_rect(r, 10, 10, wmax + 20, (float)nl * lh + 12, panel);
		for (int i = 0; i < nl; i++) {
			float y = 16 + (float)i * lh;
			bool is_stream = (size_t)i >= first_stream_line && (size_t)i - first_stream_line < r->n_streams;
			if (is_stream) {
				size_t si = (size_t)i - first_stream_line;
				float c[4];
				stream_color((uint32_t)si, c);
				ov_rect(r, 22, y + 5, 9, 9, c);
				if ((int32_t)si == fi->active_stream)
					ov_rect(r, 12, y + 2, 3, 15, white);
			}
			ov_text(r, 20, y, px, line[i], is_stream ? dim : white);
		}
	}
}

/* The scale bar with its length in world units, bottom left. */
static void overlay_scale(struct gos_render *r, const struct gos_view *v, double vh)
{
	double len = gos_cam_nice_length(v->zoom, 160);
	float bar = (float)(len * v->zoom);
	char lab[48];
	if (len >= 1)
		snprintf(lab, sizeof(lab), "%.0f units", len);
	else
		snprintf(lab, sizeof(lab), "%g units", len);
	float x = 20, y = (float)vh - 22;
	ov_rect(r, x - 8, y - 24, (bar > text_width(13, lab) ? bar : text_width(13, lab)) + 16, 36, panel);
	ov_rect(r, x, y, bar, 2, white);
	ov_rect(r, x, y - 5, 2, 7, white);
	ov_rect(r, x + bar - 2, y - 5, 2, 7, white);
	ov_text(r, x, y - 21, 13, lab, dim);
}

/* The key help, bottom right. */
static void overlay_help(struct gos_render *r, double vw, double vh)
{
	const char *help = "drag pan  wheel zoom  Home fit  F follow  Tab stream  C color  V O A R filter  "
	                   "/ search  S shot  E export  [ ] time  Q quit";
	float w = text_width(13, help);
	ov_text(r, (float)vw - w - 16, (float)vh - 24, 13, help, dim);
}

/* The time-travel bar, bottom center: the session as a track, the shown
 * moment as a marker, and what it is above it. */
static void overlay_timeline(struct gos_render *r, const struct gos_timeline_hud *tl,
                             double vw, double vh)
{
	static const float track[4] = {0.35f, 0.38f, 0.45f, 0.9f};
	static const float past[4] = {0.95f, 0.72f, 0.25f, 1.0f};
	static const float live[4] = {0.35f, 0.85f, 0.45f, 1.0f};
	float x0 = (float)vw * 0.2f, w = (float)vw * 0.6f, y = (float)vh - 100;
	double pos = tl->live ? 1.0 : tl->pos < 0 ? 0 : tl->pos > 1 ? 1 : tl->pos;
	const char *label = tl->label ? tl->label : "";
	ov_rect(r, x0 - 12, y - 30, w + 24, 46, panel);
	ov_rect(r, x0, y, w, 4, track);
	ov_rect(r, x0, y, (float)(w * pos), 4, tl->live ? live : past);
	ov_rect(r, x0 + (float)(w * pos) - 3, y - 6, 6, 16, tl->live ? live : past);
	ov_text(r, x0, y - 25, 14, label, tl->live ? live : white);
	const char *keys = "[ ] step  Space play  , . speed  L live  Ctrl+S save";
	ov_text(r, x0 + w - text_width(13, keys), y - 24, 13, keys, dim);
}

/* A short message, bottom center. */
static void overlay_banner(struct gos_render *r, const struct gos_frame_info *fi, double vw,
                           double vh)
{
	float w = text_width(16, fi->banner);
	float x = (float)(vw - w) * 0.5f, y = (float)vh - 60;
	ov_rect(r, x - 12, y - 6, w + 24, 28, panel);
	ov_text(r, x, y, 16, fi->banner, white);
}

/* The hovered token's text, confidence, stream, timestamp, id and
 * alternatives, beside the pointer (flipped to stay on screen). */
static void overlay_hover(struct gos_render *r, const struct gos_frame_info *fi, double vw,
                          double vh)
{
	const float px = 15, lh = 20;   /* as in the panel */
	const struct gos_token *t = fi->hover;
	char lines[12][160];
	int nl = 0;
	snprintf(lines[nl++], sizeof(lines[0]), "\"%.60s\"", t->text ? t->text : "");
	if (isnan(t->confidence))
		snprintf(lines[nl++], sizeof(lines[0]), "confidence  unknown");
	else
		snprintf(lines[nl++], sizeof(lines[0]), "confidence  %.3f", t->confidence);
	snprintf(lines[nl++], sizeof(lines[0]), "stream      %.40s",
	         fi->hover_stream && fi->hover_stream[0] ? fi->hover_stream : "default");
	snprintf(lines[nl++], sizeof(lines[0]), "timestamp   %.3f", t->timestamp);
	snprintf(lines[nl++], sizeof(lines[0]), "id          %.40s", t->id ? t->id : "");
	for (uint32_t i = 0; i < t->n_alts && nl < 12; i++)
		snprintf(lines[nl++], sizeof(lines[0]), "  %-14.14s p=%.3f", t->alts[i].token,
		         exp(t->alts[i].logprob));
	float wmax = 0;
	for (int i = 0; i < nl; i++) {
		float w = text_width(px, lines[i]);
		if (w > wmax)
			wmax = w;
	}
	float bw = wmax + 20, bh = (float)nl * lh + 12;
	float x = (float)fi->mouse_x + 18, y = (float)fi->mouse_y + 18;
	if (x + bw > vw)
		x = (float)fi->mouse_x - 18 - bw;
	if (y + bh > vh)
		y = (float)fi->mouse_y - 18 - bh;
	ov_rect(r, x, y, bw, bh, panel);
	for (int i = 0; i < nl; i++)
		ov_text(r, x + 10, y + 6 + (float)i * lh, px, lines[i], i == 0 ? white : dim);
}

void render_build_overlay(struct gos_render *r, const struct gos_frame_info *fi, double vw,
                          double vh)
{
	r->n_ov = 0;
	overlay_markers(r, fi, vw, vh);
	if (fi->hud & (GOS_HUD_STATS | GOS_HUD_STREAMS))
		overlay_panel(r, fi);
	if (fi->hud & GOS_HUD_SCALE)
		overlay_scale(r, &fi->view, vh);
	if (fi->hud & GOS_HUD_HELP)
		overlay_help(r, vw, vh);
	if (fi->timeline)
		overlay_timeline(r, fi->timeline, vw, vh);
	if (fi->banner)
		overlay_banner(r, fi, vw, vh);
	if (fi->hover)
		overlay_hover(r, fi, vw, vh);
}
