/* gos-shot: renders a recorded session (JSON lines in the ingest format) to a
 * PNG through the same map state, compute and render passes as the
 * compositor, headless; or (--socket) asks a running compositor for a
 * picture of its map with a "screenshot" message. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gos_client.h"
#include "gos_compute_ref.h"
#include "gos_map.h"
#include "gos_png.h"
#include "gos_protocol.h"
#include "gos_render.h"
#include "gos_reply.h"
#include "gos_vk.h"
#include "gos_time.h"

/* Exit codes (documented in --help). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_VALIDATION = 3, EXIT_UNREACHABLE = 4 };

#define BATCH 1024

struct shot_opts {
	const char *input;
	const char *out;
	const char *socket;
	uint32_t w, h;
	bool fit, have_center, have_zoom;
	double cx, cy, zoom;
	uint32_t palette;
	uint32_t disable;
	uint32_t hud;
	bool quiet;
	bool fullscreen_pass;
	bool cpu_compute;
	bool render_flags;       /* an option that only applies to --input was given */
	double timeout;          /* --socket: seconds to wait for the picture */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: gos-shot --input REC.jsonl --out SHOT.png [--size WxH]\n"
	        "                [--fit | --center X,Y --zoom Z] [--palette NAME] [--no-hud]\n"
	        "       gos-shot --socket PATH --out SHOT.png [--fit] [--timeout S]\n"
	        "\n"
	        "Replays a recording (JSON lines in the ingest format, as sent to\n"
	        "gos-compositor's socket) through the map state and the GPU compute and\n"
	        "render passes, headless, and writes the picture as a PNG.\n"
	        "\n"
	        "With --socket it asks the compositor listening there for a picture of its\n"
	        "map instead: the compositor renders its next frame at its own size (the\n"
	        "current view, or with --fit a view of every token for this picture only)\n"
	        "and writes the PNG itself, to the absolute path of --out (so the path must\n"
	        "be writable by the compositor). Prints one line with the result.\n"
	        "\n"
	        "  --input FILE        the recording ('-': stdin)\n"
	        "  --socket PATH       a running gos-compositor's socket (excludes --input;\n"
	        "                      only --out, --fit, --timeout and --quiet apply)\n"
	        "  --timeout S         --socket: seconds to wait for the picture (default 30)\n"
	        "  --out FILE          the PNG to write\n"
	        "  --size WxH          picture size in pixels (default 1920x1080)\n"
	        "  --fit               frame every token (the default)\n"
	        "  --center X,Y        world point at the picture's center (default: fit)\n"
	        "  --zoom Z            pixels per world unit (default: fit, or 1 with --center)\n"
	        "  --palette NAME      confidence colors: viridis (default), red-green\n"
	        "  --no-hud            no stream list and scale bar\n"
	        "  --disable LIST      switch render features off, comma separated: text, grid,\n"
	        "                      color, cull (for tests that prove the image check notices)\n"
	        "  --quiet             no progress bar or summary\n"
	        "  --help, --version\n"
	        "  --fullscreen-pass   draw the background with a fragment pass instead of\n"
	        "                      computing it and copying it into the image (the path\n"
	        "                      for targets that cannot be copied into; same picture)\n"
	        "  --cpu-compute       project, color and cull the tokens on the CPU (the\n"
	        "                      reference implementation) instead of the GPU compute\n"
	        "                      shader (same picture); also used, with a log line, when\n"
	        "                      the GPU token pipeline fails at start-up\n"
	        "\n"
	        "Lines the compositor would reject are reported (file:line: reason) and\n"
	        "skipped, as the compositor skips them.\n"
	        "\n"
	        "exit codes: 0 written, 1 failure (unreadable input, no Vulkan device,\n"
	        "            cannot write the PNG; --socket: the compositor refused or\n"
	        "            failed, or no answer within --timeout), 2 bad command line,\n"
	        "            3 Vulkan validation reported errors (with GOS_VALIDATION=1),\n"
	        "            4 --socket: cannot reach the compositor\n");
}

