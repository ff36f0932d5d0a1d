/* Core thread: queue -> map. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "gos_core.h"
#include "gos_heartbeat.h"
#include "gos_pipeline.h"
#include "gos_time.h"

struct gos_core {
	struct gos_core_opts o;
	pthread_t thread;
	_Atomic uint64_t batches, events;
	uint64_t seq;                /* the map's seq after the last batch */
};

/* Applies the events between barriers; records each event's seq (and, at
 * a barrier, the seq and token count there) for the journal. */
static void apply_run(struct gos_core *c, struct gos_batch *b, size_t from, size_t to)
{
	if (to == from)
		return;
	gos_map_apply_seq(c->o.map, b->ev + from, to - from, b->seq_end + from);
	c->seq = b->seq_end[to - 1];
	atomic_fetch_add(&c->events, to - from);
}

static void apply_batch(struct gos_core *c, struct gos_batch *b)
{
	gos_batch_seq_end(b);
	b->t = gos_now_realtime_s();
	if (b->adopt) {   /* a checkpoint: the replica starts from it */
		gos_map_adopt(c->o.map, b->adopt);
		b->adopt = NULL;
		b->adopt_seq = true;   /* the journal marks where */
	}
	if (b->seq_floor > c->seq) {
		if (c->o.journal)
			gos_journal_lease(c->o.journal, b->seq_floor);
		gos_map_advance_seq(c->o.map, b->seq_floor);
		c->seq = b->seq_floor;
	}
	if (c->o.journal)
		gos_journal_lease(c->o.journal, c->seq + gos_journal_lease_bound(b));
	size_t start = 0;
	for (size_t i = 0; i < b->n; i++) {
		enum gos_event_type t = b->ev[i].type;
		if (t != GOS_EV_SYNC && t != GOS_EV_SCREENSHOT)
			continue;
		apply_run(c, b, start, i);
		start = i + 1;
		b->seq_end[i] = c->seq;
		struct gos_map_stats st;
		gos_map_stats(c->o.map, &st);
		if (t == GOS_EV_SYNC) {
			b->ev[i].sync.tokens = st.live_tokens;
			/* with a journal, the reply waits until the events are on disk */
			if (!c->o.journal && c->o.on_sync)
				c->o.on_sync(c->o.ctx, &b->ev[i].sync, st.live_tokens);
		} else if (c->o.on_screenshot) {
			c->o.on_screenshot(c->o.ctx, &b->ev[i].shot, st.live_tokens);
		}
	}
	apply_run(c, b, start, b->n);
	atomic_fetch_add(&c->batches, 1);
}

static void *core_main(void *arg)
{
	struct gos_core *c = arg;
	struct gos_batch *b;
	pthread_setname_np(pthread_self(), "gos-core");  /* for top, perf */
	gos_hb_start(GOS_HB_CORE, 0);
	for (;;) {
		gos_hb_beat(GOS_HB_CORE);
		/* timed, to beat while idle; NULL and closed: closed and drained */
		if (!(b = gos_queue_pop(c->o.queue, GOS_HB_WAIT_MS))) {
			if (gos_queue_closed(c->o.queue))
				break;
			continue;
		}
		uint64_t seq_start = c->seq;
		apply_batch(c, b);
		gos_pipeline_applied(b, seq_start, c->seq);
		if (c->o.on_applied)
			c->o.on_applied(c->o.ctx, b, seq_start);
		if (c->o.journal)
			gos_journal_submit(c->o.journal, b);   /* back to the pool once written */
		else
			gos_queue_put_batch(c->o.queue, b);
	}
	gos_hb_stop(GOS_HB_CORE);
	return NULL;
}

struct gos_core *gos_core_create(const struct gos_core_opts *opts)
{
	struct gos_core *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->o = *opts;
	struct gos_map_stats st;
	gos_map_stats(c->o.map, &st);
	c->seq = st.seq;
	if (pthread_create(&c->thread, NULL, core_main, c) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

void gos_core_destroy(struct gos_core *c)
{
	if (!c)
		return;
	gos_queue_close(c->o.queue);
	pthread_join(c->thread, NULL);
	free(c);
}

void gos_core_stats(struct gos_core *c, struct gos_core_stats *out)
{
	out->batches = atomic_load(&c->batches);
	out->events = atomic_load(&c->events);
}
