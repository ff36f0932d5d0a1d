/* Map state: updates by id, layouts, eviction, change log reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_map.h"
#include "gos_test.h"

static struct gos_event tok(const char *id, const char *text, const char *stream)
{
	return (struct gos_event){.type = GOS_EV_TOKEN, .token = {
		.id = id, .text = text, .stream = stream, .timestamp = 1.0,
		.confidence = 0.5f, .logprob = NAN}};
}

static const struct gos_token *find(const struct gos_map_view *v, const char *id)
{
	for (size_t i = 0; i < v->n_tokens; i++)
		if (!strcmp(v->tokens[i].id, id))
			return &v->tokens[i];
	return NULL;
}

static void test_update_by_id(void)
{
	struct gos_map *m = gos_map_create(NULL);
	struct gos_event e[3] = {tok("a", "hello", ""), tok("b", " world", ""), tok("a", "HELLO", "")};
	e[2].token.confidence = 0.9f;
	e[2].token.has_position = true;
	e[2].token.x = 5;
	e[2].token.y = -7;
	gos_map_apply(m, e, 3);
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	CHECK(v.n_tokens == 2, "same id twice is one token, got %zu", v.n_tokens);
	const struct gos_token *a = find(&v, "a");
	CHECK(a && !strcmp(a->text, "HELLO"), "update replaces the text");
	CHECK(a && a->confidence == 0.9f, "update replaces the confidence");
	CHECK(a && a->x == 5 && a->y == -7, "update replaces the position");
	struct gos_map_stats st;
	gos_map_stats(m, &st);
	CHECK(st.tokens_added == 2 && st.tokens_updated == 1, "added %llu updated %llu",
	      (unsigned long long)st.tokens_added, (unsigned long long)st.tokens_updated);
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

static void test_flow_layout(void)
{
	struct gos_map *m = gos_map_create(NULL);
	char ids[200][16];
	struct gos_event e[200];
	for (int i = 0; i < 200; i++) {
		snprintf(ids[i], sizeof(ids[i]), "t%d", i);
		e[i] = tok(ids[i], " word", i % 2 ? "two" : "one");
	}
	gos_map_apply(m, e, 200);
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	CHECK(v.n_streams == 2, "two streams, got %zu", v.n_streams);
	/* Tokens of a stream flow left to right, then wrap to the next line. */
	const struct gos_token *t0 = find(&v, "t0"), *t2 = find(&v, "t2");
	CHECK(t0 && t2 && t2->x > t0->x && t2->y == t0->y, "second token right of the first");
	float maxy = 0, minx_two = 1e9f, maxx_one = -1e9f;
	bool inside = true;
	for (size_t i = 0; i < v.n_tokens; i++) {
		const struct gos_token *t = &v.tokens[i];
		if (t->y > maxy)
			maxy = t->y;
		/* pages sit on a grid of COLUMN_W + COLUMN_GAP */
		float pitch = GOS_FLOW_COLUMN_W + GOS_FLOW_COLUMN_GAP;
		float col = floorf((t->x - t->w / 2 + 0.01f) / pitch) * pitch;
		inside = inside && t->x + t->w / 2 <= col + GOS_FLOW_COLUMN_W + 0.01f;
		if (t->stream == 1 && t->x < minx_two)
			minx_two = t->x;
		if (t->stream == 0 && t->x > maxx_one)
			maxx_one = t->x;
	}
	CHECK(inside, "every token stays inside its page's column");
	CHECK(maxy > GOS_FLOW_LINE_H, "100 words wrap onto several lines (max y %f)", maxy);
	CHECK(minx_two > maxx_one, "streams have separate regions");
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

