/* Prometheus text exposition (format 0.0.4) helpers and a lock-free
 * histogram. Any thread may observe into a histogram; the thread that
 * renders /metrics reads it (relaxed atomics: a scrape may see an
 * observation's count before its sum, which Prometheus tolerates). */
#ifndef GOS_METRICS_H
#define GOS_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "gos_buf.h"

#define GOS_HIST_MAX_BUCKETS 16

/* Buckets are upper bounds in base units (seconds), ascending; +Inf is
 * implicit. gos_hist_init() copies them. */
struct gos_hist {
	uint32_t n_bounds;
	double bounds[GOS_HIST_MAX_BUCKETS];
	_Atomic uint64_t counts[GOS_HIST_MAX_BUCKETS + 1];  /* per bucket, not cumulative */
	_Atomic uint64_t sum_ns;                            /* sum in nanoseconds */
};

void gos_hist_init(struct gos_hist *h, const double *bounds, uint32_t n_bounds);
/* Any thread. */
void gos_hist_observe(struct gos_hist *h, double seconds);
/* n observations of the same value at once (a batch of events that shared
 * one wait). Any thread. */
void gos_hist_observe_n(struct gos_hist *h, double seconds, uint64_t n);
uint64_t gos_hist_count(const struct gos_hist *h);

/* Observations gathered by one thread in a loop and added to a histogram
 * at once: one atomic add per bucket used, not one per observation.
 * Zero-initialize, observe, then gos_hist_merge. */
struct gos_hist_local {
	uint64_t counts[GOS_HIST_MAX_BUCKETS + 1];
	double sum;
};
void gos_hist_local_observe(const struct gos_hist *h, struct gos_hist_local *l, double seconds);
/* Adds l's observations to h (any thread). */
void gos_hist_merge(struct gos_hist *h, const struct gos_hist_local *l);

/* Family header: "# HELP name help\n# TYPE name type\n". */
void gos_metrics_family(struct gos_buf *t, const char *name, const char *type,
                        const char *help);
/* A family of one unlabelled sample: the header and the value. */
void gos_metrics_one(struct gos_buf *t, const char *name, const char *type, const char *help,
                     uint64_t value);
/* One sample line: name{labels} value. labels may be NULL or "" (no braces),
 * or like `type="token_activation"`. */
void gos_metrics_sample(struct gos_buf *t, const char *name, const char *labels,
                        double value);
void gos_metrics_sample_u64(struct gos_buf *t, const char *name, const char *labels,
                            uint64_t value);
/* A whole histogram family (header, _bucket lines, _sum, _count). */
void gos_metrics_hist(struct gos_buf *t, const char *name, const char *help,
                      const struct gos_hist *h);
/* One labelled histogram of a family (its _bucket lines, _sum and _count,
 * each with labels, e.g. `stage="applied"`), after gos_metrics_family(t,
 * name, "histogram", help). */
void gos_metrics_hist_samples(struct gos_buf *t, const char *name, const char *labels,
                              const struct gos_hist *h);

#endif
