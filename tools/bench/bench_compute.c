/* gos-bench compute: throughput of the token compute pipeline, GPU path and
 * CPU reference, for a list of token counts.
 *
 *   gos-bench compute [--n 10k,100k,1M,10M] [--reps 5] [--gpu NAME|INDEX]
 *
 * Columns (median of --reps timed runs after one untimed warm-up):
 *   GPU upload+dispatch   every token changed: gos_compute_update() of all N
 *                         (check, pack, stage) + record, submit, wait, read
 *                         back the survivor count
 *   GPU dispatch only     nothing changed (the camera moved): dispatch + count
 *   CPU reference         gos_compute_ref_update() of all N + project/cull
 *   1% scattered update   N/100 random slots changed + dispatch, with each
 *                         upload path (copy regions, scatter shader, auto)
 * Tokens are spread so that about a third land in the 1920x1080 view. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_bench.h"
#include "gos_compute.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static float frand(void)
{
	return (float)(rnd() >> 40) / 16777216.0f;
}

/* "10k,100k,1M,10M" -> counts; false on a malformed list. */
static bool parse_counts(const char *s, uint32_t *out, int *n, int max)
{
	*n = 0;
	while (*s) {
		char *end;
		double v = strtod(s, &end);
		if (end == s || v <= 0)
			return false;
		if (*end == 'k' || *end == 'K') {
			v *= 1e3;
			end++;
		} else if (*end == 'm' || *end == 'M') {
			v *= 1e6;
			end++;
		}
		if (v > (double)GOS_COMPUTE_MAX_SLOTS || *n == max)
			return false;
		out[(*n)++] = (uint32_t)v;
		if (*end == ',')
			end++;
		else if (*end)
			return false;
		s = end;
	}
	return *n > 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gos-bench compute [--n LIST] [--reps R] [--gpu NAME|INDEX]\n"
	        "  --n LIST    token counts, e.g. 10k,100k,1M,10M (the default)\n"
	        "  --reps R    timed runs per figure, median reported (default 5)\n"
	        "  --gpu DEV   Vulkan device by index or name substring (else GOS_GPU, else auto)\n");
}

static void fill_tokens(struct gos_token_update *u, uint32_t n, const struct gos_camera *cam)
{
	/* A square of about 1.7x the view's width: ~1/3 of the tokens on screen. */
	float half = cam->viewport_w * 0.85f / cam->zoom;
	for (uint32_t i = 0; i < n; i++) {
		u[i] = (struct gos_token_update){
			.slot = i,
			.x = cam->center_x + (frand() * 2 - 1) * half,
			.y = cam->center_y + (frand() * 2 - 1) * half,
			.confidence = rnd() % 16 ? frand() : NAN,
		};
	}
}

struct row {
	uint32_t n;
	double gpu_full, gpu_dispatch, cpu, inc[3];
	uint32_t survivors;
	bool ok;
};

static bool run_gpu(struct gos_vk *vk, struct row *row, const struct gos_token_update *a,
                    const struct gos_token_update *b, struct gos_token_update *scattered,
                    const struct gos_camera *cam, int reps)
{
	uint32_t n = row->n, count = 0;
	double *t = calloc((size_t)reps, sizeof(double));
	bool ok = false;
	struct gos_compute_opts opts = {.initial_capacity = n};
	struct gos_compute *c = gos_compute_create(vk, &opts);
	if (!c || !t)
		goto out;
	/* Full re-upload of every token, alternating two position sets. */
	for (int r = -1; r < reps; r++) {
		double t0 = now();
		if (!gos_compute_update(c, (r & 1) ? b : a, n) ||
		    !gos_compute_dispatch(c, cam, GOS_PALETTE_VIRIDIS, &count))
			goto out;
		if (r >= 0)
			t[r] = now() - t0;
	}
	row->gpu_full = median(t, reps);
	row->survivors = count;
	for (int r = -1; r < reps; r++) {
		double t0 = now();
		if (!gos_compute_dispatch(c, cam, GOS_PALETTE_VIRIDIS, &count))
			goto out;
		if (r >= 0)
			t[r] = now() - t0;
	}
	row->gpu_dispatch = median(t, reps);
	gos_compute_destroy(c);
	c = NULL;

	/* 1% of the slots changed, scattered, with each upload path. */
	uint32_t k = n / 100 ? n / 100 : 1;
	for (int mode = 0; mode < 3; mode++) {
		opts.upload = (enum gos_compute_upload)mode;
		c = gos_compute_create(vk, &opts);
		if (!c || !gos_compute_update(c, a, n) ||
		    !gos_compute_dispatch(c, cam, GOS_PALETTE_VIRIDIS, &count))
			goto out;
		for (int r = -1; r < reps; r++) {
			for (uint32_t i = 0; i < k; i++) {
				scattered[i] = a[rnd() % n];
				scattered[i].x += 1.0f;
			}
			double t0 = now();
			if (!gos_compute_update(c, scattered, k) ||
			    !gos_compute_dispatch(c, cam, GOS_PALETTE_VIRIDIS, &count))
				goto out;
			if (r >= 0)
				t[r] = now() - t0;
		}
		row->inc[mode] = median(t, reps);
		gos_compute_destroy(c);
		c = NULL;
	}
	ok = true;
out:
	gos_compute_destroy(c);
	free(t);
	return ok;
}

