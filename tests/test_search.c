/* Search (compositor/web/gos_search.c) over a real gos_map: case folding,
 * matches across token boundaries, Unicode, filters, limit against count,
 * and the index following the map (new, updated and evicted tokens, a
 * change log overrun, the slot ring wrapping), each time against a
 * brute-force reference kept here from the events themselves. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_casefold.h"
#include "gos_map.h"
#include "gos_search.h"
#include "gos_test.h"

/* ---- the reference: every token as the test sent it ---------------------- */

#define MAXTOK 60000

struct rtok {
	char id[16];
	char text[64];
	int stream;
	float conf;
	long first;          /* the order it was first added */
};

static struct rtok rt[MAXTOK];
static int n_rt;
static long add_clock;
static const char *const stream_names[] = {"", "gen-1", "gen-2", "Ωmega"};
#define N_STREAMS 4

#define HASH_CAP 131072  /* > 2 * MAXTOK, a power of two */
static int rt_hash[HASH_CAP];   /* index + 1 into rt; 0: empty */

static uint32_t hash_id(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

static struct rtok *rt_find(const char *id)
{
	for (uint32_t h = hash_id(id) & (HASH_CAP - 1);; h = (h + 1) & (HASH_CAP - 1)) {
		if (!rt_hash[h])
			return NULL;
		if (!strcmp(rt[rt_hash[h] - 1].id, id))
			return &rt[rt_hash[h] - 1];
	}
}

static void rt_index(int i)
{
	uint32_t h = hash_id(rt[i].id) & (HASH_CAP - 1);
	while (rt_hash[h])
		h = (h + 1) & (HASH_CAP - 1);
	rt_hash[h] = i + 1;
}

static struct gos_event ev_of(const struct rtok *t)
{
	return (struct gos_event){.type = GOS_EV_TOKEN, .token = {
		.id = t->id, .text = t->text, .stream = stream_names[t->stream],
		.timestamp = 1.0, .confidence = t->conf, .logprob = NAN}};
}

/* Adds (or updates, same id) a token in the reference; returns its event. */
static struct gos_event put(const char *id, const char *text, int stream, float conf)
{
	struct rtok *t = rt_find(id);
	if (!t) {
		if (n_rt == MAXTOK)
			abort();
		t = &rt[n_rt++];
		snprintf(t->id, sizeof(t->id), "%s", id);
		rt_index((int)(t - rt));
		t->stream = stream;
		t->first = add_clock++;
	}
	snprintf(t->text, sizeof(t->text), "%s", text);
	t->conf = conf;
	return ev_of(t);
}

struct ref_match {
	int stream;
	int n;
	uint32_t slots[64];
};

struct live {
	const struct rtok *t;
	uint32_t slot;
};

static int cmp_first(const void *a, const void *b)
{
	const struct rtok *x = ((const struct live *)a)->t, *y = ((const struct live *)b)->t;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* The brute-force search: live tokens (what the map holds) in first-added
 * order, folded one by one, matched byte by byte. Returns the count; the
 * first `limit` matches go to out. */
static uint64_t ref_search(struct gos_map *m, const struct gos_search_query *q,
                           struct ref_match *out, size_t limit, size_t *n_out)
{
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	struct gos_buf qf = {0};
	gos_casefold(q->q, strlen(q->q), &qf);
	uint64_t count = 0;
	*n_out = 0;
	/* the map's stream indexes, in index order */
	for (size_t si = 0; si < v.n_streams; si++) {
		const char *name = v.streams[si].name;
		bool want = !q->has_streams;
		for (size_t k = 0; q->has_streams && k < q->n_streams; k++)
			want |= !strcmp(q->streams[k], name);
		if (!want)
			continue;
		struct live *live = calloc(v.n_tokens + 1, sizeof(*live));
		size_t n = 0;
		for (size_t i = 0; i < v.n_tokens; i++) {
			if (v.tokens[i].stream != v.streams[si].index)
				continue;
			const struct rtok *t = rt_find(v.tokens[i].id);
			if (!t || strcmp(t->text, v.tokens[i].text))
				abort();   /* the test's model and the map disagree */
			live[n++] = (struct live){t, v.tokens[i].slot};
		}
		qsort(live, n, sizeof(*live), cmp_first);
		struct gos_buf text = {0};
		size_t *start = calloc(n + 1, sizeof(*start));
		for (size_t i = 0; i < n; i++) {
			start[i] = text.len;
			gos_casefold(live[i].t->text, strlen(live[i].t->text), &text);
		}
		start[n] = text.len;
		for (size_t a = 0; qf.len && a + qf.len <= text.len;) {
			if (memcmp(text.data + a, qf.data, qf.len)) {
				a++;
				continue;
			}
			size_t b = a + qf.len;
			bool ok = true;
			struct ref_match rm = {.stream = (int)v.streams[si].index};
			for (size_t i = 0; i < n; i++) {
				if (start[i] >= b || start[i + 1] <= a || start[i] == start[i + 1])
					continue;
				float c = live[i].t->conf;
				if (q->has_p && (isnan(c) || c < (float)q->min_p || c > (float)q->max_p))
					ok = false;
				if (rm.n < 64)
					rm.slots[rm.n++] = live[i].slot;
			}
			if (ok) {
				count++;
				if (*n_out < limit)
					out[(*n_out)++] = rm;
			}
			a = b;
		}
		gos_buf_finish(&text);
		free(start);
		free(live);
	}
	gos_buf_finish(&qf);
	gos_map_view_finish(&v);
	return count;
}

/* gos_search_run against ref_search: same count, same first matches. */
static bool same_as_ref(struct gos_search *s, struct gos_map *m, const struct gos_search_query *q,
                        const char *what)
{
	static struct ref_match ref[10000];
	struct gos_search_result r = {0};
	char err[200];
	bool ok = gos_search_run(s, q, &r, err, sizeof(err));
	CHECK(ok, "%s: search '%s' ran (%s)", what, q->q, ok ? "" : err);
	size_t limit = q->limit ? q->limit : 100, n_ref;
	uint64_t count = ref_search(m, q, ref, limit, &n_ref);
	bool same = ok && r.count == count && r.n_matches == n_ref;
	for (size_t i = 0; same && i < n_ref; i++) {
		const struct gos_search_match *a = &r.matches[i];
		same = (int)a->stream == ref[i].stream && (int)a->n == ref[i].n &&
		       !memcmp(r.slots + a->first, ref[i].slots, a->n * sizeof(uint32_t));
		if (!same)
			fprintf(stderr, "  match %zu: stream %u/%d, %u/%d tokens, first slot %u/%u\n", i,
			        a->stream, ref[i].stream, a->n, ref[i].n, a->n ? r.slots[a->first] : 0,
			        ref[i].n ? ref[i].slots[0] : 0);
	}
	CHECK(same, "%s: '%s' gives %llu matches (%zu listed), the reference %llu (%zu)", what,
	      q->q, (unsigned long long)r.count, r.n_matches, (unsigned long long)count, n_ref);
	gos_search_result_finish(&r);
	return same;
}

static void reset_ref(void)
{
	memset(rt_hash, 0, sizeof(rt_hash));
	n_rt = 0;
	add_clock = 0;
}

/* ---- the tests ---------------------------------------------------------- */

static void test_casefold(void)
{
	static const uint32_t pairs[][2] = {
		{'A', 'a'}, {'z', 'z'}, {0xC4, 0xE4} /* Ä */, {0xDF, 0xDF} /* ß stays */,
		{0x1E9E, 0xDF} /* ẞ -> ß (status S) */, {0x3A3, 0x3C3}, {0x3C2, 0x3C3} /* ς -> σ */,
		{0x416, 0x436} /* Ж */, {'I', 'i'}, {0x130, 0x130} /* İ: only T/F, stays */,
		{0x131, 0x131} /* ı stays */, {0x212A, 'k'} /* Kelvin */, {0xB5, 0x3BC} /* µ */,
		{0xAB70, 0x13A0} /* Cherokee folds to upper */, {0x10400, 0x10428} /* Deseret */,
		{0x1F88, 0x1F80} /* ᾈ: S */, {0x1F600, 0x1F600}, {0x732B, 0x732B} /* 猫 */,
	};
	bool ok = true;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		uint32_t f = gos_casefold_cp(pairs[i][0]);
		if (f != pairs[i][1]) {
			fprintf(stderr, "  U+%04X folds to U+%04X, want U+%04X\n", pairs[i][0], f,
			        pairs[i][1]);
			ok = false;
		}
	}
	CHECK(ok, "simple case folding of Latin, Greek, Cyrillic, Turkish i, symbols");
	struct gos_buf b = {0};
	const char in[] = "ẞtraße ΣΊΣΥΦΟΣ Straße \xff K";
	size_t n = gos_casefold(in, sizeof(in) - 1, &b);
	CHECK(n == b.len && !strcmp(b.data, "ßtraße σίσυφοσ straße \xff k"),
	      "a string folds code point by code point, invalid bytes as they are: %s", b.data);
	gos_buf_finish(&b);
}

static void test_basics(void)
{
	reset_ref();
	struct gos_map *m = gos_map_create(NULL);
	struct gos_search *s = gos_search_create(&(struct gos_search_opts){.map = m}, NULL, 0);
	struct gos_event e[] = {
		put("a1", "The", 1, 0.9f), put("a2", " cat", 1, 0.8f), put("a3", " sat", 1, 0.2f),
		put("a4", " on THE", 1, 0.95f), put("a5", " Cat", 1, NAN),
		put("b1", "猫", 2, 0.5f), put("b2", "🙂", 2, 0.5f), put("b3", " ẞ", 2, 0.5f),
		put("b4", " ΣΟΦΟΣ", 2, 0.5f), put("b5", " İstanbul ıi I", 2, 0.5f),
		put("b6", " cafe\xcc\x81", 2, 0.5f), put("b7", " café", 2, 0.5f),
	};
	gos_map_apply(m, e, sizeof(e) / sizeof(e[0]));
	struct gos_search_result r = {0};
	char err[200];
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "the cat"}, &r, err, sizeof(err)) &&
	      r.count == 2 && r.n_matches == 2, "'the cat' twice across tokens (%llu)",
	      (unsigned long long)r.count);
	if (r.n_matches == 2) {
		const struct gos_search_match *a = &r.matches[0], *b = &r.matches[1];
		CHECK(a->n == 2 && !strcmp(r.ids[a->first], "a1") && !strcmp(r.ids[a->first + 1], "a2") &&
		      !strcmp(a->stream_name, "gen-1"), "the first covers a1 and a2 of gen-1");
		CHECK(b->n == 2 && !strcmp(r.ids[b->first], "a4") && !strcmp(r.ids[b->first + 1], "a5"),
		      "the second covers a4 (' on THE') and a5");
		struct gos_map_view v = {0};
		gos_map_read_slots(m, r.slots + a->first, 1, &v);
		CHECK(v.n_tokens == 1 && v.tokens[0].x == a->x && v.tokens[0].y == a->y &&
		      v.tokens[0].slot == r.slots[a->first], "x, y: the first token's position");
		gos_map_view_finish(&v);
	}
	struct {
		const char *q;
		uint64_t n;
		const char *why;
	} cases[] = {
		{"猫🙂", 1, "CJK + emoji across two tokens"},
		{"ß", 1, "ẞ folds to ß (simple folding)"},
		{"ss", 0, "ß is not ss (no full folding)"},
		{"σοφοσ", 1, "Greek capitals fold, final sigma too"},
		{"ΣΟΦΟς", 1, "the query folds the same way"},
		{"i", 2, "i finds i and I, not İ nor ı"},
		{"ı", 1, "dotless ı only itself"},
		{"İ", 1, "İ only itself"},
		{"café", 1, "precomposed é is not e + U+0301"},
		{"cafe\xcc\x81", 1, "e + U+0301 matches only itself"},
		{"cafe", 1, "but 'cafe' is in e + U+0301's text"},
		{"CAT", 2, "upper case query"},
		{"dog", 0, "no match"},
		{"a", 6, "every a, in both streams"},
		{"aa", 0, "no aa"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = gos_search_run(s, &(struct gos_search_query){.q = cases[i].q}, &r, err,
		                         sizeof(err));
		CHECK(ok && r.count == cases[i].n, "'%s': %llu, want %llu (%s)", cases[i].q,
		      (unsigned long long)r.count, (unsigned long long)cases[i].n, cases[i].why);
	}
	const char *only2[] = {"gen-2"}, *none[] = {"nope"};
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "cat", .has_streams = true,
	      .streams = only2, .n_streams = 1}, &r, err, sizeof(err)) && r.count == 0,
	      "streams: only gen-2's (no cat there)");
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "cat", .has_streams = true,
	      .streams = none, .n_streams = 1}, &r, err, sizeof(err)) && r.count == 0,
	      "an unknown stream matches nothing");
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "cat", .has_streams = true},
	      &r, err, sizeof(err)) && r.count == 0, "no stream named: nothing");
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "the cat", .has_p = true,
	      .min_p = 0.75, .max_p = 1}, &r, err, sizeof(err)) && r.count == 1 &&
	      r.n_matches == 1 && !strcmp(r.ids[r.matches[0].first], "a1"),
	      "min_p: the match with an unknown confidence is left out (%llu)",
	      (unsigned long long)r.count);
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "at", .limit = 1}, &r, err,
	      sizeof(err)) && r.count == 3 && r.n_matches == 1, "limit 1 lists one of 3 (%llu, %zu)",
	      (unsigned long long)r.count, r.n_matches);
	CHECK(!gos_search_run(s, &(struct gos_search_query){.q = ""}, &r, err, sizeof(err)) &&
	      strstr(err, "1 to 256"), "an empty query is refused: %s", err);
	CHECK(!gos_search_run(s, &(struct gos_search_query){.q = "\xc3("}, &r, err, sizeof(err)),
	      "a query that is not UTF-8 is refused");
	char big[300];
	memset(big, 'a', 257);
	big[257] = 0;
	CHECK(!gos_search_run(s, &(struct gos_search_query){.q = big}, &r, err, sizeof(err)),
	      "257 bytes are refused");
	big[256] = 0;
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = big}, &r, err, sizeof(err)) &&
	      r.count == 0, "256 bytes are fine");
	CHECK(!gos_search_run(s, &(struct gos_search_query){.q = "a", .limit = 10001}, &r, err,
	      sizeof(err)), "limit 10001 is refused");
	/* an update in the middle and an eviction-free drop: the index follows */
	struct gos_event u[] = {put("a2", " dog", 1, 0.8f), put("a5", " CAT!", 1, 0.5f)};
	gos_map_apply(m, u, 2);
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "the cat"}, &r, err, sizeof(err)) &&
	      r.count == 1 && !strcmp(r.ids[r.matches[0].first], "a4"),
	      "after updates 'the cat' is only a4 + a5");
	CHECK(gos_search_run(s, &(struct gos_search_query){.q = "the dog sat"}, &r, err,
	      sizeof(err)) && r.count == 1 && r.matches[0].n == 3, "and 'the dog sat' spans three");
	gos_search_result_finish(&r);
	gos_search_destroy(s);
	gos_map_destroy(m);
}