static void test_hilbert(void)
{
	/* d2xy is a bijection onto the grid with unit steps between neighbours */
	const uint32_t order = 4, n = 1u << (2 * order);
	bool seen[256] = {0}, steps = true, bij = true;
	uint32_t px = 0, py = 0;
	for (uint32_t d = 0; d < n; d++) {
		uint32_t x, y;
		gos_hilbert_d2xy(order, d, &x, &y);
		bij = bij && x < 16 && y < 16 && !seen[y * 16 + x];
		if (x < 16 && y < 16)
			seen[y * 16 + x] = true;
		if (d && abs((int)x - (int)px) + abs((int)y - (int)py) != 1)
			steps = false;
		px = x;
		py = y;
	}
	CHECK(bij, "hilbert d2xy is a bijection");
	CHECK(steps, "consecutive hilbert indices are grid neighbours");

	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.layout = GOS_LAYOUT_HILBERT});
	struct gos_event e[3] = {tok("x1", " cat", "a"), tok("x2", " cat", "b"), tok("x3", " dog", "a")};
	gos_map_apply(m, e, 3);
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	const struct gos_token *a = find(&v, "x1"), *b = find(&v, "x2"), *c = find(&v, "x3");
	CHECK(a && b && a->x == b->x && a->y == b->y, "same text, same place, across streams");
	CHECK(a && c && (a->x != c->x || a->y != c->y), "different text, different place");
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

static void test_eviction_and_log(void)
{
	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = 100, .log_capacity = 1000});
	static char ids[250][16];
	struct gos_event e[250];
	for (int i = 0; i < 250; i++) {
		snprintf(ids[i], sizeof(ids[i]), "e%d", i);
		e[i] = tok(ids[i], "x", "");
	}
	struct gos_map_view v = {0};
	gos_map_apply(m, e, 100);
	CHECK(gos_map_read_since(m, 0, 0, &v), "read from 0 within the log");
	uint64_t seq0 = v.seq;
	CHECK(v.n_tokens == 100, "100 tokens in the first delta, got %zu", v.n_tokens);
	gos_map_apply(m, e + 100, 150);
	struct gos_map_stats st;
	gos_map_stats(m, &st);
	CHECK(st.live_tokens == 100, "capped at max_tokens: %llu", (unsigned long long)st.live_tokens);
	CHECK(st.evicted == 150, "150 evicted, got %llu", (unsigned long long)st.evicted);
	gos_map_read_all(m, 0, 0, &v);
	CHECK(!find(&v, "e149") && find(&v, "e150") && find(&v, "e249"), "the oldest were evicted");
	/* the delta names every evicted id and every added token */
	CHECK(gos_map_read_since(m, seq0, 0, &v), "delta read");
	size_t removed = 0, added = 0;
	for (size_t i = 0; i < v.n_tokens; i++)
		v.tokens[i].removed ? removed++ : added++;
	CHECK(removed == 150, "delta carries 150 removals, got %zu", removed);
	CHECK(added == 100, "delta carries the 100 live new tokens (evicted ones not as live), got %zu", added);
	/* an evicted id can come back */
	struct gos_event again = tok("e0", "back", "");
	gos_map_apply(m, &again, 1);
	gos_map_read_all(m, 0, 0, &v);
	CHECK(find(&v, "e0") && !find(&v, "e150"), "re-added id lives, next-oldest evicted");

	/* bounded reads page through the log */
	uint64_t s = seq0;
	size_t total = 0;
	int rounds = 0;
	do {
		CHECK(gos_map_read_since(m, s, 7, &v), "paged read");
		total += v.n_tokens;
		s = v.seq;
		rounds++;
	} while (v.more && rounds < 1000);
	CHECK(rounds > 10, "bounded reads take many pages (%d)", rounds);
	CHECK(total >= 251, "pages cover every change, got %zu", total);

	/* a reader further behind than the log must take a full copy */
	for (int round = 0; round < 5; round++)
		gos_map_apply(m, e, 250);
	CHECK(!gos_map_read_since(m, seq0, 0, &v), "reader behind the log is told so");
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

