/* gos_pipeline (compositor/base/gos_pipeline.h) and the histogram helpers
 * it stands on (gos_metrics.h): what /metrics says after batches are
 * applied and published: arrival -> applied per event, -> published only
 * once the broadcaster's seq covers a batch and only with viewers, -> sent
 * once a message covering it is first written (never before published), the
 * producer's timestamp clamped and skipped, the ring forgetting what no
 * broadcaster takes, and the core thread, the broadcaster and the web
 * service at once. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_metrics.h"
#include "gos_pipeline.h"
#include "gos_test.h"
#include "gos_time.h"

/* The value of the /metrics sample whose line starts with `head` ("name{labels} "), or NAN. */
static double sample(const char *head)
{
	struct gos_buf t = {0};
	gos_pipeline_metrics(&t);
	gos_buf_putc(&t, '\0');
	double v = NAN;
	size_t n = strlen(head);
	for (const char *p = t.data; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, head, n)) {
			v = strtod(p + n, NULL);
			break;
		}
	gos_buf_finish(&t);
	return v;
}

#define APPLIED(le) sample("gos_pipeline_latency_seconds_bucket{stage=\"applied\",le=\"" le "\"} ")
#define PUBLISHED_COUNT() sample("gos_pipeline_latency_seconds_count{stage=\"published\"} ")
#define APPLIED_COUNT() sample("gos_pipeline_latency_seconds_count{stage=\"applied\"} ")
#define SENT_COUNT() sample("gos_pipeline_latency_seconds_count{stage=\"sent\"} ")
#define SUM(stage) sample("gos_pipeline_latency_seconds_sum{stage=\"" stage "\"} ")

static void token(struct gos_batch *b, double timestamp)
{
	struct gos_event *ev = gos_batch_push(b);
	ev->type = GOS_EV_TOKEN;
	ev->token.id = "t";
	ev->token.text = "x";
	ev->token.stream = "";
	ev->token.timestamp = timestamp;
}

static void one_token_batch(struct gos_batch *b, uint64_t seq_start, uint64_t seq_end)
{
	gos_batch_clear(b);
	token(b, 0);
	b->t_in_ns = gos_now_ns();
	gos_pipeline_applied(b, seq_start, seq_end);
}

static _Atomic bool stop;

static void *broadcaster(void *arg)
{
	(void)arg;
	uint64_t seq = 0;
	while (!atomic_load(&stop)) {
		gos_pipeline_published(seq, true);
		seq += 7;
	}
	return NULL;
}

static void *writer(void *arg)
{
	(void)arg;
	uint64_t seq = 0;
	while (!atomic_load(&stop)) {
		gos_pipeline_sent(seq);
		seq += 5;
	}
	return NULL;
}

