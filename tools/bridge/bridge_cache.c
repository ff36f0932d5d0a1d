/* gos-bridge --cache: a generation that finished is stored (gos_gencache)
 * under its request: the model, the messages or prompt, the sampling
 * parameters, the seed, and which of the --parallel generations it was
 * (so a rerun of --parallel N replays N different generations). The same
 * request later replays the stored tokens, logprobs and alternatives at
 * their recorded pace (--cache-speed) without asking the server. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bridge.h"
#include "gos_time.h"

/* The canonical text of the job's request (malloc'd). */
static char *request_text(const struct job *j)
{
	const struct bridge *b = j->b;
	const struct options *o = &b->o;
	cJSON *r = cJSON_CreateObject();
	if (!r)
		abort();
	cJSON_AddStringToObject(r, "endpoint", o->completions ? "completions" : "chat");
	/* No model name: the first server stands for it. */
	if (o->model && o->model[0])
		cJSON_AddStringToObject(r, "model", o->model);
	else
		cJSON_AddStringToObject(r, "server", b->up[0].base);
	cJSON_AddStringToObject(r, "system", o->system && !o->completions ? o->system : "");
	cJSON_AddStringToObject(r, "prompt", b->prompt);
	cJSON_AddNumberToObject(r, "max_tokens", (double)o->max_tokens);
	cJSON_AddNumberToObject(r, "temperature", o->temperature);
	cJSON_AddBoolToObject(r, "logprobs", !o->no_logprobs);
	cJSON_AddNumberToObject(r, "top_logprobs", o->no_logprobs ? 0 : o->top_logprobs);
	if (o->has_seed)
		cJSON_AddNumberToObject(r, "seed", (double)o->seed);
	else
		cJSON_AddNullToObject(r, "seed");
	cJSON_AddNumberToObject(r, "generation", j->index + 1);
	char *s = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	if (!s)
		abort();
	return s;
}

bool bridge_cache_lookup(struct job *j, double now)
{
	struct bridge *b = j->b;
	char *req = request_text(j);
	char why[200] = "";
	enum gos_gencache_result res = gos_gencache_load(b->o.cache_dir, req, &j->replay, &j->cache_arena,
	                                                 why, sizeof why);
	free(req);
	if (res != GOS_GENCACHE_HIT) {
		if (res == GOS_GENCACHE_CORRUPT) {
			b->cache_corrupt++;
			bridge_fail("%s: the cache entry in %s is corrupt (%s): a miss, asking the server", j->stream,
			            b->o.cache_dir, why);
		}
		b->cache_misses++;
		return false;
	}
	b->cache_hits++;
	j->replaying = true;
	j->replay_next = 0;
	j->replay_t0 = now;
	j->last_activity = now;
	j->state = JOB_RUNNING;
	j->sent_processing = true;
	bridge_emit_state(j, "processing", NULL);
	return true;
}

double bridge_cache_replay(struct job *j, double now)
{
	const struct gos_gencache_entry *e = &j->replay;
	double speed = j->b->o.cache_speed;
	while (j->replay_next < e->n_tokens) {
		const struct gos_gencache_token *t = &e->tokens[j->replay_next];
		double due = speed > 0 ? j->replay_t0 + t->t_ms / 1e3 / speed : now;
		if (due > now)
			return due;
		bridge_emit_token(j, t->text, t->logprob, t->alts, t->n_alts);
		j->replay_next++;
		j->last_activity = now;
		if (now - j->last_state >= STATE_EVERY_S)
			bridge_emit_state(j, "processing", NULL);
	}
	if (e->finish_reason)
		snprintf(j->finish_reason, sizeof j->finish_reason, "%s", e->finish_reason);
	j->completion_tokens = e->completion_tokens;
	bridge_job_done(j);
	return INFINITY;
}

void bridge_cache_record(struct job *j, const char *text, double logprob, const struct gos_alt *alts,
                         uint32_t n_alts)
{
	if (j->n_rec == j->cap_rec) {
		uint32_t cap = j->cap_rec ? j->cap_rec * 2 : 64;
		struct gos_gencache_token *r = realloc(j->rec, cap * sizeof *r);
		if (!r)
			abort();
		j->rec = r;
		j->cap_rec = cap;
	}
	struct gos_gencache_token *t = &j->rec[j->n_rec++];
	*t = (struct gos_gencache_token){
		.t_ms = (gos_now_s() - j->attempt_t0) * 1e3,
		.text = gos_arena_strndup(&j->cache_arena, text, strlen(text)),
		.logprob = logprob,
		.n_alts = n_alts,
	};
	if (n_alts) {
		t->alts = gos_arena_alloc(&j->cache_arena, n_alts * sizeof *t->alts, _Alignof(struct gos_alt));
		for (uint32_t k = 0; k < n_alts; k++)
			t->alts[k] = (struct gos_alt){
				.token = gos_arena_strndup(&j->cache_arena, alts[k].token, strlen(alts[k].token)),
				.logprob = alts[k].logprob,
			};
	}
}

void bridge_cache_store(struct job *j)
{
	struct bridge *b = j->b;
	char *req = request_text(j);
	struct gos_gencache_entry e = {
		.request = req,
		.finish_reason = j->finish_reason[0] ? j->finish_reason : NULL,
		.completion_tokens = j->completion_tokens,
		.ttft_ms = j->t_first > 0 ? (j->t_first - j->attempt_t0) * 1e3 : NAN,
		.elapsed_ms = (gos_now_s() - j->attempt_t0) * 1e3,
		.n_tokens = j->n_rec,
		.tokens = j->rec,
	};
	/* Tests only: a pause with half the file written, to kill the bridge
	 * there (test_bridge_pool). */
	const char *pause = getenv("GOS_BRIDGE_TEST_CACHE_PAUSE_MS");
	struct gos_gencache_opts o = {
		.max_bytes = b->o.cache_max_bytes,
		.pause_ms = pause ? (unsigned)strtoul(pause, NULL, 10) : 0,
	};
	char why[300];
	if (gos_gencache_store(b->o.cache_dir, &e, &o, why, sizeof why))
		b->cache_stored++;
	else
		bridge_fail("%s: not cached: %s", j->stream, why);
	free(req);
}
