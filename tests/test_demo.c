/* The built-in demo stream: concurrent generations, valid events, a map
 * that fills with several streams at once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gos_demo.h"
#include "gos_map.h"
#include "gos_queue.h"
#include "gos_test.h"
#include "gos_utf8.h"

int main(void)
{
	struct gos_demo_state *s = gos_demo_state_create(4, 42);
	struct gos_map *m = gos_map_create(NULL);
	struct gos_batch b = {0};
	int tokens = 0, states = 0, bad = 0;
	/* one event per call, as the demo thread does at a low rate */
	for (int i = 0; i < 400; i++) {
		gos_batch_clear(&b);
		gos_demo_generate(s, &b, 1, i * 0.01);
		for (size_t k = 0; k < b.n; k++) {
			const struct gos_event *e = &b.ev[k];
			if (e->type == GOS_EV_TOKEN) {
				tokens++;
				const struct gos_token_ev *t = &e->token;
				bad += !t->id[0] || !t->stream[0] || !(t->confidence >= 0 && t->confidence <= 1) ||
				       !gos_utf8_valid(t->text, strlen(t->text)) || t->n_alts == 0;
			} else if (e->type == GOS_EV_STATE) {
				states++;
			}
		}
		gos_map_apply(m, b.ev, b.n);
	}
	CHECK(tokens > 300 && states > 4, "tokens %d, neural_states %d", tokens, states);
	CHECK(bad == 0, "%d demo tokens with empty id/stream, bad confidence, bad UTF-8 or no alternatives", bad);
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	/* 400 events, 4 generations at a time: the first four streams all got
	 * tokens before any of them could finish (generations are 40+ tokens). */
	int early = 0;
	for (size_t i = 0; i < v.n_streams && i < 4; i++)
		early += v.streams[i].n_tokens >= 20;
	CHECK(early == 4, "4 generations run at once (of the first 4 streams, %d got 20+ tokens)", early);
	gos_map_view_finish(&v);
	gos_batch_clear(&b);
	free(b.ev);
	gos_arena_finish(&b.arena);
	gos_map_destroy(m);
	gos_demo_state_destroy(s);
	return gos_test_report("test_demo");
}
