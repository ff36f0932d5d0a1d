/* Prometheus text helpers and histogram (see gos_metrics.h). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_metrics.h"

void gos_hist_init(struct gos_hist *h, const double *bounds, uint32_t n_bounds)
{
	if (n_bounds > GOS_HIST_MAX_BUCKETS)
		n_bounds = GOS_HIST_MAX_BUCKETS;
	h->n_bounds = n_bounds;
	memcpy(h->bounds, bounds, n_bounds * sizeof(*bounds));
	for (uint32_t i = 0; i <= GOS_HIST_MAX_BUCKETS; i++)
		atomic_init(&h->counts[i], 0);
	atomic_init(&h->sum_ns, 0);
}

static uint32_t bucket(const struct gos_hist *h, double seconds)
{
	uint32_t i = 0;
	while (i < h->n_bounds && seconds > h->bounds[i])
		i++;
	return i;
}

void gos_hist_observe(struct gos_hist *h, double seconds)
{
	gos_hist_observe_n(h, seconds, 1);
}

void gos_hist_observe_n(struct gos_hist *h, double seconds, uint64_t n)
{
	if (!n)
		return;
	if (!(seconds >= 0))
		seconds = 0;
	atomic_fetch_add_explicit(&h->counts[bucket(h, seconds)], n, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)llround(seconds * 1e9) * n,
	                          memory_order_relaxed);
}

void gos_hist_local_observe(const struct gos_hist *h, struct gos_hist_local *l, double seconds)
{
	if (!(seconds >= 0))
		seconds = 0;
	l->counts[bucket(h, seconds)]++;
	l->sum += seconds;
}

void gos_hist_merge(struct gos_hist *h, const struct gos_hist_local *l)
{
	bool any = false;
	for (uint32_t i = 0; i <= h->n_bounds; i++)
		if (l->counts[i]) {
			atomic_fetch_add_explicit(&h->counts[i], l->counts[i], memory_order_relaxed);
			any = true;
		}
	if (any)
		atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)llround(l->sum * 1e9),
		                          memory_order_relaxed);
}

uint64_t gos_hist_count(const struct gos_hist *h)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i <= h->n_bounds; i++)
		n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
	return n;
}

void gos_metrics_family(struct gos_buf *t, const char *name, const char *type,
                        const char *help)
{
	gos_buf_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The shortest of %.15g / %.17g that reads back as the same double. */
static void fmt_double(struct gos_buf *t, double v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	gos_buf_puts(t, buf);
}

static void sample_name(struct gos_buf *t, const char *name, const char *labels)
{
	gos_buf_puts(t, name);
	if (labels && labels[0]) {
		gos_buf_putc(t, '{');
		gos_buf_puts(t, labels);
		gos_buf_putc(t, '}');
	}
	gos_buf_putc(t, ' ');
}

void gos_metrics_sample(struct gos_buf *t, const char *name, const char *labels,
                        double value)
{
	sample_name(t, name, labels);
	if (isnan(value))
		gos_buf_puts(t, "NaN");
	else if (isinf(value))
		gos_buf_puts(t, value > 0 ? "+Inf" : "-Inf");
	else
		fmt_double(t, value);
	gos_buf_putc(t, '\n');
}

void gos_metrics_sample_u64(struct gos_buf *t, const char *name, const char *labels,
                            uint64_t value)
{
	sample_name(t, name, labels);
	gos_buf_u64(t, value);
	gos_buf_putc(t, '\n');
}

void gos_metrics_hist_samples(struct gos_buf *t, const char *name, const char *labels,
                              const struct gos_hist *h)
{
	char line[160], le[256];
	const char *sep = labels && labels[0] ? "," : "";
	if (!labels)
		labels = "";
	uint64_t cum = 0;
	snprintf(line, sizeof(line), "%s_bucket", name);
	for (uint32_t i = 0; i < h->n_bounds; i++) {
		cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		snprintf(le, sizeof(le), "%s%sle=\"%.9g\"", labels, sep, h->bounds[i]);
		gos_metrics_sample_u64(t, line, le, cum);
	}
	cum += atomic_load_explicit(&h->counts[h->n_bounds], memory_order_relaxed);
	snprintf(le, sizeof(le), "%s%sle=\"+Inf\"", labels, sep);
	gos_metrics_sample_u64(t, line, le, cum);
	snprintf(line, sizeof(line), "%s_sum", name);
	gos_metrics_sample(t, line, labels,
	                   (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
	snprintf(line, sizeof(line), "%s_count", name);
	gos_metrics_sample_u64(t, line, labels, cum);
}

void gos_metrics_hist(struct gos_buf *t, const char *name, const char *help,
                      const struct gos_hist *h)
{
	gos_metrics_family(t, name, "histogram", help);
	gos_metrics_hist_samples(t, name, NULL, h);
}

void gos_metrics_one(struct gos_buf *t, const char *name, const char *type, const char *help,
                     uint64_t value)
{
	gos_metrics_family(t, name, type, help);
	gos_metrics_sample_u64(t, name, NULL, value);
}
