/* For the protocol tests and fuzzers, header-only: two parsed events are
 * the same when every field is, numbers compared bit for bit (so NAN equals
 * NAN and -0 differs from 0: the two parse paths must agree exactly). */
#ifndef GOS_EVENT_EQUAL_H
#define GOS_EVENT_EQUAL_H

#include <stdbool.h>
#include <string.h>

#include "gos_event.h"

static inline bool same_str(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static inline bool same_bits_f(float a, float b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

static inline bool same_bits_d(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

static inline bool same_event(const struct gos_event *a, const struct gos_event *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case GOS_EV_TOKEN: {
		const struct gos_token_ev *x = &a->token, *y = &b->token;
		if (!same_str(x->id, y->id) || !same_str(x->text, y->text) ||
		    !same_str(x->stream, y->stream) || !same_bits_d(x->timestamp, y->timestamp) ||
		    x->has_position != y->has_position || !same_bits_f(x->x, y->x) ||
		    !same_bits_f(x->y, y->y) || !same_bits_f(x->confidence, y->confidence) ||
		    !same_bits_f(x->logprob, y->logprob) || x->n_alts != y->n_alts)
			return false;
		for (uint32_t i = 0; i < x->n_alts; i++)
			if (!same_str(x->alts[i].token, y->alts[i].token) ||
			    !same_bits_f(x->alts[i].logprob, y->alts[i].logprob))
				return false;
		return true;
	}
	case GOS_EV_STATE: {
		const struct gos_state_ev *x = &a->state, *y = &b->state;
		return same_str(x->state, y->state) && same_str(x->stream, y->stream) &&
		       x->tokens_processed == y->tokens_processed &&
		       x->total_tokens == y->total_tokens && same_bits_d(x->elapsed_ms, y->elapsed_ms);
	}
	case GOS_EV_VIZ:
		if (a->viz.n_tokens != b->viz.n_tokens)
			return false;
		for (uint32_t i = 0; i < a->viz.n_tokens; i++) {
			const struct gos_viz_token *x = &a->viz.tokens[i], *y = &b->viz.tokens[i];
			if (!same_str(x->id, y->id) || !same_str(x->text, y->text) ||
			    !same_str(x->stream, y->stream) || !same_bits_f(x->x, y->x) ||
			    !same_bits_f(x->y, y->y) || !same_bits_f(x->confidence, y->confidence))
				return false;
		}
		return true;
	case GOS_EV_SYNC:
		return a->sync.conn == b->sync.conn && a->sync.applied == b->sync.applied &&
		       a->sync.rejected == b->sync.rejected;
	case GOS_EV_SCREENSHOT:
		return same_str(a->shot.path, b->shot.path) && a->shot.fit == b->shot.fit &&
		       a->shot.conn == b->shot.conn;
	case GOS_EV_NONE:
	case GOS_EV_COUNT_:
		return true;
	}
	return false;
}

#endif