static bool run_cpu(struct row *row, const struct gos_token_update *a,
                    const struct gos_token_update *b, const struct gos_camera *cam, int reps)
{
	double *t = calloc((size_t)reps, sizeof(double));
	struct gos_compute_ref *r = gos_compute_ref_create();
	uint32_t count = 0;
	bool ok = false;
	if (!t || !r)
		goto out;
	for (int i = -1; i < reps; i++) {
		double t0 = now();
		if (!gos_compute_ref_update(r, (i & 1) ? b : a, row->n) ||
		    !gos_compute_ref_dispatch(r, cam, GOS_PALETTE_VIRIDIS, &count))
			goto out;
		if (i >= 0)
			t[i] = now() - t0;
	}
	row->cpu = median(t, reps);
	if (count != row->survivors) {
		fprintf(stderr, "gos-bench compute: N=%u: the GPU kept %u tokens, the CPU %u\n",
		        row->n, row->survivors, count);
		goto out;
	}
	ok = true;
out:
	gos_compute_ref_destroy(r);
	free(t);
	return ok;
}

static void cell(double seconds, uint32_t n)
{
	printf(" %9.2f %9.1f |", seconds * 1e3, (double)n / seconds / 1e6);
}

int gos_bench_compute(int argc, char **argv)
{
	uint32_t counts[16] = {10000, 100000, 1000000, 10000000};
	int n_counts = 4, reps = 5;
	const char *gpu = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
			if (!parse_counts(argv[++i], counts, &n_counts, 16)) {
				fprintf(stderr, "gos-bench compute: --n wants a list like 10k,1M (each "
				        "at most %u), got '%s'\n", GOS_COMPUTE_MAX_SLOTS, argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 1 || v > 1000) {
				fprintf(stderr, "gos-bench compute: --reps wants 1..1000, got '%s'\n", argv[i]);
				return 2;
			}
			reps = (int)v;
		} else if (!strcmp(argv[i], "--gpu") && i + 1 < argc) {
			gpu = argv[++i];
		} else {
			fprintf(stderr, "gos-bench compute: unknown or incomplete option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}

	struct gos_vk_opts vo = {.gpu = gpu, .app_name = "gos-bench compute"};
	struct gos_vk *vk = gos_vk_create(&vo);
	if (!vk) {
		fprintf(stderr, "gos-bench compute: no usable Vulkan device\n");
		return 1;
	}
	uint32_t max_n = 0;
	for (int i = 0; i < n_counts; i++)
		if (counts[i] > max_n)
			max_n = counts[i];
	struct gos_token_update *a = malloc((size_t)max_n * sizeof(*a));
	struct gos_token_update *b = malloc((size_t)max_n * sizeof(*b));
	struct gos_token_update *s = malloc(((size_t)max_n / 100 + 1) * sizeof(*s));
	struct row *rows = calloc((size_t)n_counts, sizeof(*rows));
	int rc = 1;
	if (!a || !b || !s || !rows) {
		fprintf(stderr, "gos-bench compute: out of memory for %u tokens\n", max_n);
		goto out;
	}
	const struct gos_camera cam = {.center_x = 0, .center_y = 0, .zoom = 1,
	                               .viewport_w = 1920, .viewport_h = 1080, .margin = 32};
	for (int i = 0; i < n_counts; i++) {
		struct row *row = &rows[i];
		row->n = counts[i];
		fill_tokens(a, row->n, &cam);
		fill_tokens(b, row->n, &cam);
		row->ok = run_gpu(vk, row, a, b, s, &cam, reps) && run_cpu(row, a, b, &cam, reps);
		if (!row->ok)
			fprintf(stderr, "gos-bench compute: N=%u failed\n", row->n);
	}

	printf("gos-bench compute: device GPU%u '%s' (%s), driver %s '%s' %s, validation %s\n",
	       vk->device_index, vk->device_name,
	       vk->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ? "cpu" : "gpu",
	       vk->driver_name, vk->driver_info, vk->driver_version, vk->validation ? "ON" : "off");
	printf("view 1920x1080, median of %d runs; ms per frame and million tokens/s\n\n", reps);
	printf("%10s | %-19s | %-19s | %-19s | %s\n", "", "GPU upload+dispatch", "GPU dispatch only",
	       "CPU reference", "on screen");
	printf("%10s |%10s%10s |%10s%10s |%10s%10s |\n", "N", "ms", "Mtok/s", "ms", "Mtok/s", "ms",
	       "Mtok/s");
	for (int i = 0; i < n_counts; i++) {
		if (!rows[i].ok) {
			printf("%10u | failed\n", rows[i].n);
			continue;
		}
		printf("%10u |", rows[i].n);
		cell(rows[i].gpu_full, rows[i].n);
		cell(rows[i].gpu_dispatch, rows[i].n);
		cell(rows[i].cpu, rows[i].n);
		printf(" %u\n", rows[i].survivors);
	}
	printf("\n1%% of the slots changed, scattered, + dispatch (ms per frame), by upload path:\n");
	printf("%10s | %10s %10s %10s\n", "N", "copy", "scatter", "auto");
	for (int i = 0; i < n_counts; i++)
		if (rows[i].ok)
			printf("%10u | %10.2f %10.2f %10.2f\n", rows[i].n, rows[i].inc[0 + 1] * 1e3,
			       rows[i].inc[2] * 1e3, rows[i].inc[0] * 1e3);
	rc = 0;
	for (int i = 0; i < n_counts; i++)
		if (!rows[i].ok)
			rc = 1;
out:
	free(rows);
	free(s);
	free(b);
	free(a);
	gos_vk_destroy(vk);
	return rc;
}
