/* gos_llm: OpenAI-compatible chat-completions protocol (see gos_llm.h). */
#include "gos_llm.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "gos_json.h"
#include "gos_utf8.h"

static bool add_message(cJSON *msgs, const char *role, const char *content)
{
	cJSON *m = cJSON_CreateObject();
	if (!m)
		return false;
	cJSON_AddItemToArray(msgs, m);
	return cJSON_AddStringToObject(m, "role", role) && cJSON_AddStringToObject(m, "content", content);
}

char *gos_llm_request_json(const struct gos_llm_request *r)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		goto error;
	if (r->model && r->model[0] && !cJSON_AddStringToObject(o, "model", r->model))
		goto error;
	if (r->completions) {
		if (!cJSON_AddStringToObject(o, "prompt", r->prompt ? r->prompt : ""))
			goto error;
	} else {
		cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
		if (!msgs)
			goto error;
		if (r->system && r->system[0] && !add_message(msgs, "system", r->system))
			goto error;
		if (!add_message(msgs, "user", r->prompt ? r->prompt : ""))
			goto error;
	}
	if (!cJSON_AddTrueToObject(o, "stream"))
		goto error;
	if (r->include_usage) {
		cJSON *so = cJSON_AddObjectToObject(o, "stream_options");
		if (!so || !cJSON_AddTrueToObject(so, "include_usage"))
			goto error;
	}
	if (r->max_tokens > 0 && !cJSON_AddNumberToObject(o, "max_tokens", (double)r->max_tokens))
		goto error;
	if (r->temperature >= 0 && !cJSON_AddNumberToObject(o, "temperature", r->temperature))
		goto error;
	if (r->has_seed && !cJSON_AddNumberToObject(o, "seed", (double)r->seed))
		goto error;
	if (r->logprobs) {
		int k = r->top_logprobs > 20 ? 20 : r->top_logprobs;
		if (r->completions) {
			/* The legacy API: logprobs is the number of alternatives. */
			if (!cJSON_AddNumberToObject(o, "logprobs", k > 0 ? k : 1))
				goto error;
		} else {
			if (!cJSON_AddTrueToObject(o, "logprobs"))
				goto error;
			if (k > 0 && !cJSON_AddNumberToObject(o, "top_logprobs", k))
				goto error;
		}
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
error:
	cJSON_Delete(o);
	return NULL;
}

float gos_llm_confidence(double logprob)
{
	if (isnan(logprob))
		return NAN;
	double p = exp(logprob);
	return p > 1.0 ? 1.0f : p < 0.0 ? 0.0f : (float)p;
}

static const cJSON *item(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

static bool finite_number(const cJSON *v, double *out)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return false;
	*out = v->valuedouble;
	return true;
}

static int64_t count_or(const cJSON *v, int64_t dflt)
{
	double d;
	return finite_number(v, &d) && d >= 0 && d < 9e18 ? (int64_t)d : dflt;
}

/* Up to GOS_MAX_ALTS top_logprobs entries with a string token and a finite
 * logprob; others are dropped. */
static uint32_t read_alts(const cJSON *arr, struct gos_alt **out, struct gos_arena *a)
{
	*out = NULL;
	if (!cJSON_IsArray(arr))
		return 0;
	int n = cJSON_GetArraySize(arr);
	if (n <= 0)
		return 0;
	size_t cap = (size_t)n < GOS_MAX_ALTS ? (size_t)n : GOS_MAX_ALTS;
	struct gos_alt *alts = gos_arena_alloc(a, cap * sizeof *alts, _Alignof(struct gos_alt));
	uint32_t k = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		if (k == cap)
			break;
		const cJSON *t = item(e, "token");
		double lp;
		if (!cJSON_IsString(t) || !finite_number(item(e, "logprob"), &lp))
			continue;
		size_t tl = strlen(t->valuestring);
		if (tl > GOS_MAX_TEXT || !gos_utf8_valid(t->valuestring, tl))
			continue;
		alts[k].token = gos_arena_strndup(a, t->valuestring, tl);
		alts[k].logprob = (float)lp;
		k++;
	}
	*out = alts;
	return k;
}

