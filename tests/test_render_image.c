/* Image tests: gos-shot renders tests/data/render_small.jsonl (3 streams, CJK
 * text, explicit positions left of/above the origin) headless on the real
 * Vulkan device with validation on, and the PNGs are compared with the
 * references in tests/data.
 *
 * Tolerance: a pixel counts as different when a channel differs by more than
 * THRESHOLD (16/255); a picture passes when at most MAX_PCT of its pixels
 * differ (room for rasterizer rounding across Mesa/LLVM versions, far below
 * what any broken feature changes).
 *
 * Both background paths (computed + copied, and the fullscreen fragment
 * pass fallback) must match the same references, and so must the CPU
 * token projection (--cpu-compute), asked for or fallen back to when the
 * GPU token pipeline fails (forced by GOS_FORCE_COMPUTE_FAIL=1; the
 * fallback must be logged).
 *
 * The same comparison is then shown to fail when a feature breaks: text off,
 * grid off, flat colors, and a cull margin of 0 (tokens straddling the edge
 * vanish) each render a picture that must NOT pass.
 *
 * GOS_UPDATE_REFERENCE=1 rewrites the references instead (look at them!).
 * Exit 77 when no Vulkan device exists. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gos_png.h"
#include "gos_test.h"
#include "gos_vk.h"
#include "gos_test_gpu.h"

#define THRESHOLD 16
#define MAX_PCT 0.1

static char shot_bin[512], data_dir[512], out_dir[512];

/* Runs gos-shot; with `env` ("NAME=VALUE") set in its environment, and its
 * stderr to `log` when given. */
