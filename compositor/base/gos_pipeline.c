/* Pipeline latency (see gos_pipeline.h).
 *
 * The "published" and "sent" stages need each event's arrival when the
 * broadcaster publishes it and when the web service writes it, which know
 * only seqs: the core keeps (last seq, arrival, events) per batch in a
 * small ring; the broadcaster marks entries published up to the seq it
 * published (n_pub of them, from the oldest), the first write of a message
 * takes them off up to its seq. A batch written before the broadcaster
 * came to mark it (the service thread is quick) is published at that
 * write. A broadcaster or web service that falls further behind than the
 * ring (or none at all) loses the oldest entries, uncounted. */
#include <pthread.h>
#include <stdatomic.h>

#include "gos_metrics.h"
#include "gos_pipeline.h"
#include "gos_time.h"

#define RING 4096

struct pending {
	uint64_t seq_end;
	uint64_t t_in_ns;
	uint64_t n;
};

#define LAT_BOUNDS {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, \
                    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
#define PRODUCER_BOUNDS {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, \
                         0.5, 1, 2.5, 5, 10, 30, 60, 300}

static struct gos_hist applied_hist = {.n_bounds = 16, .bounds = LAT_BOUNDS};
static struct gos_hist published_hist = {.n_bounds = 16, .bounds = LAT_BOUNDS};
static struct gos_hist sent_hist = {.n_bounds = 16, .bounds = LAT_BOUNDS};
static struct gos_hist producer_hist = {.n_bounds = 16, .bounds = PRODUCER_BOUNDS};
static _Atomic uint64_t producer_skipped;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pending ring[RING];
static size_t head, count;     /* oldest at head */
static size_t n_pub;           /* of those, published (the oldest n_pub) */

static void drop_oldest(void)
{
	head = (head + 1) % RING;
	count--;
	if (n_pub)
		n_pub--;
}

static bool is_map_event(enum gos_event_type t)
{
	return t == GOS_EV_TOKEN || t == GOS_EV_STATE || t == GOS_EV_VIZ;
}

void gos_pipeline_applied(const struct gos_batch *b, uint64_t seq_start, uint64_t seq_end)
{
	uint64_t now = gos_now_ns();
	double now_rt = gos_now_realtime_s();
	uint64_t n = 0, skipped = 0;
	struct gos_hist_local prod = {0};
	for (size_t i = 0; i < b->n; i++) {
		const struct gos_event *ev = &b->ev[i];
		if (!is_map_event(ev->type))
			continue;
		n++;
		if (ev->type != GOS_EV_TOKEN)
			continue;
		double d = now_rt - ev->token.timestamp;
		if (d >= -GOS_PIPELINE_AHEAD_S && d <= GOS_PIPELINE_BEHIND_S)
			gos_hist_local_observe(&producer_hist, &prod, d);  /* < 0: 0 */
		else
			skipped++;
	}
	gos_hist_merge(&producer_hist, &prod);
	if (skipped)
		atomic_fetch_add_explicit(&producer_skipped, skipped, memory_order_relaxed);
	if (!b->t_in_ns || !n)
		return;
	gos_hist_observe_n(&applied_hist, (double)(now - b->t_in_ns) * 1e-9, n);
	pthread_mutex_lock(&lock);
	/* a seq below what is kept: another map (a restart in tests) */
	if (count && ring[(head + count - 1) % RING].seq_end > seq_start)
		count = n_pub = 0;
	if (count == RING)
		drop_oldest();
	ring[(head + count) % RING] = (struct pending){seq_end, b->t_in_ns, n};
	count++;
	pthread_mutex_unlock(&lock);
}

void gos_pipeline_published(uint64_t seq, bool viewers)
{
	uint64_t now = gos_now_ns();
	pthread_mutex_lock(&lock);
	if (!viewers) {
		/* nobody to write them to, nor the ones published before */
		while (count && ring[head].seq_end <= seq)
			drop_oldest();
		n_pub = 0;
	}
	while (viewers && n_pub < count && ring[(head + n_pub) % RING].seq_end <= seq) {
		const struct pending *p = &ring[(head + n_pub) % RING];
		gos_hist_observe_n(&published_hist, (double)(now - p->t_in_ns) * 1e-9, p->n);
		n_pub++;
	}
	pthread_mutex_unlock(&lock);
}

void gos_pipeline_sent(uint64_t seq)
{
	uint64_t now = gos_now_ns();
	pthread_mutex_lock(&lock);
	while (count && ring[head].seq_end <= seq) {
		const struct pending *p = &ring[head];
		double d = (double)(now - p->t_in_ns) * 1e-9;
		if (!n_pub)   /* written before the broadcaster marked it published */
			gos_hist_observe_n(&published_hist, d, p->n);
		gos_hist_observe_n(&sent_hist, d, p->n);
		drop_oldest();
	}
	pthread_mutex_unlock(&lock);
}

void gos_pipeline_metrics(struct gos_buf *out)
{
	const char *name = "gos_pipeline_latency_seconds";
	gos_metrics_family(out, name, "histogram",
	                   "Seconds from an event's arrival at the compositor to a stage: "
	                   "applied to the map, published to the web service, first byte "
	                   "sent to a viewer.");
	gos_metrics_hist_samples(out, name, "stage=\"applied\"", &applied_hist);
	gos_metrics_hist_samples(out, name, "stage=\"published\"", &published_hist);
	gos_metrics_hist_samples(out, name, "stage=\"sent\"", &sent_hist);
	gos_metrics_hist(out, "gos_producer_latency_seconds",
	                 "Seconds from a token's producer timestamp to the core applying it "
	                 "(wall clocks; a producer ahead counts 0).", &producer_hist);
	gos_metrics_one(out, "gos_producer_timestamps_skipped_total", "counter",
	                "Tokens whose timestamp is too far from the compositor's clock to measure.",
	                atomic_load_explicit(&producer_skipped, memory_order_relaxed));
}

static void hist_zero(struct gos_hist *h)
{
	for (uint32_t i = 0; i <= GOS_HIST_MAX_BUCKETS; i++)
		atomic_store(&h->counts[i], 0);
	atomic_store(&h->sum_ns, 0);
}

void gos_pipeline_reset(void)
{
	hist_zero(&applied_hist);
	hist_zero(&published_hist);
	hist_zero(&sent_hist);
	hist_zero(&producer_hist);
	atomic_store(&producer_skipped, 0);
	pthread_mutex_lock(&lock);
	head = count = n_pub = 0;
	pthread_mutex_unlock(&lock);
}