/* Bytes of s (at most max) that end on a UTF-8 character boundary; a first
 * character longer than max is cut through rather than lost. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	size_t n = gos_utf8_cut(s, len, max);
	return n ? n : max;
}

struct tokens {
	struct gos_llm_token *v;
	uint32_t n, cap;
};

static struct gos_llm_token *push_token(struct tokens *t, struct gos_arena *a)
{
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 4;
		struct gos_llm_token *v = gos_arena_alloc(a, cap * sizeof *v, _Alignof(struct gos_llm_token));
		if (t->n)
			memcpy(v, t->v, t->n * sizeof *v);
		t->v = v;
		t->cap = cap;
	}
	struct gos_llm_token *tok = &t->v[t->n++];
	*tok = (struct gos_llm_token){.logprob = NAN};
	return tok;
}

/* text as one or more tokens of at most GOS_MAX_TEXT bytes; the first piece
 * carries the log-probability and alternatives. */
static void add_text(struct tokens *t, struct gos_arena *a, const char *text, size_t len,
                     double logprob, struct gos_alt *alts, uint32_t n_alts)
{
	bool first = true;
	while (len > 0) {
		size_t n = utf8_cut(text, len, GOS_MAX_TEXT);
		struct gos_llm_token *tok = push_token(t, a);
		tok->text = gos_arena_strndup(a, text, n);
		if (first) {
			tok->logprob = logprob;
			tok->alts = alts;
			tok->n_alts = n_alts;
		}
		first = false;
		text += n;
		len -= n;
	}
}

/* The legacy completions arrays (tokens[], token_logprobs[], top_logprobs[]
 * of {token: logprob} objects) as content entries, added to lp (the parsed
 * tree is ours, freed with it). NULL when out of memory. */
static const cJSON *legacy_entries(cJSON *lp)
{
	const cJSON *toks = item(lp, "tokens"), *lps = item(lp, "token_logprobs");
	const cJSON *tops = item(lp, "top_logprobs");
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	int i = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, toks) {
		cJSON *e = cJSON_CreateObject();
		if (!e)
			break;
		cJSON_AddItemToArray(arr, e);
		if (cJSON_IsString(t))
			cJSON_AddStringToObject(e, "token", t->valuestring);
		const cJSON *l = cJSON_GetArrayItem(lps, i);
		if (cJSON_IsNumber(l))
			cJSON_AddNumberToObject(e, "logprob", l->valuedouble);
		const cJSON *top = cJSON_GetArrayItem(tops, i);
		if (cJSON_IsObject(top)) {
			cJSON *alts = cJSON_AddArrayToObject(e, "top_logprobs");
			const cJSON *kv;
			cJSON_ArrayForEach(kv, top) {
				cJSON *a = cJSON_CreateObject();
				if (!alts || !a || !cJSON_IsNumber(kv) || !kv->string) {
					cJSON_Delete(a);
					continue;
				}
				cJSON_AddStringToObject(a, "token", kv->string);
				cJSON_AddNumberToObject(a, "logprob", kv->valuedouble);
				cJSON_AddItemToArray(alts, a);
			}
		}
		i++;
	}
	cJSON_AddItemToObject(lp, "content", arr);
	return arr;
}

static void read_choice(const cJSON *choice, struct gos_llm_chunk *out, struct tokens *toks,
                        struct gos_arena *a)
{
	const cJSON *fr = item(choice, "finish_reason");
	if (cJSON_IsString(fr) && fr->valuestring[0])
		out->finish_reason = gos_arena_strndup(a, fr->valuestring, strlen(fr->valuestring));

	const cJSON *content = NULL;
	const cJSON *delta = item(choice, "delta");
	if (cJSON_IsObject(delta))
		content = item(delta, "content");
	else
		content = item(choice, "text");   /* legacy completions streams */

	const cJSON *lp = item(choice, "logprobs");
	const cJSON *entries = cJSON_IsObject(lp) ? item(lp, "content") : NULL;
	if (!entries && cJSON_IsObject(lp) && cJSON_IsArray(item(lp, "tokens")))
		entries = legacy_entries((cJSON *)lp);
	out->has_logprobs = cJSON_IsArray(entries);

	if (!cJSON_IsString(content) || !content->valuestring[0])
		return;
	const char *text = content->valuestring;
	size_t len = strlen(text);
	if (!gos_utf8_valid(text, len))
		return;   /* cJSON passes raw bytes through; the stream itself was repaired */

