/* gos-bench search: the search index (compositor/web/gos_search.c) over a
 * map of N tokens (default 1M) of English-like text with some Unicode in 16
 * streams: how long the first search takes (the index built from the whole
 * map), its size, then p50/p99 of Q searches (common words, rare words,
 * phrases across tokens, no match) through gos_search_run, and of a search
 * that first catches up with 10,000 new tokens. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_bench.h"
#include "gos_map.h"
#include "gos_search.h"
#include "gos_time.h"

#define STREAMS 16
#define BATCH   4096

/* Word frequencies fall off as 1/rank (Zipf): the first ones are common. */
static const char *const words[] = {
	"the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "with", "was", "on",
	"be", "by", "this", "are", "or", "from", "at", "an", "which", "have", "not", "model",
	"token", "we", "can", "more", "one", "their", "has", "all", "but", "they", "data", "its",
	"time", "will", "language", "each", "these", "other", "when", "than", "into", "only",
	"Search", "Model", "The", "It", "new", "used", "between", "first", "two", "may", "after",
	"such", "where", "however", "network", "attention", "layer", "output", "input", "value",
	"probability", "sequence", "training", "learning", "function", "result", "example",
	"number", "system", "information", "different", "because", "through", "while", "should",
	"café", "naïve", "Straße", "ÜBER", "Ελλάδα", "Москва", "東京", "猫", "🙂", "résumé",
	"zeitgeist", "quixotic", "ephemeral", "serendipity", "labyrinth", "obsidian", "halcyon",
	"mellifluous", "petrichor", "sonder", "vellichor", "apricity", "crepuscular", "susurrus",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double cum[N_WORDS];

static const char *pick_word(void)
{
	double u = (double)(next_rand() >> 11) / 9007199254740992.0 * cum[N_WORDS - 1];
	size_t lo = 0, hi = N_WORDS - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cum[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return words[lo];
}

/* A token's text: " word", sometimes a word split in two tokens, or
 * punctuation. */
static void token_text(char *out, size_t cap, char *carry)
{
	if (carry[0]) {
		snprintf(out, cap, "%s", carry);
		carry[0] = 0;
		return;
	}
	uint64_t r = next_rand() % 100;
	if (r < 6) {
		snprintf(out, cap, "%s", r < 3 ? "," : r < 5 ? "." : "\n");
		return;
	}
	const char *w = pick_word();
	size_t n = strlen(w);
	if (r < 20 && n >= 6) {
		size_t cut = n / 2;
		while (cut < n && ((unsigned char)w[cut] & 0xC0) == 0x80)
			cut++;
		snprintf(out, cap, " %.*s", (int)cut, w);
		snprintf(carry, 64, "%s", w + cut);
		return;
	}
	snprintf(out, cap, " %s", w);
}

/* Applies n tokens, ids from *next on. */
static void add_tokens(struct gos_map *m, uint64_t n, uint64_t *next)
{
	static char ids[BATCH][24], texts[BATCH][64], carry[STREAMS][64];
	static const char *names[STREAMS];
	static char name_buf[STREAMS][16];
	static struct gos_event ev[BATCH];
	for (int i = 0; i < STREAMS; i++) {
		snprintf(name_buf[i], sizeof(name_buf[i]), "gen-%d", i);
		names[i] = name_buf[i];
	}
	while (n) {
		size_t k = n < BATCH ? (size_t)n : BATCH;
		for (size_t i = 0; i < k; i++) {
			uint64_t id = (*next)++;
			int s = (int)(id % STREAMS);
			snprintf(ids[i], sizeof(ids[i]), "t%" PRIu64, id);
			token_text(texts[i], sizeof(texts[i]), carry[s]);
			ev[i] = (struct gos_event){.type = GOS_EV_TOKEN, .token = {
				.id = ids[i], .text = texts[i], .stream = names[s],
				.timestamp = (double)id, .confidence = (float)(next_rand() % 1000) / 1000.0f,
				.logprob = NAN}};
		}
		gos_map_apply(m, ev, k);
		n -= k;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct kind {
	const char *name;
	double *t;
	int n;
	uint64_t matches;
};

static void report(struct kind *k)
{
	if (!k->n)
		return;
	qsort(k->t, (size_t)k->n, sizeof(*k->t), cmp_double);
	printf("%-28s %8d %10.2f %10.2f %10.2f %14.0f\n", k->name, k->n, k->t[k->n / 2] * 1e3,
	       k->t[(int)((k->n - 1) * 0.99)] * 1e3, k->t[k->n - 1] * 1e3,
	       (double)k->matches / k->n);
}

int gos_bench_search(int argc, char **argv)
{
	uint64_t n = 1000000;
	int queries = 200;
	static const struct option longopts[] = {
		{"tokens", required_argument, NULL, 't'},
		{"queries", required_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 't' || c == 'q') {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v < (c == 't' ? 1000u : 4u) || v > 100000000) {
				fprintf(stderr, "gos-bench search: --%s wants a number (tokens >= 1000, "
				        "queries >= 4)\n", c == 't' ? "tokens" : "queries");
				return 2;
			}
			if (c == 't')
				n = v;
			else
				queries = (int)v;
		} else if (c == 'h') {
			printf("usage: gos-bench search [--tokens N] [--queries Q]\n"
			       "A map of N tokens (default 1000000) of English-like text with some Unicode\n"
			       "in 16 streams; the first search (building the search index from the whole\n"
			       "map) and the index's size; then p50/p99 of Q searches (default 200: common\n"
			       "words, rare words, phrases across tokens, no match; limit 100) through\n"
			       "gos_search_run, and of searches that first catch up with 10000 new tokens.\n");
			return 0;
		} else {
			return 2;
		}
	}
	for (size_t i = 0; i < N_WORDS; i++)
		cum[i] = (i ? cum[i - 1] : 0) + 1.0 / (double)(i + 1);

	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = n});
	uint64_t next = 0;
	double t0 = gos_now_s();
	add_tokens(m, n, &next);
	double fill_s = gos_now_s() - t0;
	struct gos_search *s = gos_search_create(&(struct gos_search_opts){.map = m}, NULL, 0);
	struct gos_search_result r = {0};
	char err[200];
	t0 = gos_now_s();
	if (!gos_search_run(s, &(struct gos_search_query){.q = "the"}, &r, err, sizeof(err))) {
		fprintf(stderr, "gos-bench search: %s\n", err);
		return 1;
	}
	double build_s = gos_now_s() - t0;
	struct gos_search_stats st;
	gos_search_stats(s, &st);

	static const char *const common[] = {"the", " of the", "and", "model", "The", "is a"};
	static const char *const rare[] = {"quixotic", "petrichor", "SUSURRUS", "Straße",
	                                   "ελλάδα", "東京", "🙂", "apricity"};
	static const char *const phrases[] = {"the model", "of the language", "in the", "attention layer",
	                                      "naïve café", "training data", "it is the", ". the"};
	static const char *const none[] = {"zqxjv", "xyzzy the", "xylophone", "ЁЁЁ"};
	struct kind kinds[5] = {
		{"common words", NULL, 0, 0}, {"rare words", NULL, 0, 0},
		{"phrases (across tokens)", NULL, 0, 0}, {"no match", NULL, 0, 0},
		{"catch up 10k tokens + search", NULL, 0, 0},
	};
	for (int k = 0; k < 5; k++)
		kinds[k].t = calloc((size_t)queries, sizeof(double));
	for (int i = 0; i < queries; i++) {
		int k = i % 4;
		const char *q = k == 0 ? common[next_rand() % 6] : k == 1 ? rare[next_rand() % 8] :
		                k == 2 ? phrases[next_rand() % 8] : none[next_rand() % 4];
		t0 = gos_now_s();
		gos_search_run(s, &(struct gos_search_query){.q = q}, &r, err, sizeof(err));
		kinds[k].t[kinds[k].n++] = gos_now_s() - t0;
		kinds[k].matches += r.count;
	}
	int catchups = queries / 10 > 4 ? queries / 10 : 4;
	for (int i = 0; i < catchups; i++) {
		add_tokens(m, 10000, &next);   /* evicts as many: the map stays at N */
		t0 = gos_now_s();
		gos_search_run(s, &(struct gos_search_query){.q = phrases[i % 8]}, &r, err, sizeof(err));
		kinds[4].t[kinds[4].n++] = gos_now_s() - t0;
		kinds[4].matches += r.count;
	}
	printf("gos-bench search: %" PRIu64 " tokens in %d streams (map filled in %.1f s)\n", n,
	       STREAMS, fill_s);
	printf("index: built in %.0f ms at the first search; %" PRIu64 " tokens, %.1f MB folded "
	       "text (%.1f MB allocated), %.1f MB in all: %.1f bytes/token beside the text\n",
	       build_s * 1e3, st.tokens, (double)st.text_bytes / 1e6, (double)st.text_alloc / 1e6,
	       (double)st.bytes / 1e6,
	       st.tokens ? (double)(st.bytes - st.text_alloc) / (double)st.tokens : 0.0);
	gos_search_stats(s, &st);
	printf("after the catch-ups: %.1f MB in all, %" PRIu64 " full reads of the map\n",
	       (double)st.bytes / 1e6, st.full_builds);
	printf("%-28s %8s %10s %10s %10s %14s\n", "", "searches", "p50 ms", "p99 ms", "max ms",
	       "matches/search");
	for (int k = 0; k < 5; k++) {
		report(&kinds[k]);
		free(kinds[k].t);
	}
	gos_search_result_finish(&r);
	gos_search_destroy(s);
	gos_map_destroy(m);
	return 0;
}