static void test_read_all_pages_and_states(void)
{
	struct gos_map *m = gos_map_create(NULL);
	static char ids[1000][16];
	struct gos_event e[1001];
	for (int i = 0; i < 1000; i++) {
		snprintf(ids[i], sizeof(ids[i]), "p%d", i);
		e[i] = tok(ids[i], "y", "s");
	}
	e[1000] = (struct gos_event){.type = GOS_EV_STATE, .state = {
		.state = "done", .stream = "s", .tokens_processed = 1000, .total_tokens = 1000, .elapsed_ms = 12.5}};
	gos_map_apply(m, e, 1001);
	struct gos_map_view v = {0};
	size_t total = 0;
	uint32_t slot = 0;
	int pages = 0;
	do {
		gos_map_read_all(m, slot, 64, &v);
		total += v.n_tokens;
		slot = v.next_slot;
		pages++;
	} while (v.more);
	CHECK(total == 1000 && pages == 16, "1000 tokens in 16 pages of 64, got %zu in %d", total, pages);
	CHECK(v.n_streams == 1 && !strcmp(v.streams[0].state, "done") &&
	      v.streams[0].tokens_processed == 1000 && v.streams[0].n_tokens == 1000,
	      "stream carries its latest neural_state");
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

/* Token strings of every size (small ones share slab classes, big ones are
 * malloc'd), with and without top_logprobs, through updates and evictions
 * that recycle their memory: what a reader copies out is always exactly the
 * latest text and alternatives of each live token. */
static void test_token_strings(void)
{
	enum { IDS = 64, MAX = 40, ROUNDS = 3000 };
	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = MAX});
	static char text[IDS][1200], alt_text[IDS][3][40];
	static struct gos_alt alts[IDS][3];
	uint32_t n_alts[IDS] = {0};
	uint64_t last_applied[IDS] = {0};  /* round + 1 of the id's last apply */
	uint64_t rng = 12345;
	int bad = 0;
	for (uint64_t r = 0; r < ROUNDS; r++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		int id = (int)((rng >> 33) % IDS);
		size_t len = (rng >> 20) % 8 == 0 ? 500 + (rng >> 40) % 700 : (rng >> 40) % 40;
		for (size_t i = 0; i < len; i++)
			text[id][i] = (char)('a' + (r + i) % 26);
		text[id][len] = '\0';
		n_alts[id] = (uint32_t)((rng >> 50) % 4);
		for (uint32_t k = 0; k < n_alts[id]; k++) {
			snprintf(alt_text[id][k], sizeof(alt_text[id][k]), "alt%u-%llu", k,
			         (unsigned long long)r);
			alts[id][k] = (struct gos_alt){.token = alt_text[id][k], .logprob = -(float)k};
		}
		char idbuf[16];
		snprintf(idbuf, sizeof(idbuf), "id%d", id);
		struct gos_event e = tok(idbuf, text[id], "");
		e.token.n_alts = n_alts[id];
		e.token.alts = n_alts[id] ? alts[id] : NULL;
		gos_map_apply(m, &e, 1);
		last_applied[id] = r + 1;
	}
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	CHECK(v.n_tokens == MAX, "the map holds max_tokens tokens, got %zu", v.n_tokens);
	for (size_t i = 0; i < v.n_tokens; i++) {
		const struct gos_token *t = &v.tokens[i];
		int id = atoi(t->id + 2);
		if (id < 0 || id >= IDS || !last_applied[id] || strcmp(t->text, text[id]) != 0 ||
		    t->n_alts != n_alts[id]) {
			bad++;
			continue;
		}
		for (uint32_t k = 0; k < t->n_alts; k++)
			if (strcmp(t->alts[k].token, alt_text[id][k]) != 0 || t->alts[k].logprob != -(float)k)
				bad++;
	}
	CHECK(bad == 0, "%d tokens read back with other text or alternatives than last applied", bad);
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

/* A stream's analytics (issue 13): the running sums over a known sequence,
 * neural_state's fields kept when a later state omits them, updates and
 * evictions leaving the sums as they were. */