	/* The entries spell the delta: one token each. */
	int n = out->has_logprobs ? cJSON_GetArraySize(entries) : 0;
	size_t spelled = 0;
	bool spells = n > 0;
	double sum = 0;
	const cJSON *e;
	if (n > 0) {
		cJSON_ArrayForEach(e, entries) {
			const cJSON *tk = item(e, "token");
			double l;
			if (!cJSON_IsString(tk) || !finite_number(item(e, "logprob"), &l)) {
				spells = false;
				sum = NAN;
				break;
			}
			size_t tl = strlen(tk->valuestring);
			sum += l;
			if (spells && (spelled + tl > len || memcmp(text + spelled, tk->valuestring, tl)))
				spells = false;
			spelled += tl;
		}
		if (spelled != len)
			spells = false;
	}
	if (spells) {
		cJSON_ArrayForEach(e, entries) {
			const char *tk = item(e, "token")->valuestring;
			struct gos_alt *alts;
			uint32_t na = read_alts(item(e, "top_logprobs"), &alts, a);
			add_text(toks, a, tk, strlen(tk), item(e, "logprob")->valuedouble, alts, na);
		}
		return;
	}
	struct gos_alt *alts = NULL;
	uint32_t na = 0;
	if (n == 1)
		na = read_alts(item(cJSON_GetArrayItem(entries, 0), "top_logprobs"), &alts, a);
	add_text(toks, a, text, len, n > 0 ? sum : NAN, alts, na);
}

void gos_llm_parse_chunk(const char *data, size_t len, struct gos_llm_chunk *out,
                         struct gos_arena *arena)
{
	*out = (struct gos_llm_chunk){.kind = GOS_LLM_CHUNK, .prompt_tokens = -1, .completion_tokens = -1};
	size_t b = 0, e = len;
	while (b < e && isspace((unsigned char)data[b]))
		b++;
	while (e > b && isspace((unsigned char)data[e - 1]))
		e--;
	if (e - b == 6 && !memcmp(data + b, "[DONE]", 6)) {
		out->kind = GOS_LLM_DONE;
		return;
	}
	cJSON *o = gos_json_parse(data, len);
	if (!cJSON_IsObject(o)) {
		out->kind = GOS_LLM_MALFORMED;
		out->message = o ? "the chunk is JSON but not an object" : "the chunk is not valid JSON";
		cJSON_Delete(o);
		return;
	}
	const cJSON *err = item(o, "error");
	if (err && !cJSON_IsNull(err)) {
		char msg[512];
		char *s = cJSON_PrintUnformatted(o);
		gos_llm_error_message(s ? s : "", s ? strlen(s) : 0, msg, sizeof msg);
		free(s);
		out->kind = GOS_LLM_ERROR;
		out->message = gos_arena_strndup(arena, msg[0] ? msg : "error without a message",
		                                 strlen(msg[0] ? msg : "error without a message"));
		cJSON_Delete(o);
		return;
	}
	const cJSON *choices = item(o, "choices");
	const cJSON *usage = item(o, "usage");
	if (!cJSON_IsArray(choices) && !cJSON_IsObject(usage)) {
		out->kind = GOS_LLM_MALFORMED;
		out->message = "the chunk has neither choices nor usage";
		cJSON_Delete(o);
		return;
	}
	struct tokens toks = {0};
	const cJSON *c;
	cJSON_ArrayForEach(c, choices) {
		if (!cJSON_IsObject(c))
			continue;
		if (count_or(item(c, "index"), 0) != 0) {
			out->other_choices++;
			continue;
		}
		read_choice(c, out, &toks, arena);
	}
	out->tokens = toks.v;
	out->n_tokens = toks.n;
	if (cJSON_IsObject(usage)) {
		out->has_usage = true;
		out->prompt_tokens = count_or(item(usage, "prompt_tokens"), -1);
		out->completion_tokens = count_or(item(usage, "completion_tokens"), -1);
	}
	cJSON_Delete(o);
}

static void copy_trimmed(const char *s, size_t n, char *out, size_t outlen)
{
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	const char *nl = memchr(s, '\n', n);
	if (nl)
		n = (size_t)(nl - s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= outlen)
		n = utf8_cut(s, n, outlen - 1);
	/* Keep the sentence printable: control bytes become spaces. */
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		out[k++] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	out[k] = '\0';
}