static const char *const vocab[] = {
	" the", " cat", "The", " CAT", "ẞ", "ß", "ss", "Σ", "σ", "ς", "猫", "🙂", "e", "\xcc\x81",
	"é", "İ", "i", "ı", "I", "Ж", "ж", "Ä", "ä", "ab", "a", "b", " ", "", "aa", " sat on",
};
#define N_VOCAB (sizeof(vocab) / sizeof(vocab[0]))

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void rand_text(char *out, size_t cap)
{
	out[0] = 0;
	int k = 1 + (int)rnd(3);
	size_t len = 0;
	for (int i = 0; i < k; i++) {
		const char *w = vocab[rnd(N_VOCAB)];
		size_t n = strlen(w);
		if (len + n + 1 > cap)
			break;
		memcpy(out + len, w, n + 1);
		len += n;
	}
}

static void rand_query(char *q, size_t cap)
{
	static const char *const fixed[] = {"the cat", "a", "ab", "aa", "ss", "ß", "σ", "ii", "ı",
	                                    "猫🙂", " ", "é", "e\xcc\x81", "ж", "ä", "cat the"};
	if (rnd(2)) {
		snprintf(q, cap, "%s", fixed[rnd(sizeof(fixed) / sizeof(fixed[0]))]);
		return;
	}
	/* two or three vocabulary words, so queries span tokens */
	q[0] = 0;
	while (!q[0])
		rand_text(q, cap);
}

