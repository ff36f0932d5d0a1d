/* Differential test of the protocol parser's two paths: gos_protocol_parse()
 * (fast path, falling back to cJSON) against gos_protocol_parse_reference()
 * (the cJSON path alone) on many generated lines: valid ones of every type
 * and shape, and near-valid mutations of them (byte flips, truncations,
 * insertions of escapes, blanks, unicode, invalid UTF-8, duplicate keys,
 * huge and long numbers, nesting). Every line must get the same answer from
 * both: same accept/reject, same reason code, same message, same event.
 * It also checks that the fast path really takes the common shapes (so the
 * comparison is not vacuous) and never takes a line the reference rejects.
 * GOS_DIFF_SEED=N and GOS_DIFF_LINES=N reproduce or widen a run. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_protocol.h"
#include "gos_protocol_internal.h"
#include "gos_test.h"
#include "event_equal.h"

/* ---- random ------------------------------------------------------------ */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

static bool chance(uint32_t percent)
{
	return below(100) < percent;
}

/* Half the valid-shaped lines are clean: what producers usually write (no
 * odd numbers, stray control bytes or out-of-range values). */
static bool clean;

/* ---- a line being built -------------------------------------------------- */

#define LINE_CAP 8192

struct line {
	char s[LINE_CAP];
	size_t len;
};