void gos_llm_error_message(const char *body, size_t len, char *out, size_t outlen)
{
	if (!outlen)
		return;
	out[0] = '\0';
	cJSON *o = gos_json_parse(body, len);
	if (cJSON_IsObject(o)) {
		const cJSON *err = item(o, "error");
		const cJSON *m = NULL;
		if (cJSON_IsObject(err))
			m = item(err, "message");
		else if (cJSON_IsString(err))
			m = err;
		if (!cJSON_IsString(m))
			m = item(o, "message");
		if (!cJSON_IsString(m))
			m = item(o, "detail");
		if (cJSON_IsString(m))
			copy_trimmed(m->valuestring, strlen(m->valuestring), out, outlen);
		else if (cJSON_IsObject(err) || cJSON_IsArray(item(o, "detail"))) {
			char *s = cJSON_PrintUnformatted(err ? err : item(o, "detail"));
			if (s)
				copy_trimmed(s, strlen(s), out, outlen);
			free(s);
		}
		cJSON_Delete(o);
		return;
	}
	cJSON_Delete(o);
	/* Plain text or HTML: the first line, if it is text. */
	if (len && memchr(body, '<', len < 16 ? len : 16))
		return;
	if (!gos_utf8_valid(body, len))
		return;
	copy_trimmed(body, len, out, outlen);
}

static bool mentions_any(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (gos_llm_error_mentions(s, strlen(s), *words))
			return true;
	return false;
}

enum gos_llm_error_kind gos_llm_error_kind(const char *body, size_t len)
{
	static const char *const invalid_types[] = {"invalid_request", "not_supported", "exceed_context",
	                                            "authentication", "permission", "not_found", NULL};
	static const char *const transient_types[] = {"unavailable", "overloaded", "rate_limit", "timeout",
	                                              "busy", NULL};
	static const char *const transient_words[] = {"busy", "loading", "unavailable", "overloaded",
	                                              "try again", "temporarily", "timed out", "timeout", NULL};
	static const char *const invalid_words[] = {"requires", "invalid", "must ", "not supported",
	                                            "unsupported", "exceed", "missing", "unknown",
	                                            "not allowed", "too long", NULL};
	cJSON *o = gos_json_parse(body, len);
	const cJSON *err = cJSON_IsObject(o) ? item(o, "error") : NULL;
	const cJSON *holder = cJSON_IsObject(err) ? err : o;
	double code = 0;
	const cJSON *c = cJSON_IsObject(holder) ? item(holder, "code") : NULL;
	if (cJSON_IsNumber(c))
		code = c->valuedouble;
	else if (cJSON_IsString(c))
		code = atof(c->valuestring);
	const cJSON *t = cJSON_IsObject(holder) ? item(holder, "type") : NULL;
	char type[64];
	snprintf(type, sizeof type, "%s", cJSON_IsString(t) ? t->valuestring : "");
	char msg[512];
	gos_llm_error_message(body, len, msg, sizeof msg);
	cJSON_Delete(o);

	bool code4 = code >= 400 && code < 500 && code != 408 && code != 429;
	if (mentions_any(type, invalid_types) || code4)
		return GOS_LLM_ERR_INVALID;
	if (code == 408 || code == 429 || (code >= 502 && code <= 504) || mentions_any(type, transient_types) ||
	    mentions_any(msg, transient_words))
		return GOS_LLM_ERR_TRANSIENT;
	if (mentions_any(msg, invalid_words))
		return GOS_LLM_ERR_INVALID;
	return code >= 500 && code < 600 ? GOS_LLM_ERR_TRANSIENT : GOS_LLM_ERR_UNKNOWN;
}

bool gos_llm_error_mentions(const char *body, size_t len, const char *param)
{
	size_t pl = strlen(param);
	for (size_t i = 0; pl && i + pl <= len; i++) {
		size_t k = 0;
		while (k < pl && tolower((unsigned char)body[i + k]) == tolower((unsigned char)param[k]))
			k++;
		if (k == pl)
			return true;
	}
	return false;
}

double gos_llm_retry_after(const char *value, time_t now)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (!*value)
		return -1;
	if (isdigit((unsigned char)*value)) {
		char *end;
		double s = strtod(value, &end);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		return *end || !isfinite(s) || s < 0 ? -1 : s;
	}
	time_t t = curl_getdate(value, NULL);
	if (t < 0)
		return -1;
	return t > now ? (double)(t - now) : 0;
}

char *gos_llm_first_model(const char *body, size_t len)
{
	cJSON *o = gos_json_parse(body, len);
	const cJSON *data = item(o, "data");
	char *id = NULL;
	const cJSON *m;
	if (cJSON_IsArray(data)) {
		cJSON_ArrayForEach(m, data) {
			const cJSON *v = item(m, "id");
			if (cJSON_IsString(v) && v->valuestring[0]) {
				id = strdup(v->valuestring);
				break;
			}
		}
	}
	cJSON_Delete(o);
	return id;
}
