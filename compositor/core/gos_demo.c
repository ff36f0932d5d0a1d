/* Built-in demo stream: answers to a few prompts, cut into subword tokens
 * the way a BPE tokenizer would, emitted at a steady rate per stream. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_demo.h"
#include "gos_time.h"

static const char *const answers[] = {
	"The GPU runs thousands of threads in lockstep. Each workgroup shares fast "
	"local memory, so a compute shader that projects tokens reads its inputs once, "
	"transforms them with the camera matrix and writes a compact list of survivors. "
	"Culling early keeps the vertex stage idle for tokens far outside the view.",

	"Photosynthesis converts light into chemical energy. Chlorophyll absorbs red "
	"and blue photons, splitting water and releasing oxygen, while the Calvin cycle "
	"fixes carbon dioxide into sugars that feed almost every food chain on Earth.",

	"def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
	"    return a\n\nThis iterative version runs in linear time and constant memory, "
	"unlike the naive recursion that recomputes the same values exponentially often.",

	"Rome was not built in a day, and neither is a distributed system. Start with "
	"a single node, measure where it hurts, then partition the state that is hot. "
	"Replication buys availability; consensus buys agreement; both cost latency.",

	"Le chat dort sur le canapé pendant que la pluie tombe doucement. Dans la "
	"cuisine, une soupe mijote et l'odeur du thym remplit toute la maison.",

	"A transformer attends to every previous token at once. The attention weights "
	"come from scaled dot products of queries and keys, normalized with a softmax, "
	"and the output mixes the values accordingly. Position enters through rotary "
	"embeddings, which rotate each query and key by an angle that grows with distance.",

	"To make sourdough, feed the starter the night before, mix flour and water, "
	"rest for an hour, then add salt and fold every thirty minutes. Shape, proof "
	"overnight in the fridge and bake hot in a covered pot for a crackling crust.",

	"東京は世界で最も人口の多い都市圏の一つです。Tokyo blends neon districts with quiet "
	"temples, and its trains famously run to the second.",
};
#define N_ANSWERS (sizeof(answers) / sizeof(answers[0]))

static const char *const alt_pool[] = {
	" the", " a", " this", " that", " it", " and", " of", " to", " in", " is",
	" was", " can", " will", " each", " every", " one", " which", " with", ".",
	",", " model", " data", " time", " very", " more", " most", " first",
};
#define N_ALT_POOL (sizeof(alt_pool) / sizeof(alt_pool[0]))

struct demo_tok {
	char text[32];
};

struct gen {
	char stream[32];
	struct demo_tok *toks;
	uint32_t n, next;
	double start;
	bool announced;
	double pause_until;   /* between generations */
};

struct gos_demo_state {
	uint32_t rng;
	uint32_t n_streams;
	uint32_t generation;  /* streams started so far */
	uint32_t next_gen;    /* round-robin cursor across calls */
	struct gen *gens;
};

static uint32_t rnd(struct gos_demo_state *s)
{
	/* xorshift32: deterministic for a given seed */
	uint32_t x = s->rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return s->rng = x;
}

static float frand(struct gos_demo_state *s)
{
	return (float)(rnd(s) >> 8) / (float)(1u << 24);
}

/* Cuts text into BPE-like pieces: a leading space stays with its word,
 * long words split into chunks of 3-5 bytes on UTF-8 boundaries,
 * punctuation and newlines stand alone. */
static uint32_t tokenize(struct gos_demo_state *s, const char *text, struct demo_tok **out)
{
	size_t cap = strlen(text) + 1, n = 0;
	struct demo_tok *t = calloc(cap, sizeof(*t));
	if (!t)
		abort();
	const char *p = text;
	while (*p) {
		const char *start = p;
		if (*p == ' ')
			p++;
		if (*p == '\n' || (*p && strchr(".,:;()!?'", *p))) {
			p++;
		} else {
			size_t limit = 3 + rnd(s) % 3 + (start != p);
			while (*p && *p != ' ' && *p != '\n' && !strchr(".,:;()!?'", *p) &&
			       (size_t)(p - start) < limit) {
				p++;
				while (((unsigned char)*p & 0xC0) == 0x80)
					p++;
			}
		}
		if (p == start)
			p++;
		size_t len = (size_t)(p - start);
		if (len >= sizeof(t[n].text))
			len = sizeof(t[n].text) - 1;
		memcpy(t[n].text, start, len);
		n++;
	}
	*out = t;
	return (uint32_t)n;
}

static void gen_start(struct gos_demo_state *s, struct gen *g, double now)
{
	free(g->toks);
	s->generation++;
	snprintf(g->stream, sizeof(g->stream), "demo-%u", s->generation);
	g->n = tokenize(s, answers[rnd(s) % N_ANSWERS], &g->toks);
	g->next = 0;
	g->start = now;
	g->announced = false;
	g->pause_until = 0;
}

struct gos_demo_state *gos_demo_state_create(uint32_t streams, uint32_t seed)
{
	struct gos_demo_state *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->rng = seed ? seed : 0x9e3779b9u;
	s->n_streams = streams ? streams : 4;
	s->gens = calloc(s->n_streams, sizeof(*s->gens));
	if (!s->gens) {
		free(s);
		return NULL;
	}
	return s;
}