static int run_shot_env(const char *out, const char *const *extra, const char *env,
                        const char *log)
{
	char input[600];
	snprintf(input, sizeof(input), "%s/render_small.jsonl", data_dir);
	/* Not quiet when logged: the summary says which compute path ran. */
	const char *argv[32] = {shot_bin, "--input", input, "--out", out, "--size", "640x360",
	                        log ? NULL : "--quiet"};
	int n = log ? 7 : 8;
	for (int i = 0; extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		if (env)
			putenv((char *)env);
		if (log && !freopen(log, "w", stderr))
			_exit(126);
		execv(shot_bin, (char *const *)argv);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run_shot(const char *out, const char *const *extra)
{
	return run_shot_env(out, extra, NULL, NULL);
}

/* Renders (gos-shot run as run_shot_env says) and compares; returns the
 * percentage of differing pixels (or 100 when the picture could not be
 * made). */
static double shot_diff_env(const char *name, const char *ref, const char *const *extra,
                            const char *env, const char *log)
{
	char out[700], refp[700], err[256];
	snprintf(out, sizeof(out), "%s/%s.png", out_dir, name);
	snprintf(refp, sizeof(refp), "%s/%s", data_dir, ref);
	int rc = run_shot_env(out, extra, env, log);
	CHECK(rc == 0, "%s: gos-shot exited %d (3 means validation errors)", name, rc);
	if (rc != 0)
		return 100;
	uint8_t *a = NULL, *b = NULL;
	uint32_t aw, ah, bw, bh;
	bool ok = gos_png_read(out, &a, &aw, &ah, err, sizeof(err));
	CHECK(ok, "%s: %s", name, err);
	bool ok2 = ok && gos_png_read(refp, &b, &bw, &bh, err, sizeof(err));
	CHECK(!ok || ok2, "reference %s: %s (GOS_UPDATE_REFERENCE=1 makes it)", refp, err);
	double pct = 100;
	if (ok && ok2 && aw == bw && ah == bh) {
		struct gos_png_diff d;
		gos_png_compare(a, b, aw, ah, THRESHOLD, &d);
		pct = d.differing_pct;
		printf("%-14s vs %-24s max delta %3u, %6.3f%% of pixels differ\n", name, ref,
		       d.max_delta, d.differing_pct);
	}
	free(a);
	free(b);
	return pct;
}

static double shot_diff(const char *name, const char *ref, const char *const *extra)
{
	return shot_diff_env(name, ref, extra, NULL, NULL);
}

/* Whether file `path` contains `needle`. */
static bool file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

static void update_reference(const char *ref, const char *const *extra)
{
	char refp[700];
	snprintf(refp, sizeof(refp), "%s/%s", data_dir, ref);
	int rc = run_shot(refp, extra);
	CHECK(rc == 0, "writing %s: gos-shot exited %d", refp, rc);
	printf("wrote %s\n", refp);
}

int main(void)
{
	if (!gos_vk_available()) {
		return gos_test_no_gpu("test_render_image");
	}
	const char *src = getenv("GOS_SOURCE_DIR"), *build = getenv("GOS_BUILD_DIR");
	if (!src || !build) {
		fprintf(stderr, "test_render_image: run it from ctest (GOS_SOURCE_DIR, GOS_BUILD_DIR)\n");
		return 1;
	}
	snprintf(shot_bin, sizeof(shot_bin), "%s/tools/gos-shot", build);
	snprintf(data_dir, sizeof(data_dir), "%s/tests/data", src);
	snprintf(out_dir, sizeof(out_dir), "%s/test_render_image_out", build);
	if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "cannot create %s: %s\n", out_dir, strerror(errno));
		return 1;
	}

	const char *const fit[] = {"--fit", NULL};
	/* Zoomed in so text is legible and tokens straddle the right edge. */
	const char *const text[] = {"--center", "250,40", "--zoom", "1.7", NULL};
	if (getenv("GOS_UPDATE_REFERENCE") && !strcmp(getenv("GOS_UPDATE_REFERENCE"), "1")) {
		update_reference("render_small_fit.png", fit);
		update_reference("render_small_text.png", text);
		return gos_test_report("test_render_image");
	}

	double p = shot_diff("fit", "render_small_fit.png", fit);
	CHECK(p <= MAX_PCT, "fit view: %.3f%% of pixels differ from the reference (max %.2f%%)", p, MAX_PCT);
	p = shot_diff("text", "render_small_text.png", text);
	CHECK(p <= MAX_PCT, "text view: %.3f%% of pixels differ from the reference (max %.2f%%)", p, MAX_PCT);

	/* The fallback for targets that cannot be copied into (the background
	 * as a fullscreen fragment pass) draws the same pictures. */
	const char *const fit_fs[] = {"--fit", "--fullscreen-pass", NULL};
	p = shot_diff("fit_fullscreen", "render_small_fit.png", fit_fs);
	CHECK(p <= MAX_PCT, "fit view, fullscreen pass: %.3f%% of pixels differ (max %.2f%%)", p, MAX_PCT);
	const char *const text_fs[] = {"--center", "250,40", "--zoom", "1.7", "--fullscreen-pass", NULL};
	p = shot_diff("text_fullscreen", "render_small_text.png", text_fs);
	CHECK(p <= MAX_PCT, "text view, fullscreen pass: %.3f%% of pixels differ (max %.2f%%)", p, MAX_PCT);

	/* --cpu-compute (projection, colors and culling by the CPU reference,
	 * uploaded into the same buffers) draws the same pictures: the fit view
	 * (far out: splats from the token buffer) and the text view (quads from
	 * the projection's survivors). */
	const char *const fit_cpu[] = {"--fit", "--cpu-compute", NULL};
	p = shot_diff("fit_cpu", "render_small_fit.png", fit_cpu);
	CHECK(p <= MAX_PCT, "fit view, --cpu-compute: %.3f%% of pixels differ (max %.2f%%)", p, MAX_PCT);
	const char *const text_cpu[] = {"--center", "250,40", "--zoom", "1.7", "--cpu-compute", NULL};
	p = shot_diff("text_cpu", "render_small_text.png", text_cpu);
	CHECK(p <= MAX_PCT, "text view, --cpu-compute: %.3f%% of pixels differ (max %.2f%%)", p, MAX_PCT);
	const char *const text_cpu_fs[] = {"--center", "250,40", "--zoom", "1.7", "--cpu-compute",
	                                   "--fullscreen-pass", NULL};
	p = shot_diff("text_cpu_fullscreen", "render_small_text.png", text_cpu_fs);
	CHECK(p <= MAX_PCT, "text view, --cpu-compute, fullscreen pass: %.3f%% of pixels differ", p);

	/* The GPU token pipeline failing at start-up (forced by the test hook)
	 * falls back to the CPU reference, says so, and still draws the same
	 * pictures. */
	char log[700];
	snprintf(log, sizeof(log), "%s/forced_failure.log", out_dir);
	p = shot_diff_env("text_forced_failure", "render_small_text.png", text, "GOS_FORCE_COMPUTE_FAIL=1",
	                  log);
	CHECK(p <= MAX_PCT, "text view after the forced GPU failure: %.3f%% of pixels differ", p);
	CHECK(file_contains(log, "the GPU token pipeline failed (") &&
	      file_contains(log, "using the CPU reference instead (--cpu-compute)") &&
	      file_contains(log, "GOS_FORCE_COMPUTE_FAIL"),
	      "the fallback was not logged with its reason (see %s)", log);
	CHECK(file_contains(log, "drawn (CPU compute)"), "gos-shot did not report CPU compute (see %s)", log);
	/* Without the hook and the flag, the GPU path runs and says nothing of it. */
	snprintf(log, sizeof(log), "%s/gpu.log", out_dir);
	const char *const text_loud[] = {"--center", "250,40", "--zoom", "1.7", NULL};
	char out[700];
	snprintf(out, sizeof(out), "%s/text_gpu_loud.png", out_dir);
	CHECK(run_shot_env(out, text_loud, NULL, log) == 0, "gos-shot failed (see %s)", log);
	CHECK(file_contains(log, "drawn (GPU compute)") && !file_contains(log, "CPU reference"),
	      "the plain run did not use the GPU path (see %s)", log);

	/* Broken features must be noticed by the same comparison. */
	const char *const no_grid[] = {"--fit", "--disable", "grid", NULL};
	p = shot_diff("broken_grid", "render_small_fit.png", no_grid);
	CHECK(p > MAX_PCT, "without the grid only %.3f%% differ: the check would miss it", p);
	const char *const flat[] = {"--fit", "--disable", "color", NULL};
	p = shot_diff("broken_color", "render_small_fit.png", flat);
	CHECK(p > MAX_PCT, "with flat colors only %.3f%% differ: the check would miss it", p);
	const char *const no_text[] = {"--center", "250,40", "--zoom", "1.7", "--disable", "text", NULL};
	p = shot_diff("broken_text", "render_small_text.png", no_text);
	CHECK(p > MAX_PCT, "without text only %.3f%% differ: the check would miss it", p);
	const char *const tight[] = {"--center", "250,40", "--zoom", "1.7", "--disable", "cull", NULL};
	p = shot_diff("broken_cull", "render_small_text.png", tight);
	CHECK(p > MAX_PCT, "with a 0 cull margin only %.3f%% differ: the check would miss it", p);
	const char *const palette[] = {"--fit", "--palette", "red-green", NULL};
	p = shot_diff("other_palette", "render_small_fit.png", palette);
	CHECK(p > MAX_PCT, "another palette differs by only %.3f%%", p);
	return gos_test_report("test_render_image");
}