/* Random streams, updates and evictions; the index checked against the
 * reference after each round. log_cap small: the index has to read the
 * whole map again (and the slot ring has wrapped, so it rotates). */
static void test_random(uint32_t max_tokens, uint32_t log_cap, int rounds, const char *what)
{
	reset_ref();
	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = max_tokens,
		.log_capacity = log_cap});
	struct gos_search *s = gos_search_create(&(struct gos_search_opts){.map = m}, NULL, 0);
	int next_id = 0;
	bool all = true;
	for (int round = 0; round < rounds && all; round++) {
		int n = 1 + (int)rnd(120);
		struct gos_event *e = calloc((size_t)n, sizeof(*e));
		char text[64];
		for (int i = 0; i < n; i++) {
			char id[16];
			rand_text(text, sizeof(text));
			float conf = rnd(5) ? (float)rnd(101) / 100.0f : NAN;
			if (next_id && rnd(6) == 0) {
				/* an update: same id, same stream, new text; one of the
				 * newest 100 (older ones may have been evicted) */
				int back = next_id < 100 ? next_id : 100;
				snprintf(id, sizeof(id), "t%d", next_id - 1 - (int)rnd((uint32_t)back));
				struct rtok *t = rt_find(id);
				e[i] = put(t->id, text, t->stream, conf);
			} else {
				snprintf(id, sizeof(id), "t%d", next_id++);
				e[i] = put(id, text, (int)rnd(N_STREAMS), conf);
			}
		}
		gos_map_apply(m, e, (size_t)n);
		free(e);
		if (rnd(3))
			continue;   /* several applies between two searches */
		for (int k = 0; k < 4 && all; k++) {
			char q[64];
			rand_query(q, sizeof(q));
			const char *names[2] = {stream_names[rnd(N_STREAMS)], stream_names[rnd(N_STREAMS)]};
			struct gos_search_query qq = {.q = q, .limit = 1 + rnd(40)};
			if (rnd(4) == 0) {
				qq.has_streams = true;
				qq.streams = names;
				qq.n_streams = 1 + rnd(2);
			}
			if (rnd(4) == 0) {
				qq.has_p = true;
				qq.min_p = rnd(50) / 100.0;
				qq.max_p = qq.min_p + rnd(60) / 100.0;
			}
			all = same_as_ref(s, m, &qq, what);
		}
	}
	if (all)
		all = same_as_ref(s, m, &(struct gos_search_query){.q = "a"}, what);
	struct gos_search_stats st;
	gos_search_stats(s, &st);
	struct gos_map_stats ms;
	gos_map_stats(m, &ms);
	CHECK(all && st.tokens == ms.live_tokens, "%s: the index holds the map's %llu tokens (%llu), "
	      "%llu full reads, %llu evicted", what, (unsigned long long)ms.live_tokens,
	      (unsigned long long)st.tokens, (unsigned long long)st.full_builds,
	      (unsigned long long)ms.evicted);
	if (log_cap && log_cap < 1000)
		CHECK(st.full_builds > 1, "%s: the change log overran and the index read all again",
		      what);
	gos_search_destroy(s);
	gos_map_destroy(m);
}