static void test_stream_analytics(void)
{
	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = 3});
	static const struct gos_alt four[4] = {{"a", -1.0f}, {"b", -1.0f}, {"c", -1.0f}, {"d", -1.0f}};
	const float conf[4] = {0.9f, 0.25f, NAN, 1.0f};
	const float lp[4] = {-0.1f, -1.4f, -2.0f, NAN};
	char ids[4][8];
	for (int i = 0; i < 4; i++) {
		snprintf(ids[i], sizeof(ids[i]), "a%d", i);
		struct gos_event e = tok(ids[i], "x", "s");
		e.token.timestamp = 100.0 + i * 0.5;
		e.token.confidence = conf[i];
		e.token.logprob = lp[i];
		if (i == 1) {
			e.token.n_alts = 4;
			e.token.alts = four;
		}
		gos_map_apply(m, &e, 1);   /* the 4th evicts a0: the sums stay */
	}
	struct gos_event up = tok("a3", "y", "s");
	up.token.confidence = 0.0f;   /* an update: not a new token */
	gos_map_apply(m, &up, 1);
	struct gos_event st = {.type = GOS_EV_STATE, .state = {
		.state = "processing", .stream = "s", .tokens_processed = 4, .total_tokens = -1,
		.elapsed_ms = NAN, .ttft_ms = 120.5, .finish_reason = "stop", .model = "tiny"}};
	gos_map_apply(m, &st, 1);
	struct gos_event st2 = {.type = GOS_EV_STATE, .state = {
		.state = "done", .stream = "s", .tokens_processed = 4, .total_tokens = 4,
		.elapsed_ms = 9, .ttft_ms = NAN, .message = "fine"}};
	gos_map_apply(m, &st2, 1);
	struct gos_map_view v = {0};
	gos_map_read_streams(m, &v);
	const struct gos_stream *s = NULL;
	for (size_t i = 0; i < v.n_streams; i++)
		if (!strcmp(v.streams[i].name, "s"))
			s = &v.streams[i];
	CHECK(s != NULL, "the stream is there");
	if (s) {
		const struct gos_stream_stats *a = &s->stats;
		CHECK(a->n_conf == 3 && fabs(a->conf_sum - 2.15) < 1e-6 && a->conf_min == 0.25f,
		      "confidence: 3 known, sum 2.15, min 0.25 (%llu %g %g)",
		      (unsigned long long)a->n_conf, a->conf_sum, (double)a->conf_min);
		CHECK(a->n_logprob == 3 && fabs(a->logprob_sum - -3.5) < 1e-6,
		      "logprob: 3 known, sum -3.5 (%g)", a->logprob_sum);
		CHECK(a->n_entropy == 1 && fabs(a->entropy_sum - log(4.0)) < 1e-9,
		      "entropy of four equal alternatives: ln 4 (%g)", a->entropy_sum);
		CHECK(a->first_ts == 100.0 && a->last_ts == 101.5, "first and last timestamps");
		CHECK(a->hist[9] == 2 && a->hist[2] == 1, "histogram: 0.9 and 1.0 in the last tenth, 0.25 in the third");
		CHECK(s->ttft_ms == 120.5 && !strcmp(s->finish_reason, "stop") &&
		      !strcmp(s->model, "tiny") && !strcmp(s->message, "fine") &&
		      !strcmp(s->state, "done"), "neural_state's analytics kept when a later state omits them");
	}
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

/* Per token (issue 13): index in its stream, gap to the stream's previous
 * token, rank among top_logprobs (ties by order, absent: beyond), entropy. */
