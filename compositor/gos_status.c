/* /metrics and /health content (see gos_status.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gos_metrics.h"
#include "gos_status.h"

/* A renderer that presented nothing for this long is reported as stalled. */
#define RENDER_STALL_S 2.0

struct gos_status {
	struct gos_status_sources src;
	struct gos_hist frame_hist;
	_Atomic uint64_t frames;
	_Atomic uint64_t last_frame_ns;   /* CLOCK_MONOTONIC */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *const event_names[5] = {
	"none", "token_activation", "neural_state", "token_visualization", "sync",
};

struct gos_status *gos_status_create(const struct gos_status_sources *src)
{
	static const double frame_bounds[] = {0.001, 0.002, 0.004, 0.008, 0.0167, 0.025,
	                                      0.0333, 0.05, 0.1, 0.25, 1.0};
	struct gos_status *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->src = *src;
	gos_hist_init(&s->frame_hist, frame_bounds, sizeof(frame_bounds) / sizeof(frame_bounds[0]));
	return s;
}

void gos_status_destroy(struct gos_status *s)
{
	free(s);
}

void gos_status_frame(struct gos_status *s, double seconds)
{
	gos_hist_observe(&s->frame_hist, seconds);
	atomic_fetch_add_explicit(&s->frames, 1, memory_order_relaxed);
	atomic_store_explicit(&s->last_frame_ns, mono_ns(), memory_order_relaxed);
}

static void one(struct gos_text *t, const char *name, const char *type, const char *help,
                uint64_t v)
{
	gos_metrics_family(t, name, type, help);
	gos_metrics_sample_u64(t, name, NULL, v);
}

void gos_status_metrics(void *ctx, struct gos_text *t)
{
	struct gos_status *s = ctx;
	char lab[96];

	struct gos_map_stats ms;
	gos_map_stats(s->src.map, &ms);
	one(t, "gos_tokens", "gauge", "Tokens on the map now.", ms.live_tokens);
	one(t, "gos_streams", "gauge", "Streams (generations) known to the map.", ms.streams);
	one(t, "gos_tokens_evicted_total", "counter", "Tokens evicted past --max-tokens.", ms.evicted);
	one(t, "gos_tokens_added_total", "counter", "New tokens placed on the map.", ms.tokens_added);
	one(t, "gos_tokens_updated_total", "counter", "Token updates (same token_id again).", ms.tokens_updated);
	one(t, "gos_map_seq", "gauge", "The map's change sequence number.", ms.seq);
	gos_metrics_family(t, "gos_events_applied_total", "counter",
	                   "Events applied to the map, by type.");
	for (int i = 1; i <= 3; i++) {
		snprintf(lab, sizeof(lab), "type=\"%s\"", event_names[i]);
		gos_metrics_sample_u64(t, "gos_events_applied_total", lab, ms.applied[i]);
	}

	if (s->src.ingest) {
		struct gos_ingest_stats is;
		gos_ingest_stats(s->src.ingest, &is);
		gos_metrics_family(t, "gos_events_total", "counter",
		                   "Events accepted from producers, by type.");
		for (int i = 1; i <= 4; i++) {
			snprintf(lab, sizeof(lab), "type=\"%s\"", event_names[i]);
			gos_metrics_sample_u64(t, "gos_events_total", lab, is.accepted[i]);
		}
		gos_metrics_family(t, "gos_events_rejected_total", "counter",
		                   "Lines rejected (answered with an error line), by reason.");
		for (int r = 1; r < GOS_REJECT_COUNT_; r++) {
			snprintf(lab, sizeof(lab), "reason=\"%s\"", gos_reject_name((enum gos_reject)r));
			gos_metrics_sample_u64(t, "gos_events_rejected_total", lab, is.rejected[r]);
		}
		one(t, "gos_ingest_connections", "gauge", "Producer connections open now.", is.connections);
		one(t, "gos_ingest_connections_total", "counter", "Producer connections accepted.",
		    is.connections_total);
		one(t, "gos_ingest_received_bytes_total", "counter", "Bytes read from producers.",
		    is.bytes_in);
		one(t, "gos_ingest_lines_total", "counter", "Lines (or frames) read from producers.",
		    is.lines);
		one(t, "gos_ingest_queue_full_waits_total", "counter",
		    "Times ingest stopped reading because the core's queue was full.",
		    is.queue_full_waits);
	}
	if (s->src.core) {
		struct gos_core_stats cs;
		gos_core_stats(s->src.core, &cs);
		one(t, "gos_core_batches_total", "counter", "Event batches applied by the core.",
		    cs.batches);
	}
	gos_metrics_hist(t, "gos_frame_duration_seconds",
	                 "Time per presented frame (render thread).", &s->frame_hist);
	if (s->src.broadcast)
		gos_broadcast_metrics(s->src.broadcast, t);
}

bool gos_status_health(void *ctx, struct gos_text *t)
{
	struct gos_status *s = ctx;
	struct gos_map_stats ms;
	gos_map_stats(s->src.map, &ms);
	uint64_t frames = atomic_load_explicit(&s->frames, memory_order_relaxed);
	double age = frames ? (double)(mono_ns() - atomic_load_explicit(&s->last_frame_ns,
	                                                                  memory_order_relaxed)) / 1e9
	                    : -1;
	/* No renderer yet (headless without frames) is not a failure; a renderer
	 * that presented frames and then stopped is. */
	bool render_ok = frames == 0 || age < RENDER_STALL_S;
	bool ok = render_ok;
	gos_text_printf(t, "\"status\":\"%s\",\"tokens\":%llu,\"streams\":%llu,\"seq\":%llu",
	                ok ? "ok" : "degraded", (unsigned long long)ms.live_tokens,
	                (unsigned long long)ms.streams, (unsigned long long)ms.seq);
	if (s->src.ingest) {
		struct gos_ingest_stats is;
		gos_ingest_stats(s->src.ingest, &is);
		uint64_t accepted = 0;
		for (int i = 0; i < 5; i++)
			accepted += is.accepted[i];
		gos_text_printf(t, ",\"ingest\":{\"alive\":true,\"connections\":%llu,\"events\":%llu}",
		                (unsigned long long)is.connections, (unsigned long long)accepted);
	} else {
		gos_text_puts(t, ",\"ingest\":{\"alive\":false}");
	}
	if (frames)
		gos_text_printf(t, ",\"render\":{\"alive\":%s,\"frames\":%llu,\"last_frame_age_s\":%.3f}",
		                render_ok ? "true" : "false", (unsigned long long)frames, age);
	else
		gos_text_puts(t, ",\"render\":{\"alive\":false,\"frames\":0,\"last_frame_age_s\":null}");
	if (s->src.broadcast) {
		struct gos_broadcast_stats bs;
		gos_broadcast_stats(s->src.broadcast, &bs);
		gos_text_printf(t, ",\"broadcast\":{\"seq\":%llu,\"ticks\":%llu}",
		                (unsigned long long)bs.seq, (unsigned long long)bs.ticks);
	}
	return ok;
}