static __attribute__((noinline)) void put(struct line *l, const char *s, size_t n)
{
	size_t room = LINE_CAP - l->len;
	if (n > room)
		n = room;
	memcpy(l->s + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct line *l, const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(l, b, (size_t)n < sizeof(b) ? (size_t)n : sizeof(b) - 1);
}

/* Blanks between tokens: mostly none, sometimes JSON whitespace, rarely a
 * byte cJSON skips but JSON does not allow (\f, \v). */
static void blank(struct line *l)
{
	uint32_t r = below(100);
	if (r < 75)
		return;
	static const char *const ws[] = {" ", "  ", "\t", " \r\n ", "\n", "\f", "\v", " \t "};
	puts_(l, ws[r < 97 || clean ? below(4) : 4 + below(4)]);
}

/* A JSON string literal: ASCII, multibyte UTF-8, escapes, long ones. */
static void jstring(struct line *l, size_t max)
{
	static const char *const pieces[] = {
		"a", "word", " ", "x", "Z9", "_", "-", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80",
		"\\n", "\\\"", "\\\\", "\\/", "\\t", "\\u00e9", "\\ud83d\\ude00", "\\u0041",
		"\\u0000", "\\uD800", "\\x", "\\u12", "\x01", "\x1f", "\x7f",
	};
	size_t n = below(100) < 5 ? 0 : 1 + below(chance(10) ? 300 : 8);
	if (max && n > max)
		n = max;
	puts_(l, "\"");
	for (size_t i = 0; i < n; i++) {
		uint32_t r = below(100);
		size_t k = r < 85 || (clean && r < 97) ? below(10) : r < 97 ? 10 + below(8) :
		           clean ? 10 + below(8) : 18 + below(7);
		puts_(l, pieces[k]);
	}
	puts_(l, "\"");
}

/* A plain identifier-like string (no escapes), for ids and streams. */
static void jplain(struct line *l, const char *prefix, size_t extra)
{
	putf(l, "\"%s%llu", prefix, (unsigned long long)(rnd() % 100000));
	for (size_t i = 0; i < extra; i++)
		puts_(l, "x");
	puts_(l, "\"");
}

/* A JSON number in one of many spellings. */
static void jnumber(struct line *l, int kind)
{
	if (kind < 0) {
		/* mostly numbers a producer writes; now and then odd ones */
		static const int usual[] = {0, 1, 2, 3, 5, 6, 7, 12, 14};
		kind = clean ? usual[below(9)] : (int)below(16);
		if ((kind == 9 || kind == 11) && chance(70))
			kind = 3;
	}
	switch (kind) {
	case 0: putf(l, "%u", below(1000)); break;
	case 1: putf(l, "0.%03u", below(1000)); break;
	case 2: putf(l, "%.17g", (double)rnd() / 18446744073709551616.0); break;
	case 3: putf(l, "%llu.%u", (unsigned long long)(1700000000 + below(100000000)), below(100)); break;
	case 4: putf(l, "%.*e", (int)below(20), ((double)rnd() / 1e19 - 0.9) * pow(10, (int)below(60) - 30)); break;
	case 5: putf(l, "-%u.%u", below(100), below(1000)); break;
	case 6: putf(l, "%uE%+d", below(100), (int)below(50) - 25); break;
	case 7: puts_(l, below(2) ? "-0" : "0.0"); break;
	case 8: { /* many digits */
		size_t n = 1 + below(70);
		puts_(l, below(2) ? "1" : "0.");
		for (size_t i = 0; i < n; i++)
			putf(l, "%u", below(10));
		break;
	}
	case 9: puts_(l, below(2) ? "1e309" : "-1e400"); break;
	case 10: puts_(l, below(2) ? "1e-400" : "4.9e-324"); break;
	case 11: { /* spellings cJSON reads leniently or not at all */
		static const char *const odd[] = {"01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10",
		                                   "1.5.3", "--1", "1-2", "Infinity", "NaN", "1E5"};
		puts_(l, odd[below(sizeof(odd) / sizeof(odd[0]))]);
		break;
	}
	case 12: putf(l, "%.9g", (double)(float)((double)rnd() / 1e15)); break;
	case 13: putf(l, "3.4028235e38"); break;
	case 14: putf(l, "%.3f", (double)below(2000000) - 1000000.0); break;
	default: putf(l, "%u.%06u", below(2), below(1000000)); break;
	}
}

/* An unknown member's value: anything JSON, nested sometimes. */
static void jany(struct line *l, int depth)
{
	switch (below(depth > 2 ? 5 : 7)) {
	case 0: jstring(l, 20); break;
	case 1: jnumber(l, -1); break;
	case 2: puts_(l, "true"); break;
	case 3: puts_(l, below(2) ? "false" : "null"); break;
	case 4: jplain(l, "u", below(3) ? 0 : 300); break;
	case 5:
		puts_(l, "[");
		for (uint32_t i = 0, n = below(4); i < n; i++) {
			if (i)
				puts_(l, ",");
			blank(l);
			jany(l, depth + 1);
		}
		puts_(l, "]");
		break;
	default:
		puts_(l, "{");
		for (uint32_t i = 0, n = below(3); i < n; i++) {
			if (i)
				puts_(l, ",");
			putf(l, "\"k%u\":", i);
			jany(l, depth + 1);
		}
		puts_(l, "}");
		break;
	}
}

/* ---- whole lines --------------------------------------------------------- */

static void member_begin(struct line *m, const char *key)
{
	m->len = 0;
	putf(m, "\"%s\":", key);
	blank(m);
}

/* One member for a token_activation, picked by index. */
static bool token_member(struct line *m, int which)
{
	switch (which) {
	case 0:
		member_begin(m, "type");
		puts_(m, clean || chance(98) ? "\"token_activation\"" : "\"token_activationx\"");
		return true;
	case 1:
		member_begin(m, "token_id");
		if (chance(85))
			jplain(m, "tok-", chance(2) ? 300 : 0);
		else
			jstring(m, 0);
		return true;
	case 2:
		member_begin(m, "token_text");
		if (chance(60))
			puts_(m, below(2) ? "\" word\"" : "\"\"");
		else
			jstring(m, 0);
		return true;
	case 3:
		member_begin(m, "timestamp");
		jnumber(m, chance(60) ? 3 : -1);
		return true;
	case 4:
		if (chance(20))
			return false;
		member_begin(m, "confidence");
		jnumber(m, chance(60) || clean ? 1 : chance(50) ? 15 : -1);
		return true;
	case 5:
		if (chance(50))
			return false;
		member_begin(m, "position");
		if (clean || chance(85)) {
			puts_(m, "[");
			blank(m);
			jnumber(m, chance(60) ? 14 : -1);
			blank(m);
			puts_(m, ",");
			blank(m);
			jnumber(m, chance(60) ? 14 : -1);
			blank(m);
			if (!clean && chance(3))
				puts_(m, ",1");
			puts_(m, "]");
		} else {
			jany(m, 0);
		}
		return true;
	case 6:
		if (chance(40))
			return false;
		member_begin(m, "stream");
		if (chance(80))
			jplain(m, "bench-", chance(3) ? 200 : 0);
		else
			jstring(m, 0);
		return true;
	case 7:
		if (chance(70))
			return false;
		member_begin(m, "logprob");
		if (clean || chance(70))
			putf(m, "-%u.%u", below(20), below(1000));
		else
			jnumber(m, -1);
		return true;
	case 8:
		if (chance(85))
			return false;
		member_begin(m, "top_logprobs");
		puts_(m, "[");
		for (uint32_t i = 0, n = below(3); i < n; i++) {
			if (i)
				puts_(m, ",");
			puts_(m, "{\"token\":");
			jstring(m, 10);
			putf(m, ",\"logprob\":-%u.%u}", below(10), below(100));
		}
		puts_(m, "]");
		return true;
	case 9:
		if (chance(75))
			return false;
		member_begin(m, chance(50) ? "pad" : chance(50) ? "state" : "tokens");
		jany(m, 0);
		return true;
	case 10: /* a recording's arrival time (docs/recording.md), last when in order */
		if (chance(70))
			return false;
		member_begin(m, "_t");
		if (clean || chance(80))
			putf(m, "%u.%03u", 1764582000u + below(100000), below(1000));
		else
			jany(m, 0);
		return true;
	}
	return false;
}

static void token_line(struct line *l)
{
	struct line members[11];
	int order[11], n = 0;
	for (int i = 0; i < 11; i++)
		if (token_member(&members[n], i))
			order[n] = n, n++;
	/* mostly producers' natural order, sometimes shuffled */
	if (chance(30))
		for (int i = n - 1; i > 0; i--) {
			int j = (int)below((uint32_t)i + 1), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
	if (!clean && chance(3))
		n--;  /* drop one (maybe a required one) */
	blank(l);
	puts_(l, "{");
	for (int i = 0; i < n; i++) {
		if (i)
			puts_(l, ",");
		blank(l);
		put(l, members[order[i]].s, members[order[i]].len);
		blank(l);
	}
	puts_(l, "}");
	blank(l);
}

static void other_line(struct line *l)
{
	switch (below(4)) {
	case 0:
		puts_(l, "{\"type\":\"sync\"");
		if (chance(30)) {
			puts_(l, ",\"x\":");
			jany(l, 0);
		}
		puts_(l, "}");
		break;
	case 1:
		puts_(l, "{\"type\":\"neural_state\",\"state\":");
		jstring(l, 10);
		puts_(l, ",\"tokens_processed\":");
		jnumber(l, chance(70) ? 0 : -1);
		if (chance(50)) {
			puts_(l, ",\"elapsed_ms\":");
			jnumber(l, -1);
		}
		if (chance(30))
			putf(l, ",\"_t\":%u.%03u", 1764582000u + below(100000), below(1000));
		puts_(l, "}");
		break;
	case 2:
		puts_(l, "{\"type\":\"token_visualization\",\"tokens\":[");
		for (uint32_t i = 0, n = below(4); i < n; i++) {
			if (i)
				puts_(l, ",");
			puts_(l, "{\"id\":");
			jplain(l, "v", 0);
			puts_(l, ",\"text\":");
			jstring(l, 5);
			puts_(l, ",\"x\":");
			jnumber(l, 14);
			puts_(l, ",\"y\":");
			jnumber(l, -1);
			puts_(l, "}");
		}
		puts_(l, "]}");
		break;
	default:
		jany(l, 0);
		break;
	}
}

/* Near-valid: one or two edits of a valid line. */
static void mutate(struct line *l)
{
	static const char *const inserts[] = {
		"\\", "\\u0000", "\\n", "\"", ",", ":", "{", "}", "[", "]", " ", "\t", "\f",
		"\xc3\xa9", "\xff", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x00",
		"1e999", "123456789012345678901234567890", "-", ".", "e5", "0",
		",\"token_id\":\"dup\"", ",\"type\":\"sync\"", ",\"confidence\":2",
		",\"timestamp\":1", ",\"x\":{\"y\":[1,2]}", "null", "true",
	};
	int edits = 1 + (int)below(2);
	for (int e = 0; e < edits && l->len; e++) {
		size_t at = below((uint32_t)l->len + 1);
		switch (below(5)) {
		case 0: /* flip a byte */
			if (at < l->len)
				l->s[at] = (char)(l->s[at] ^ (1u << below(8)));
			break;
		case 1: /* truncate */
			l->len = at;
			break;
		case 2: /* delete a byte */
			if (at < l->len) {
				memmove(l->s + at, l->s + at + 1, l->len - at - 1);
				l->len--;
			}
			break;
		default: { /* insert */
			const char *ins = inserts[below(sizeof(inserts) / sizeof(inserts[0]))];
			size_t n = strlen(ins);
			if (ins[0] == '\0')
				n = 1;
			if (l->len + n > LINE_CAP)
				break;
			memmove(l->s + at + n, l->s + at, l->len - at);
			memcpy(l->s + at, ins, n);
			l->len += n;
			break;
		}
		}
	}
}

/* ---- comparison ---------------------------------------------------------- */

static void show(const char *what, const struct line *l)
{
	fprintf(stderr, "  %s (%zu bytes): ", what, l->len);
	for (size_t i = 0; i < l->len && i < 600; i++) {
		unsigned char c = (unsigned char)l->s[i];
		if (c >= 0x20 && c < 0x7f)
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fputc('\n', stderr);
}

struct tally {
	unsigned long lines, accepted, rejected, fast, fast_valid_shape, mismatches;
	unsigned long reasons[GOS_REJECT_COUNT_];
};

/* Both paths on one line; counts and reports a mismatch. */
static void compare(const struct line *l, struct tally *t)
{
	static struct gos_arena a1, a2, a3;
	struct gos_event e1, e2, e3;
	struct gos_parse_error r1, r2;
	bool ok1 = gos_protocol_parse(l->s, l->len, &e1, &a1, &r1);
	bool ok2 = gos_protocol_parse_reference(l->s, l->len, &e2, &a2, &r2);
	bool fast = gos_protocol_parse_fast(l->s, l->len, &e3, &a3);
	t->lines++;
	if (ok2) {
		t->accepted++;
	} else {
		t->rejected++;
		t->reasons[r2.reason]++;
	}
	if (fast)
		t->fast++;
	bool same = ok1 == ok2 && r1.reason == r2.reason && strcmp(r1.message, r2.message) == 0 &&
	            same_event(&e1, &e2);
	/* what the fast path takes, the reference accepts identically */
	bool fast_ok = !fast || (ok2 && same_event(&e3, &e2));
	if (!same || !fast_ok) {
		if (t->mismatches < 10) {
			fprintf(stderr, "mismatch: combined %s (%s: %s), reference %s (%s: %s), fast %s\n",
			        ok1 ? "accepts" : "rejects", gos_reject_name(r1.reason), r1.message,
			        ok2 ? "accepts" : "rejects", gos_reject_name(r2.reason), r2.message,
			        fast ? "took it" : "passed");
			show("line", l);
		}
		t->mismatches++;
	}
	gos_arena_reset(&a1);
	gos_arena_reset(&a2);
	gos_arena_reset(&a3);
}

/* The bench's and common producers' shapes must take the fast path. */
static void test_fast_path_takes_common_lines(void)
{
	static const char *const common[] = {
		"{\"type\":\"token_activation\",\"token_id\":\"p0-12\",\"token_text\":\" word\","
		"\"timestamp\":1707345600.5,\"confidence\":0.123,\"stream\":\"bench-0\"}",
		"{\"type\":\"token_activation\",\"token_id\":\"abc123\",\"token_text\":\"hello\","
		"\"timestamp\":1707345600.0,\"position\":[100.0,200.0],\"confidence\":0.95}",
		"{\"type\": \"token_activation\", \"token_id\": \"t1\", \"token_text\": \"hi\", "
		"\"timestamp\": 1.5, \"confidence\": 0.8234567891234567, \"logprob\": -0.19422}",
		"{\"type\":\"sync\"}",
		"{\"token_id\":\"z\",\"token_text\":\"\",\"timestamp\":0,\"type\":\"token_activation\","
		"\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"extra\":null}",
		/* a recording's line (docs/recording.md): the arrival time "_t" last */
		"{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"x\",\"timestamp\":1.5,"
		"\"_t\":1764582000.123}",
	};
	struct gos_arena a = {0};
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
		struct gos_event ev, ref;
		struct gos_parse_error err;
		bool fast = gos_protocol_parse_fast(common[i], strlen(common[i]), &ev, &a);
		CHECK(fast, "the fast path passes on a common line: %s", common[i]);
		bool ok = gos_protocol_parse_reference(common[i], strlen(common[i]), &ref, &a, &err);
		CHECK(ok && same_event(&ev, &ref), "fast and reference agree on: %s", common[i]);
	}
	/* and leaves unusual ones to the reference */
	static const char *const unusual[] = {
		"{\"type\":\"token_activation\",\"token_id\":\"a\\u0041\",\"token_text\":\"x\",\"timestamp\":1}",
		"{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_id\":\"b\",\"token_text\":\"x\",\"timestamp\":1}",
		"{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"x\",\"timestamp\":01}",
		"{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"x\",\"timestamp\":1,\"confidence\":1.5}",
		"{\"type\":\"neural_state\",\"state\":\"x\"}",
	};
	for (size_t i = 0; i < sizeof(unusual) / sizeof(unusual[0]); i++) {
		struct gos_event ev;
		CHECK(!gos_protocol_parse_fast(unusual[i], strlen(unusual[i]), &ev, &a),
		      "the fast path leaves this line to cJSON: %s", unusual[i]);
		CHECK(ev.type == GOS_EV_NONE, "and leaves the event zeroed");
	}
	gos_arena_finish(&a);
}

int main(void)
{
	const char *s = getenv("GOS_DIFF_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : 0x6f73676f73ull;
	const char *n_env = getenv("GOS_DIFF_LINES");
	unsigned long n = n_env ? strtoul(n_env, NULL, 10) : 100000;
	rng = seed ? seed : 1;
	printf("test_protocol_diff: seed %llu, %lu lines of each kind\n", (unsigned long long)seed, n);

	test_fast_path_takes_common_lines();

	struct tally valid = {0}, mutated = {0};
	for (unsigned long i = 0; i < n; i++) {
		struct line l = {.len = 0};
		clean = chance(50);
		if (chance(85))
			token_line(&l);
		else
			other_line(&l);
		compare(&l, &valid);
		clean = false;
		mutate(&l);
		compare(&l, &mutated);
	}
	printf("valid-shaped: %lu lines, %lu accepted, %lu by the fast path; "
	       "mutated: %lu lines, %lu accepted, %lu rejected, %lu by the fast path\n",
	       valid.lines, valid.accepted, valid.fast, mutated.lines, mutated.accepted,
	       mutated.rejected, mutated.fast);
	for (int r = 1; r < GOS_REJECT_COUNT_; r++)
		printf("  rejects %-14s %lu\n", gos_reject_name((enum gos_reject)r),
		       valid.reasons[r] + mutated.reasons[r]);
	CHECK(valid.mismatches == 0, "%lu valid-shaped lines parsed differently", valid.mismatches);
	CHECK(mutated.mismatches == 0, "%lu mutated lines parsed differently", mutated.mismatches);
	/* The comparison means something only if both paths were exercised. */
	CHECK(valid.fast * 4 > valid.lines, "the fast path took %lu of %lu valid-shaped lines",
	      valid.fast, valid.lines);
	CHECK(valid.accepted > valid.fast + valid.lines / 20,
	      "the cJSON path accepted lines too (%lu accepted, %lu fast)", valid.accepted, valid.fast);
	CHECK(mutated.fast > mutated.lines / 50, "mutations the fast path still took: %lu",
	      mutated.fast);
	CHECK(mutated.rejected > mutated.lines / 3, "mutations rejected: %lu", mutated.rejected);
	for (int r = GOS_REJECT_NOT_JSON; r <= GOS_REJECT_TOO_LONG; r++)
		CHECK(valid.reasons[r] + mutated.reasons[r] > 0, "some lines rejected as %s",
		      gos_reject_name((enum gos_reject)r));
	return gos_test_report("test_protocol_diff");
}