/* A writer thread applies while this one searches: every search sees at
 * least what was applied before it (the last one everything). */
struct writer {
	struct gos_map *m;
	int n;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char id[32];
	for (int i = 0; i < w->n; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		struct gos_event e = {.type = GOS_EV_TOKEN, .token = {.id = id,
			.text = i % 10 == 9 ? " needle" : " hay", .stream = i % 2 ? "x" : "y",
			.timestamp = 1, .confidence = 0.5f, .logprob = NAN}};
		gos_map_apply(w->m, &e, 1);
	}
	return NULL;
}

static void test_threads(void)
{
	struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = 5000});
	struct gos_search *s = gos_search_create(&(struct gos_search_opts){.map = m}, NULL, 0);
	struct writer w = {m, 20000};
	pthread_t t;
	pthread_create(&t, NULL, writer_main, &w);
	struct gos_search_result r = {0};
	char err[100];
	uint64_t last = 0;
	bool grows = true;
	for (int i = 0; i < 50; i++) {
		uint64_t seq = gos_map_seq(m);
		gos_search_run(s, &(struct gos_search_query){.q = "needle"}, &r, err, sizeof(err));
		grows &= r.seq >= seq;
		last = r.count;
	}
	pthread_join(t, NULL);
	gos_search_run(s, &(struct gos_search_query){.q = "NEEDLE", .limit = 10000}, &r, err,
	               sizeof(err));
	CHECK(grows, "each search is as of the map when it was called or later");
	CHECK(r.count == 500 && r.n_matches == 500, "the last search sees the 500 needles of the "
	      "5000 tokens left (%llu, before %llu)", (unsigned long long)r.count,
	      (unsigned long long)last);
	gos_search_result_finish(&r);
	gos_search_destroy(s);
	gos_map_destroy(m);
}

int main(void)
{
	const char *seed = getenv("GOS_SEARCH_SEED");   /* another random run */
	if (seed && strtoull(seed, NULL, 10))
		rng = strtoull(seed, NULL, 10);
	test_casefold();
	test_basics();
	test_random(0, 0, 300, "no eviction");
	test_random(300, 0, 600, "evicting");
	test_random(300, 64, 400, "evicting, small log");
	test_random(1000, 200, 400, "evicting, applies between reads");
	test_threads();
	return gos_test_report("test_search");
}