static void test_token_facts(void)
{
	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = 4});
	static const struct gos_alt tie[3] = {{"x", -0.5f}, {"y", -0.5f}, {"z", -2.0f}};
	static const struct gos_alt absent[2] = {{"p", -0.1f}, {"q", -3.0f}};
	static const struct gos_alt two[2] = {{"a", -0.693147f}, {"b", -0.693147f}};
	struct gos_event e[6] = {tok("t0", "y", "s"), tok("t1", "z", "s"), tok("t2", "w", "s"),
	                         tok("u0", "b", "o"), tok("t3", "x", "s"), tok("t4", "x", "s")};
	e[0].token.alts = tie;
	e[0].token.n_alts = 3;     /* "y" ties "x" at -0.5, given after it: rank 2 */
	e[1].token.alts = tie;
	e[1].token.n_alts = 3;     /* "z": rank 3 */
	e[2].token.alts = absent;
	e[2].token.n_alts = 2;     /* "w" not among them: beyond */
	e[3].token.alts = two;
	e[3].token.n_alts = 2;
	e[4].token.alts = tie;
	e[4].token.n_alts = 3;     /* "x": rank 1 */
	const double ts[6] = {10.0, 10.25, 10.25, 3.0, 11.0, NAN};
	for (int i = 0; i < 6; i++)
		e[i].token.timestamp = ts[i];
	gos_map_apply(m, e, 6);    /* the 6th evicts t0 (max 4... t0 and t1) */
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	const struct gos_token *t1 = find(&v, "t1"), *t2 = find(&v, "t2"), *t3 = find(&v, "t3"),
	                       *t4 = find(&v, "t4"), *u0 = find(&v, "u0");
	CHECK(!find(&v, "t0") && !t1 && t2 && t3 && t4 && u0, "the oldest two are evicted");
	if (t2 && t3 && t4 && u0) {
		CHECK(t2->index == 2 && t3->index == 3 && t4->index == 4 && u0->index == 0,
		      "indexes count evicted tokens (%u %u %u %u)", t2->index, t3->index, t4->index,
		      u0->index);
		CHECK(t2->gap_ms == 0.0f && t3->gap_ms == 750.0f && isnan(t4->gap_ms) &&
		      isnan(u0->gap_ms), "gaps from producer timestamps (%g %g %g %g)",
		      (double)t2->gap_ms, (double)t3->gap_ms, (double)t4->gap_ms, (double)u0->gap_ms);
		CHECK(t2->rank == GOS_RANK_BEYOND && t3->rank == 1 && t4->rank == 0 && u0->rank == 2,
		      "ranks: beyond, 1, unknown, a tie given second (%u %u %u %u)", t2->rank,
		      t3->rank, t4->rank, u0->rank);
		CHECK(fabsf(u0->entropy - logf(2.0f)) < 1e-5f && isnan(t4->entropy),
		      "entropy of two equal alternatives is ln 2, none without them (%g)",
		      (double)u0->entropy);
		CHECK(isnan(t3->agree) && !t3->diverges, "a stream alone has no agreement");
	}
	gos_map_view_finish(&v);
	CHECK(gos_token_rank("y", tie, 3) == 2 && gos_token_rank("z", tie, 3) == 3 &&
	      gos_token_rank("x", tie, 3) == 1 && gos_token_rank("w", tie, 0) == 0,
	      "gos_token_rank on ties");
	gos_map_destroy(m);
}

/* Generations of one prompt (names equal up to ":N") form a group: each
 * token's agreement with the group at its index, and the first index where
 * each stream diverges, kept as tokens arrive in any order. */
static void test_divergence(void)
{
	struct gos_map *m = gos_map_create(NULL);
	const char *a[] = {"The", " cat", " sat", " down"};
	const char *b[] = {"The", " cat", " ran", " off"};
	const char *c[] = {"The", " dog"};
	char id[32];
	struct gos_event e;
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		e = tok(id, a[i], "m:run:1");
		gos_map_apply(m, &e, 1);
	}
	struct gos_map_view v = {0};
	gos_map_read_streams(m, &v);
	CHECK(v.n_streams == 1 && v.streams[0].diverge_at == -1, "alone: no divergence");
	uint64_t seq = v.seq;
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "b%d", i);
		e = tok(id, b[i], "m:run:2");
		gos_map_apply(m, &e, 1);
	}
	/* a's tokens changed agreement: readers since are told */
	gos_map_read_since(m, seq, 0, &v);
	CHECK(find(&v, "a0") && find(&v, "a3"), "the first stream's tokens are sent again");
	for (int i = 0; i < 2; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		e = tok(id, c[i], "m:run:3");
		gos_map_apply(m, &e, 1);
	}
	e = tok("z0", "The", "other:run:1");   /* another group */
	gos_map_apply(m, &e, 1);
	gos_map_read_all(m, 0, 0, &v);
	const struct gos_token *a0 = find(&v, "a0"), *a1 = find(&v, "a1"), *a2 = find(&v, "a2"),
	                       *a3 = find(&v, "a3"), *c1 = find(&v, "c1"), *z0 = find(&v, "z0");
	if (a0 && a1 && a2 && a3 && c1 && z0) {
		CHECK(a0->agree == 1.0f && fabsf(a1->agree - 2.0f / 3.0f) < 1e-6f &&
		      a2->agree == 0.5f && a3->agree == 0.5f && fabsf(c1->agree - 1.0f / 3.0f) < 1e-6f,
		      "agreement at each index (%g %g %g %g %g)", (double)a0->agree,
		      (double)a1->agree, (double)a2->agree, (double)a3->agree, (double)c1->agree);
		CHECK(isnan(z0->agree), "a group of one has no agreement");
		CHECK(a1->diverges && !a2->diverges && c1->diverges, "the first difference is marked");
	}
	int64_t want[3] = {1, 1, 1};   /* c differs from a and b at 1: all three */
	int found = 0;
	for (size_t i = 0; i < v.n_streams; i++) {
		const struct gos_stream *s = &v.streams[i];
		for (int k = 0; k < 3; k++) {
			char name[16];
			snprintf(name, sizeof(name), "m:run:%d", k + 1);
			if (!strcmp(s->name, name)) {
				found++;
				CHECK(s->diverge_at == want[k] && s->group == 0,
				      "%s diverges at %lld (group %u)", name, (long long)s->diverge_at,
				      s->group);
			}
		}
		if (!strcmp(s->name, "other:run:1"))
			CHECK(s->group == s->index && s->diverge_at == -1, "another group: alone");
	}
	CHECK(found == 3, "three streams in the group");
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

