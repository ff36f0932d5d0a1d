/* libFuzzer target for gos-bridge's cache entry files (gos_gencache_parse,
 * net/llm/gos_gencache.c): parsed input, read back from a directory anyone
 * with access may have written to. Each input is parsed as it is, and again
 * with a valid checksum line appended (so the fuzzer gets past the CRC to
 * the JSON lines). What parses must hold the format's promises (valid
 * UTF-8 texts of 1..GOS_MAX_TEXT bytes, at most GOS_MAX_ALTS alternatives,
 * finite or NAN numbers) and survive encode -> parse unchanged. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_crc32c.h"
#include "gos_gencache.h"
#include "gos_utf8.h"

static int same_num(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

static void check_text(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > GOS_MAX_TEXT || !gos_utf8_valid(s, n))
		abort();
}

static void round_trip(const struct gos_gencache_entry *e)
{
	check_text(e->request[0] ? e->request : "x");
	for (uint32_t i = 0; i < e->n_tokens; i++) {
		const struct gos_gencache_token *t = &e->tokens[i];
		check_text(t->text);
		if (t->n_alts > GOS_MAX_ALTS || !(t->t_ms >= 0) || isinf(t->logprob))
			abort();
		for (uint32_t k = 0; k < t->n_alts; k++)
			check_text(t->alts[k].token);
	}
	size_t len;
	char *bytes = gos_gencache_encode(e, &len);
	if (!bytes)
		abort();
	struct gos_arena a = {0};
	struct gos_gencache_entry f;
	char why[200];
	if (!gos_gencache_parse(bytes, len, &f, &a, why, sizeof why))
		abort();
	if (strcmp(e->request, f.request) || f.n_tokens != e->n_tokens ||
	    !e->finish_reason != !f.finish_reason || (e->finish_reason && strcmp(e->finish_reason, f.finish_reason)) ||
	    e->completion_tokens != f.completion_tokens || !same_num(e->ttft_ms, f.ttft_ms))
		abort();
	for (uint32_t i = 0; i < e->n_tokens; i++) {
		const struct gos_gencache_token *x = &e->tokens[i], *y = &f.tokens[i];
		if (strcmp(x->text, y->text) || !same_num(x->logprob, y->logprob) || !same_num(x->t_ms, y->t_ms) ||
		    x->n_alts != y->n_alts)
			abort();
		for (uint32_t k = 0; k < x->n_alts; k++)
			if (strcmp(x->alts[k].token, y->alts[k].token) ||
			    !same_num(x->alts[k].logprob, y->alts[k].logprob))
				abort();
	}
	gos_arena_finish(&a);
	free(bytes);
}

static void one(const char *data, size_t len)
{
	struct gos_arena a = {0};
	struct gos_gencache_entry e;
	char why[200];
	if (gos_gencache_parse(data, len, &e, &a, why, sizeof why))
		round_trip(&e);
	else if (!why[0])
		abort();   /* a failure always says why */
	gos_arena_finish(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one((const char *)data, size);
	if (size && data[size - 1] == '\n') {
		char *buf = malloc(size + 18);
		if (!buf)
			return 0;
		memcpy(buf, data, size);
		snprintf(buf + size, 18, "#crc32c %08x\n", (unsigned)gos_crc32c(0, data, size));
		one(buf, size + 17);
		free(buf);
	}
	return 0;
}