int main(void)
{
	/* the helpers: n at once, local then merged, labelled samples */
	static const double bounds[] = {0.001, 0.01};
	struct gos_hist h;
	gos_hist_init(&h, bounds, 2);
	gos_hist_observe_n(&h, 0.005, 3);
	struct gos_hist_local l = {0};
	gos_hist_local_observe(&h, &l, 0.0005);
	gos_hist_local_observe(&h, &l, -1);
	gos_hist_local_observe(&h, &l, 5);
	gos_hist_merge(&h, &l);
	struct gos_buf t = {0};
	gos_metrics_hist_samples(&t, "x_seconds", "stage=\"a\"", &h);
	gos_buf_putc(&t, '\0');
	CHECK(gos_hist_count(&h) == 6 &&
	      strstr(t.data, "x_seconds_bucket{stage=\"a\",le=\"0.001\"} 2\n"
	                     "x_seconds_bucket{stage=\"a\",le=\"0.01\"} 5\n"
	                     "x_seconds_bucket{stage=\"a\",le=\"+Inf\"} 6\n"
	                     "x_seconds_sum{stage=\"a\"} 5.0155\n"
	                     "x_seconds_count{stage=\"a\"} 6\n"),
	      "labelled histogram: %s", t.data);
	gos_buf_finish(&t);

	/* nothing observed yet: every family and stage is there, at zero */
	gos_pipeline_reset();
	CHECK(APPLIED_COUNT() == 0 && PUBLISHED_COUNT() == 0 && SENT_COUNT() == 0 &&
	      sample("gos_producer_latency_seconds_count ") == 0 &&
	      sample("gos_producer_timestamps_skipped_total ") == 0, "all families at zero");

	/* a batch that arrived 30 ms ago: three tokens (one 0.5 s old by the
	 * producer's clock, one 10 s ahead, one from 2023), a neural_state, a
	 * sync (no map event) */
	struct gos_batch b = {0};
	double now_rt = gos_now_realtime_s();
	token(&b, now_rt - 0.5);
	token(&b, now_rt + 10);
	token(&b, 1.7e9);
	gos_batch_push(&b)->type = GOS_EV_STATE;
	gos_batch_push(&b)->type = GOS_EV_SYNC;
	b.t_in_ns = gos_now_ns() - 30000000ull;
	gos_pipeline_applied(&b, 0, 10);
	CHECK(APPLIED_COUNT() == 4 && APPLIED("0.025") == 0 && APPLIED("0.05") == 4,
	      "applied: 4 events at ~30 ms (count %g, le 0.025: %g, le 0.05: %g)", APPLIED_COUNT(),
	      APPLIED("0.025"), APPLIED("0.05"));
	double psum = sample("gos_producer_latency_seconds_sum ");
	CHECK(sample("gos_producer_latency_seconds_count ") == 2 &&
	      sample("gos_producer_latency_seconds_bucket{le=\"0.001\"} ") == 1 &&
	      sample("gos_producer_latency_seconds_bucket{le=\"0.5\"} ") == 1 &&
	      sample("gos_producer_latency_seconds_bucket{le=\"1\"} ") == 2 && psum >= 0.5 && psum < 0.6,
	      "producer: 0.5 s and one ahead at 0 (sum %g)", psum);
	CHECK(sample("gos_producer_timestamps_skipped_total ") == 1, "the 2023 timestamp is skipped");

	/* published once the broadcaster's seq covers the whole batch */
	gos_pipeline_published(9, true);
	CHECK(PUBLISHED_COUNT() == 0, "seq 9 does not cover a batch ending at 10");
	gos_pipeline_published(10, true);
	CHECK(PUBLISHED_COUNT() == 4 &&
	      sample("gos_pipeline_latency_seconds_bucket{stage=\"published\",le=\"0.025\"} ") == 0,
	      "seq 10: its 4 events published, at >= 30 ms");
	gos_pipeline_published(10, true);
	CHECK(PUBLISHED_COUNT() == 4, "each batch is published once");

	/* without viewers a batch is forgotten, not observed */
	one_token_batch(&b, 10, 12);
	gos_pipeline_published(12, false);
	one_token_batch(&b, 12, 13);
	gos_pipeline_published(13, true);
	CHECK(PUBLISHED_COUNT() == 5 && APPLIED_COUNT() == 6, "no viewers: not published (%g, %g)",
	      PUBLISHED_COUNT(), APPLIED_COUNT());

	/* without an arrival time (a restore): not counted at all */
	gos_batch_clear(&b);
	token(&b, 0);
	gos_pipeline_applied(&b, 13, 14);
	gos_pipeline_published(14, true);
	CHECK(APPLIED_COUNT() == 6 && PUBLISHED_COUNT() == 5, "no arrival time: not counted");

	/* another map (seq back at 0): what the old one left is dropped */
	one_token_batch(&b, 14, 100);
	one_token_batch(&b, 0, 1);
	gos_pipeline_published(1, true);
	CHECK(PUBLISHED_COUNT() == 6, "a new map's batch is published past the old one's (%g)",
	      PUBLISHED_COUNT());

	/* sent: at a write covering the batch, after (or at) published */
	gos_pipeline_reset();
	gos_batch_clear(&b);
	token(&b, 0);
	b.t_in_ns = gos_now_ns() - 30000000ull;
	gos_pipeline_applied(&b, 0, 1);
	gos_pipeline_published(1, true);
	gos_pipeline_sent(0);
	CHECK(SENT_COUNT() == 0, "a write of seq 0 does not cover a batch ending at 1");
	gos_pipeline_sent(1);
	gos_pipeline_sent(1);
	CHECK(SENT_COUNT() == 1 && SUM("sent") >= SUM("published") && SUM("sent") >= 0.03,
	      "sent once, no sooner than published (%g s, %g s)", SUM("sent"), SUM("published"));
	one_token_batch(&b, 1, 2);
	gos_pipeline_sent(2);     /* the service thread wrote before the broadcaster marked it */
	gos_pipeline_published(2, true);
	CHECK(SENT_COUNT() == 2 && PUBLISHED_COUNT() == 2, "written first: published then (%g, %g)",
	      SENT_COUNT(), PUBLISHED_COUNT());
	one_token_batch(&b, 2, 3);
	gos_pipeline_published(3, true);
	gos_pipeline_published(3, false);   /* the viewer left before its write */
	gos_pipeline_sent(3);
	CHECK(SENT_COUNT() == 2 && PUBLISHED_COUNT() == 3, "published, viewer gone: never sent");
	one_token_batch(&b, 3, 4);
	one_token_batch(&b, 4, 5);
	gos_pipeline_published(5, true);
	gos_pipeline_sent(5);   /* one message carries both */
	CHECK(SENT_COUNT() == 4, "one write covers two batches (%g)", SENT_COUNT());

	/* a broadcaster far behind: the ring keeps the newest 4096 batches */
	gos_pipeline_reset();
	for (uint64_t i = 0; i < 5000; i++)
		one_token_batch(&b, i, i + 1);
	gos_pipeline_published(5000, true);
	CHECK(APPLIED_COUNT() == 5000 && PUBLISHED_COUNT() == 4096, "ring: %g applied, %g published",
	      APPLIED_COUNT(), PUBLISHED_COUNT());

	/* the core and the broadcaster at once (TSan) */
	gos_pipeline_reset();
	pthread_t th, tw;
	pthread_create(&th, NULL, broadcaster, NULL);
	pthread_create(&tw, NULL, writer, NULL);
	for (uint64_t i = 0; i < 20000; i++)
		one_token_batch(&b, i, i + 1);
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	pthread_join(tw, NULL);
	gos_pipeline_published(20000, true);
	gos_pipeline_sent(20000);
	CHECK(APPLIED_COUNT() == 20000 && PUBLISHED_COUNT() <= 20000 && PUBLISHED_COUNT() > 0 &&
	      SENT_COUNT() <= PUBLISHED_COUNT() && SENT_COUNT() > 0,
	      "threads: %g applied, %g published, %g sent", APPLIED_COUNT(), PUBLISHED_COUNT(),
	      SENT_COUNT());

	gos_arena_finish(&b.arena);
	free(b.ev);
	free(b.seq_end);
	return gos_test_report("test_pipeline");
}