/* The flow layout fills the screen (issue 13): 16 streams of 3,000 tokens
 * fit in a box between 1:3 and 3:1, a stream's text wraps into pages, and
 * tokens placed before more streams came stay where they were. */
static void test_flow_pages(void)
{
	struct gos_map *m = gos_map_create(NULL);
	enum { STREAMS = 16, PER = 3000 };
	static char ids[STREAMS * PER][16], names[STREAMS][8];
	static struct gos_event e[STREAMS * PER];
	for (int s = 0; s < STREAMS; s++)
		snprintf(names[s], sizeof(names[s]), "g%d", s);
	for (int i = 0; i < STREAMS * PER; i++) {
		snprintf(ids[i], sizeof(ids[i]), "f%d", i);
		e[i] = tok(ids[i], " word", names[i % STREAMS]);
	}
	/* the first streams first, then the rest: the early tokens must not move */
	gos_map_apply(m, e, PER);
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	size_t n0 = v.n_tokens;
	float *x0 = malloc(n0 * sizeof(float)), *y0 = malloc(n0 * sizeof(float));
	for (size_t i = 0; i < n0; i++) {
		x0[i] = v.tokens[i].x;
		y0[i] = v.tokens[i].y;
	}
	gos_map_apply(m, e + PER, STREAMS * PER - PER);
	gos_map_read_all(m, 0, 0, &v);
	bool kept = true;
	float bx0 = 1e30f, by0 = 1e30f, bx1 = -1e30f, by1 = -1e30f;
	for (size_t i = 0; i < v.n_tokens; i++) {
		const struct gos_token *t = &v.tokens[i];
		if (i < n0)
			kept &= t->x == x0[i] && t->y == y0[i];
		bx0 = fminf(bx0, t->x - t->w / 2);
		bx1 = fmaxf(bx1, t->x + t->w / 2);
		by0 = fminf(by0, t->y - GOS_FLOW_LINE_H / 2);
		by1 = fmaxf(by1, t->y + GOS_FLOW_LINE_H / 2);
	}
	double aspect = (bx1 - bx0) / (by1 - by0);
	CHECK(kept, "tokens placed before more streams came have not moved");
	CHECK(aspect >= 1.0 / 3 && aspect <= 3.0,
	      "16 streams x 3000 tokens fit in a box of aspect %.2f (between 1:3 and 3:1)", aspect);
	printf("test_map: 16 x 3000 tokens: a %.0f x %.0f box, aspect %.2f\n", bx1 - bx0, by1 - by0, aspect);
	free(x0);
	free(y0);
	gos_map_view_finish(&v);
	gos_map_destroy(m);
}

int main(void)
{
	test_flow_pages();
	test_stream_analytics();
	test_token_facts();
	test_divergence();
	test_update_by_id();
	test_flow_layout();
	test_hilbert();
	test_eviction_and_log();
	test_read_all_pages_and_states();
	test_token_strings();
	return gos_test_report("test_map");
}