void gos_demo_state_destroy(struct gos_demo_state *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n_streams; i++)
		free(s->gens[i].toks);
	free(s->gens);
	free(s);
}

static char *dup_in(struct gos_batch *b, const char *str)
{
	return gos_arena_strndup(&b->arena, str, strlen(str));
}

static void push_state(struct gos_batch *b, struct gen *g, const char *state, double now)
{
	struct gos_event *e = gos_batch_push(b);
	e->type = GOS_EV_STATE;
	e->state = (struct gos_state_ev){
		.state = dup_in(b, state), .stream = dup_in(b, g->stream),
		.tokens_processed = g->next, .total_tokens = g->n,
		.elapsed_ms = (now - g->start) * 1e3,
	};
}

static void push_token(struct gos_demo_state *s, struct gos_batch *b, struct gen *g)
{
	const char *text = g->toks[g->next].text;
	char id[64];
	snprintf(id, sizeof(id), "%s-%u", g->stream, g->next);
	/* Continuations and function words come out confident; content words
	 * less so, and now and then the model hesitates. */
	float conf;
	float u = frand(s);
	if (text[0] != ' ' && g->next > 0)
		conf = 0.88f + 0.12f * u;
	else if (strlen(text) <= 4)
		conf = 0.7f + 0.3f * u;
	else
		conf = 0.35f + 0.6f * u;
	if (frand(s) < 0.06f)
		conf = 0.05f + 0.3f * frand(s);
	float lp = logf(conf);
	uint32_t n_alts = 1 + rnd(s) % 4;
	struct gos_alt *alts = gos_arena_alloc(&b->arena, (n_alts + 1) * sizeof(*alts), 8);
	alts[0] = (struct gos_alt){.token = dup_in(b, text), .logprob = lp};
	float rest = 1.0f - conf;
	for (uint32_t i = 1; i <= n_alts; i++) {
		float p = rest * (0.3f + 0.4f * frand(s));
		rest -= p;
		alts[i] = (struct gos_alt){.token = alt_pool[rnd(s) % N_ALT_POOL],
		                           .logprob = logf(p > 1e-6f ? p : 1e-6f)};
	}
	struct gos_event *e = gos_batch_push(b);
	e->type = GOS_EV_TOKEN;
	e->token = (struct gos_token_ev){
		.id = dup_in(b, id), .text = dup_in(b, text), .stream = dup_in(b, g->stream),
		.timestamp = (double)time(NULL), .confidence = conf, .logprob = lp,
		.n_alts = n_alts + 1, .alts = alts,
	};
	g->next++;
}

void gos_demo_generate(struct gos_demo_state *s, struct gos_batch *b, uint32_t n, double now)
{
	for (uint32_t k = 0; k < n; k++) {
		struct gen *g = &s->gens[s->next_gen];
		s->next_gen = (s->next_gen + 1) % s->n_streams;
		if (!g->toks || (g->next >= g->n && now >= g->pause_until && g->pause_until > 0)) {
			gen_start(s, g, now);
		}
		if (!g->announced) {
			push_state(b, g, "processing", now);
			g->announced = true;
			continue;
		}
		if (g->next < g->n) {
			push_token(s, b, g);
			if (g->next == g->n) {
				push_state(b, g, "done", now);
				g->pause_until = now + 1.5;
			} else if (g->next % 16 == 0) {
				push_state(b, g, "processing", now);
			}
		}
	}
}

/* ---- the thread ---- */

struct gos_demo {
	struct gos_demo_opts o;
	struct gos_demo_state *state;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

static void *demo_main(void *arg)
{
	struct gos_demo *d = arg;
	double period = 1.0 / (d->o.tokens_per_s * d->o.streams);
	double next = gos_now_s();
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		double t = gos_now_s();
		if (t < next) {
			double wait = next - t;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			long ns = ts.tv_nsec + (long)(wait * 1e9);
			ts.tv_sec += ns / 1000000000L;
			ts.tv_nsec = ns % 1000000000L;
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&d->lock);
		uint32_t n = (uint32_t)((t - next) / period) + 1;
		if (n > 256)
			n = 256;   /* after a stall, catch up a little, not all at once */
		next = t + period;
		if (!d->o.busy || !d->o.busy(d->o.ctx)) {
			struct gos_batch *b = gos_queue_get_batch(d->o.queue);
			gos_demo_generate(d->state, b, n, t);
			b->t_in_ns = gos_now_ns();
			if (!gos_queue_push(d->o.queue, b)) {
				gos_queue_put_batch(d->o.queue, b);
				pthread_mutex_lock(&d->lock);
				break;
			}
		}
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

struct gos_demo *gos_demo_create(const struct gos_demo_opts *opts)
{
	struct gos_demo *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->o = *opts;
	if (!d->o.streams)
		d->o.streams = 4;
	if (d->o.tokens_per_s <= 0)
		d->o.tokens_per_s = 24;
	d->state = gos_demo_state_create(d->o.streams, d->o.seed ? d->o.seed : (uint32_t)time(NULL));
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	if (!d->state || pthread_create(&d->thread, NULL, demo_main, d) != 0) {
		gos_demo_state_destroy(d->state);
		free(d);
		return NULL;
	}
	return d;
}

void gos_demo_destroy(struct gos_demo *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	gos_demo_state_destroy(d->state);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
}