static bool parse_size(const char *s, uint32_t *w, uint32_t *h)
{
	char *end;
	errno = 0;
	unsigned long a = strtoul(s, &end, 10);
	if (errno || end == s || (*end != 'x' && *end != 'X'))
		return false;
	const char *p = end + 1;
	unsigned long b = strtoul(p, &end, 10);
	if (errno || end == p || *end || a < 16 || b < 16 || a > 16384 || b > 16384)
		return false;
	*w = (uint32_t)a;
	*h = (uint32_t)b;
	return true;
}

static bool parse_double(const char *s, double *out, char **endp)
{
	errno = 0;
	*out = strtod(s, endp);
	return !errno && *endp != s && isfinite(*out);
}

static int parse_args(int argc, char **argv, struct shot_opts *o)
{
	enum { OPT_INPUT = 256, OPT_OUT, OPT_SIZE, OPT_FIT, OPT_CENTER, OPT_ZOOM, OPT_PALETTE,
	       OPT_NO_HUD, OPT_DISABLE, OPT_SOCKET, OPT_QUIET, OPT_FULLSCREEN_PASS,
	       OPT_CPU_COMPUTE, OPT_TIMEOUT, OPT_HELP, OPT_VERSION };
	static const struct option longopts[] = {
		{"input", required_argument, NULL, OPT_INPUT},
		{"out", required_argument, NULL, OPT_OUT},
		{"size", required_argument, NULL, OPT_SIZE},
		{"fit", no_argument, NULL, OPT_FIT},
		{"center", required_argument, NULL, OPT_CENTER},
		{"zoom", required_argument, NULL, OPT_ZOOM},
		{"palette", required_argument, NULL, OPT_PALETTE},
		{"no-hud", no_argument, NULL, OPT_NO_HUD},
		{"disable", required_argument, NULL, OPT_DISABLE},
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"quiet", no_argument, NULL, OPT_QUIET},
		{"fullscreen-pass", no_argument, NULL, OPT_FULLSCREEN_PASS},
		{"cpu-compute", no_argument, NULL, OPT_CPU_COMPUTE},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"help", no_argument, NULL, OPT_HELP},
		{"version", no_argument, NULL, OPT_VERSION},
		{0},
	};
	o->w = 1920;
	o->h = 1080;
	o->hud = GOS_HUD_STREAMS | GOS_HUD_SCALE;
	o->timeout = 30;
	opterr = 0;
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == OPT_SIZE || c == OPT_CENTER || c == OPT_ZOOM || c == OPT_PALETTE ||
		    c == OPT_NO_HUD || c == OPT_DISABLE || c == OPT_FULLSCREEN_PASS || c == OPT_CPU_COMPUTE)
			o->render_flags = true;
		switch (c) {
		case OPT_TIMEOUT:
			if (!parse_double(optarg, &o->timeout, &end) || *end || o->timeout <= 0 ||
			    o->timeout > 86400) {
				fprintf(stderr, "gos-shot: --timeout wants seconds (more than 0, up to 86400), not '%s'\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_INPUT: o->input = optarg; break;
		case OPT_OUT: o->out = optarg; break;
		case OPT_SOCKET: o->socket = optarg; break;
		case OPT_SIZE:
			if (!parse_size(optarg, &o->w, &o->h)) {
				fprintf(stderr, "gos-shot: --size wants WxH, 16 to 16384 each, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_FIT: o->fit = true; break;
		case OPT_CENTER:
			if (!parse_double(optarg, &o->cx, &end) || *end != ',' ||
			    !parse_double(end + 1, &o->cy, &end) || *end) {
				fprintf(stderr, "gos-shot: --center wants X,Y in world units, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->have_center = true;
			break;
		case OPT_ZOOM:
			if (!parse_double(optarg, &o->zoom, &end) || *end ||
			    o->zoom < GOS_CAM_ZOOM_MIN || o->zoom > GOS_CAM_ZOOM_MAX) {
				fprintf(stderr, "gos-shot: --zoom wants pixels per world unit from %g to %g, not '%s'\n",
				        GOS_CAM_ZOOM_MIN, GOS_CAM_ZOOM_MAX, optarg);
				return EXIT_USAGE;
			}
			o->have_zoom = true;
			break;
		case OPT_PALETTE:
			if (!gos_compute_ref_palette_parse(optarg, &o->palette)) {
				fprintf(stderr, "gos-shot: unknown --palette '%s' (viridis, red-green)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_NO_HUD: o->hud = 0; break;
		case OPT_QUIET: o->quiet = true; break;
		case OPT_FULLSCREEN_PASS: o->fullscreen_pass = true; break;
		case OPT_CPU_COMPUTE: o->cpu_compute = true; break;
		case OPT_DISABLE: {
			const char *t = optarg;
			while (*t) {
				size_t n = strcspn(t, ",");
				if (n == 4 && !strncmp(t, "text", 4)) o->disable |= GOS_RENDER_NO_TEXT;
				else if (n == 4 && !strncmp(t, "grid", 4)) o->disable |= GOS_RENDER_NO_GRID;
				else if (n == 5 && !strncmp(t, "color", 5)) o->disable |= GOS_RENDER_FLAT;
				else if (n == 4 && !strncmp(t, "cull", 4)) o->disable |= GOS_RENDER_TIGHT_CULL;
				else {
					fprintf(stderr, "gos-shot: --disable knows text, grid, color, cull, not '%.*s'\n",
					        (int)n, t);
					return EXIT_USAGE;
				}
				t += n;
				if (*t == ',')
					t++;
			}
			break;
		}
		case OPT_HELP: usage(stdout); exit(EXIT_OK);
		case OPT_VERSION: printf("gos-shot %s\n", GOS_VERSION); exit(EXIT_OK);
		default:
			fprintf(stderr, "gos-shot: unknown or incomplete option '%s' (try --help)\n",
			        argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gos-shot: unexpected argument '%s' (try --help)\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (o->socket) {
		if (o->input) {
			fprintf(stderr, "gos-shot: --input (replay a recording) and --socket (a picture of "
			        "a running compositor) exclude each other\n");
			return EXIT_USAGE;
		}
		if (o->render_flags) {
			fprintf(stderr, "gos-shot: with --socket only --out, --fit, --timeout and --quiet "
			        "apply (the compositor draws with its own size, palette and view)\n");
			return EXIT_USAGE;
		}
		if (!o->out) {
			fprintf(stderr, "gos-shot: --out is required (try --help)\n");
			return EXIT_USAGE;
		}
		return -1;
	}
	if (!o->input || !o->out) {
		fprintf(stderr, "gos-shot: --input and --out are required (try --help)\n");
		return EXIT_USAGE;
	}
	if (o->fit && (o->have_center || o->have_zoom)) {
		fprintf(stderr, "gos-shot: --fit and --center/--zoom exclude each other\n");
		return EXIT_USAGE;
	}
	return -1;
}

static void progress(off_t done, off_t total, uint64_t lines, bool final)
{
	int width = 40;
	double f = total > 0 ? (double)done / (double)total : 1;
	if (f > 1)
		f = 1;
	int n = (int)(f * width);
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < n ? '#' : '.';
	bar[width] = 0;
	fprintf(stderr, "\rgos-shot: [%s] %3.0f%%  %llu lines%s", bar, f * 100,
	        (unsigned long long)lines, final ? "\n" : "");
}

/* Replays the recording into the map. Returns false on an I/O error. */
static bool replay(const struct shot_opts *o, struct gos_map *map, uint64_t *n_lines,
                   uint64_t *n_rejected)
{
	FILE *f = strcmp(o->input, "-") ? fopen(o->input, "r") : stdin;
	if (!f) {
		fprintf(stderr, "gos-shot: cannot open %s: %s\n", o->input, strerror(errno));
		return false;
	}
	struct stat st;
	off_t total = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	bool bar = !o->quiet && isatty(STDERR_FILENO) && total > (1 << 20);
	struct gos_arena arena = {0};
	struct gos_event *evs = calloc(BATCH, sizeof(*evs));
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	size_t n = 0;
	uint64_t line_no = 0;
	struct timespec last = {0}, now;
	bool ok = evs != NULL;
	while (ok && (len = getline(&line, &cap, f)) >= 0) {
		line_no++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0)
			continue;
		struct gos_parse_error perr;
		if (!gos_protocol_parse(line, (size_t)len, &evs[n], &arena, &perr)) {
			fprintf(stderr, "gos-shot: %s:%llu: %s\n", o->input, (unsigned long long)line_no,
			        perr.message);
			(*n_rejected)++;
			continue;
		}
		if (evs[n].type == GOS_EV_SYNC)
			continue;
		if (++n == BATCH) {
			gos_map_apply(map, evs, n);
			gos_arena_reset(&arena);
			n = 0;
		}
		if (bar && (line_no & 1023) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((now.tv_sec - last.tv_sec) * 1000000000L + (now.tv_nsec - last.tv_nsec) > 100000000L) {
				progress(ftello(f), total, line_no, false);
				last = now;
			}
		}
	}
	if (ok && ferror(f)) {
		fprintf(stderr, "gos-shot: cannot read %s: %s\n", o->input, strerror(errno));
		ok = false;
	}
	if (n)
		gos_map_apply(map, evs, n);
	if (bar)
		progress(total, total, line_no, true);
	*n_lines = line_no;
	free(line);
	free(evs);
	gos_arena_finish(&arena);
	if (f != stdin)
		fclose(f);
	return ok;
}

/* ---- --socket: ask a running compositor ---- */

/* The answer: the first screenshot or error reply on the connection. */
struct remote {
	bool done;
	struct gos_reply reply;
};

static void remote_line(void *ctx, const char *line, size_t len)
{
	struct remote *r = ctx;
	if (r->done)
		return;
	/* An error is our one line rejected (an old compositor, a path too long). */
	enum gos_reply_type t = gos_reply_parse(line, len, &r->reply);
	r->done = t == GOS_REPLY_SCREENSHOT || t == GOS_REPLY_ERROR;
}

static int shoot_remote(const struct shot_opts *o)
{
	char path[GOS_MAX_PATH + 1];
	if (o->out[0] == '/') {
		if (strlen(o->out) > GOS_MAX_PATH) {
			fprintf(stderr, "gos-shot: --out path is over %d bytes\n", GOS_MAX_PATH);
			return EXIT_USAGE;
		}
		snprintf(path, sizeof(path), "%s", o->out);
	} else {
		char cwd[GOS_MAX_PATH + 1];
		if (!getcwd(cwd, sizeof(cwd))) {
			fprintf(stderr, "gos-shot: cannot tell the current directory: %s\n", strerror(errno));
			return EXIT_RUNTIME;
		}
		size_t n = strlen(cwd);
		const char *rel = o->out[0] == '.' && o->out[1] == '/' ? o->out + 2 : o->out;
		if (n + 1 + strlen(rel) > GOS_MAX_PATH) {
			fprintf(stderr, "gos-shot: --out path is over %d bytes once made absolute\n",
			        GOS_MAX_PATH);
			return EXIT_USAGE;
		}
		size_t rl = strlen(rel);
		memcpy(path, cwd, n);
		if (!n || cwd[n - 1] != '/')
			path[n++] = '/';
		memcpy(path + n, rel, rl + 1);
	}
	char err[512];
	struct gos_client *c = gos_client_connect(o->socket, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "gos-shot: %s\n", err);
		return EXIT_UNREACHABLE;
	}
	struct remote r = {0};
	gos_client_on_line(c, remote_line, &r);
	struct gos_event ev = {.type = GOS_EV_SCREENSHOT, .shot = {.path = path, .fit = o->fit}};
	char *line = gos_protocol_serialize(&ev);
	if (!line) {
		fprintf(stderr, "gos-shot: out of memory\n");
		gos_client_close(c);
		return EXIT_RUNTIME;
	}
	bool sent = gos_client_send(c, line, strlen(line));
	free(line);
	bool gone = !sent;
	double deadline = gos_now_s() + o->timeout;
	while (!gone && !r.done) {
		double left = deadline - gos_now_s();
		if (left <= 0)
			break;
		int ms = left > 0.2 ? 200 : (int)(left * 1000) + 1;
		gone = !gos_client_poll(c, ms);
	}
	gos_client_close(c);
	const struct gos_reply_screenshot *shot = &r.reply.shot;
	bool refused = r.reply.type == GOS_REPLY_ERROR;
	if (r.done && !refused && shot->ok) {
		if (!o->quiet)
			printf("gos-shot: wrote %s (%ux%u, %llu tokens)\n", path, shot->width, shot->height,
			       (unsigned long long)shot->tokens);
		return EXIT_OK;
	}
	if (r.done)
		fprintf(stderr, "gos-shot: the compositor at %s %s: %s\n", o->socket,
		        refused ? "rejected the request" : "could not take the picture",
		        refused ? r.reply.error.reason : shot->reason);
	else if (gone)
		fprintf(stderr, "gos-shot: the compositor at %s closed the connection without "
		        "answering\n", o->socket);
	else
		fprintf(stderr, "gos-shot: no answer from the compositor at %s within %g s "
		        "(--timeout)\n", o->socket, o->timeout);
	return EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
	struct shot_opts o = {0};
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.socket)
		return shoot_remote(&o);

	struct gos_map *map = gos_map_create(&(struct gos_map_opts){0});
	struct gos_vk *vk = NULL;
	struct gos_render *r = NULL;
	struct gos_offscreen *off = NULL;
	uint8_t *rgba = NULL;
	rc = EXIT_RUNTIME;
	uint64_t lines = 0, rejected = 0;
	if (!map) {
		fprintf(stderr, "gos-shot: out of memory\n");
		goto out;
	}
	if (!replay(&o, map, &lines, &rejected))
		goto out;

	vk = gos_vk_create(&(struct gos_vk_opts){.want_graphics = true, .app_name = "gos-shot"});
	if (!vk) {
		fprintf(stderr, "gos-shot: no usable Vulkan device (see above)\n");
		goto out;
	}
	char err[256];
	r = gos_render_create(vk, &(struct gos_render_opts){.palette = o.palette,
	                      .disable = o.disable, .max_sync_tokens = 1u << 20,
	                      .cpu_compute = o.cpu_compute}, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "gos-shot: %s\n", err);
		goto out;
	}
	while (gos_render_sync(r, map) > 0 || gos_render_behind(r))
		;
	off = gos_offscreen_create(r, o.w, o.h);
	rgba = malloc((size_t)o.w * o.h * 4);
	if (!off || !rgba) {
		fprintf(stderr, "gos-shot: cannot create a %ux%u offscreen image\n", o.w, o.h);
		goto out;
	}
	struct gos_view view = gos_render_fit(r, o.w, o.h);
	if (o.have_center) {
		view.cx = o.cx;
		view.cy = o.cy;
		view.zoom = 1;
	}
	if (o.have_zoom)
		view.zoom = o.zoom;
	struct gos_frame_info fi = {
		.view = view, .no_fade = true, .hud = o.hud, .viewers = -1, .active_stream = -1,
		.image = o.fullscreen_pass ? VK_NULL_HANDLE : gos_offscreen_image(off),
	};
	if (!gos_render_frame(r, gos_offscreen_framebuffer(off), gos_offscreen_extent(off), &fi,
	                      VK_NULL_HANDLE, VK_NULL_HANDLE) ||
	    !gos_offscreen_read(r, off, rgba)) {
		fprintf(stderr, "gos-shot: rendering failed (see above)\n");
		goto out;
	}
	if (!gos_png_write(o.out, rgba, o.w, o.h, err, sizeof(err))) {
		fprintf(stderr, "gos-shot: %s\n", err);
		goto out;
	}
	struct gos_render_state rs;
	gos_render_state(r, &rs);
	if (!o.quiet)
		fprintf(stderr, "gos-shot: wrote %s (%ux%u): %llu lines, %llu rejected, %llu tokens, "
		        "%u drawn (%s), center %.1f,%.1f zoom %.4g\n", o.out, o.w, o.h,
		        (unsigned long long)lines, (unsigned long long)rejected,
		        (unsigned long long)rs.live_tokens, rs.drawn,
		        rs.cpu_compute ? "CPU compute" : "GPU compute", view.cx, view.cy, view.zoom);
	rc = EXIT_OK;
out:
	free(rgba);
	if (r)
		gos_offscreen_destroy(r, off);
	gos_render_destroy(r);
	if (vk && gos_vk_validation_errors(vk) > 0) {
		fprintf(stderr, "gos-shot: Vulkan validation reported %u errors\n",
		        gos_vk_validation_errors(vk));
		if (rc == EXIT_OK)
			rc = EXIT_VALIDATION;
	}
	gos_vk_destroy(vk);
	gos_map_destroy(map);
	return rc;
}
