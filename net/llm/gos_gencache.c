/* gos_gencache: gos-bridge's response cache (see gos_gencache.h). */
#include "gos_gencache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gos_crc32c.h"
#include "gos_utf8.h"

#define DEFAULT_MAX_BYTES (256ull << 20)
#define MAX_FILE (256u << 20)        /* an entry file larger than this is corrupt */
#define TRAILER_LEN 17               /* "#crc32c XXXXXXXX\n" */

/* ---- the key ---- */

void gos_gencache_key(const char *request, size_t len, char out[GOS_GENCACHE_KEY_LEN + 1])
{
	/* Two independent 64-bit hashes: FNV-1a, and a multiply-xorshift one.
	 * A collision only costs a miss (the entry holds its request). */
	uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x9E3779B97F4A7C15ull ^ len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)request[i];
		h1 = (h1 ^ c) * 0x100000001b3ull;
		h2 = (h2 ^ c) * 0xff51afd7ed558ccdull;
		h2 ^= h2 >> 29;
	}
	h2 ^= h2 >> 33;
	h2 *= 0xc4ceb9fe1a85ec53ull;
	h2 ^= h2 >> 33;
	snprintf(out, GOS_GENCACHE_KEY_LEN + 1, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

/* ---- encode ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static bool text_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	return n > 0 && n <= max && gos_utf8_valid(s, n);
}

/* Numbers are printed with 17 significant digits (cJSON's printer may
 * use 15, which does not always read back to the same double); not finite
 * ones as null. */
static void sb_num(struct sbuf *b, double v)
{
	char n[40];
	int len = isfinite(v) ? snprintf(n, sizeof n, "%.17g", v) : snprintf(n, sizeof n, "null");
	sb_add(b, n, (size_t)len);
}

static bool sb_str(struct sbuf *b, const char *s)
{
	cJSON *o = cJSON_CreateString(s);
	char *p = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!p)
		return false;
	sb_add(b, p, strlen(p));
	free(p);
	return true;
}

char *gos_gencache_encode(const struct gos_gencache_entry *e, size_t *len)
{
	struct sbuf b = {0};
	if (!e->request || !gos_utf8_valid(e->request, strlen(e->request)))
		return NULL;
	sb_add(&b, "{\"gos_gencache\":1,\"request\":", 28);
	if (!sb_str(&b, e->request))
		goto error;
	sb_add(&b, ",\"finish_reason\":", 17);
	if (e->finish_reason && text_ok(e->finish_reason, 64)) {
		if (!sb_str(&b, e->finish_reason))
			goto error;
	} else {
		sb_add(&b, "null", 4);
	}
	sb_add(&b, ",\"completion_tokens\":", 21);
	sb_num(&b, (double)(e->completion_tokens < -1 ? -1 : e->completion_tokens));
	sb_add(&b, ",\"ttft_ms\":", 11);
	sb_num(&b, e->ttft_ms);
	sb_add(&b, ",\"elapsed_ms\":", 14);
	sb_num(&b, e->elapsed_ms);
	sb_add(&b, ",\"tokens\":", 10);
	sb_num(&b, e->n_tokens);
	sb_add(&b, "}\n", 2);
	for (uint32_t i = 0; i < e->n_tokens; i++) {
		const struct gos_gencache_token *t = &e->tokens[i];
		if (!text_ok(t->text, GOS_MAX_TEXT) || t->n_alts > GOS_MAX_ALTS)
			goto error;
		sb_add(&b, "[", 1);
		sb_num(&b, t->t_ms >= 0 ? t->t_ms : 0);
		sb_add(&b, ",", 1);
		if (!sb_str(&b, t->text))
			goto error;
		sb_add(&b, ",", 1);
		sb_num(&b, t->logprob);
		sb_add(&b, ",[", 2);
		for (uint32_t k = 0; k < t->n_alts; k++) {
			if (!text_ok(t->alts[k].token, GOS_MAX_TEXT))
				goto error;
			sb_add(&b, k ? ",[" : "[", k ? 2 : 1);
			if (!sb_str(&b, t->alts[k].token))
				goto error;
			sb_add(&b, ",", 1);
			sb_num(&b, t->alts[k].logprob);
			sb_add(&b, "]", 1);
		}
		sb_add(&b, "]]\n", 3);
	}
	char trailer[TRAILER_LEN + 1];
	snprintf(trailer, sizeof trailer, "#crc32c %08x\n", (unsigned)gos_crc32c(0, b.p, b.len));
	sb_add(&b, trailer, TRAILER_LEN);
	if (b.oom)
		goto error;
	*len = b.len;
	return b.p;
error:
	free(b.p);
	return NULL;
}

/* ---- parse ---- */

static bool fail(char *why, size_t whylen, const char *msg, unsigned line)
{
	if (whylen) {
		if (line)
			snprintf(why, whylen, "line %u: %s", line, msg);
		else
			snprintf(why, whylen, "%s", msg);
	}
	return false;
}

static bool num_or_null(const cJSON *v, double *out)
{
	if (cJSON_IsNull(v)) {
		*out = NAN;
		return true;
	}
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return false;
	*out = v->valuedouble;
	return true;
}

static const char *arena_text(struct gos_arena *a, const cJSON *v, size_t max)
{
	if (!cJSON_IsString(v) || !text_ok(v->valuestring, max))
		return NULL;
	return gos_arena_strndup(a, v->valuestring, strlen(v->valuestring));
}

static bool parse_token(const cJSON *t, struct gos_gencache_token *out, struct gos_arena *a)
{
	if (!cJSON_IsArray(t) || cJSON_GetArraySize(t) != 4)
		return false;
	if (!num_or_null(cJSON_GetArrayItem(t, 0), &out->t_ms) || !(out->t_ms >= 0))
		return false;
	if (!(out->text = arena_text(a, cJSON_GetArrayItem(t, 1), GOS_MAX_TEXT)))
		return false;
	if (!num_or_null(cJSON_GetArrayItem(t, 2), &out->logprob))
		return false;
	const cJSON *alts = cJSON_GetArrayItem(t, 3);
	int n = cJSON_GetArraySize(alts);
	if (!cJSON_IsArray(alts) || n < 0 || n > GOS_MAX_ALTS)
		return false;
	out->n_alts = (uint32_t)n;
	out->alts = n ? gos_arena_alloc(a, (size_t)n * sizeof *out->alts, _Alignof(struct gos_alt)) : NULL;
	int k = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, alts) {
		double lp;
		if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 ||
		    !(out->alts[k].token = arena_text(a, cJSON_GetArrayItem(p, 0), GOS_MAX_TEXT)) ||
		    !num_or_null(cJSON_GetArrayItem(p, 1), &lp) || (isfinite(lp) && fabs(lp) > 1e30))
			return false;   /* beyond a float: what was written was one */
		out->alts[k].logprob = (float)lp;
		k++;
	}
	return true;
}

bool gos_gencache_parse(const char *data, size_t len, struct gos_gencache_entry *e,
                        struct gos_arena *a, char *why, size_t whylen)
{
	*e = (struct gos_gencache_entry){.completion_tokens = -1, .ttft_ms = NAN, .elapsed_ms = NAN};
	if (len < TRAILER_LEN + 2 || data[len - 1] != '\n')
		return fail(why, whylen, "cut short (no checksum line)", 0);
	const char *tr = data + len - TRAILER_LEN;
	if (memcmp(tr, "#crc32c ", 8) || tr[-1] != '\n')
		return fail(why, whylen, "cut short (no checksum line)", 0);
	unsigned want = 0;
	for (int i = 8; i < 16; i++) {
		char c = tr[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return fail(why, whylen, "a malformed checksum line", 0);
		want = want << 4 | (unsigned)d;
	}
	size_t body = (size_t)(tr - data);
	if (gos_crc32c(0, data, body) != want)
		return fail(why, whylen, "checksum mismatch", 0);
	if (memchr(data, '\0', body))
		return fail(why, whylen, "a NUL byte", 0);

	const char *line = data, *end = data + body;
	unsigned lineno = 0;
	uint32_t count = 0, got = 0;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));   /* body ends in '\n' */
		lineno++;
		const char *stop = NULL;
		cJSON *o = cJSON_ParseWithLengthOpts(line, (size_t)(nl - line), &stop, 0);
		if (o && stop != nl) {   /* bytes after the JSON value */
			cJSON_Delete(o);
			o = NULL;
		}
		bool ok;
		if (lineno == 1) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "gos_gencache");
			const cJSON *req = cJSON_GetObjectItemCaseSensitive(o, "request");
			const cJSON *fr = cJSON_GetObjectItemCaseSensitive(o, "finish_reason");
			const cJSON *ct = cJSON_GetObjectItemCaseSensitive(o, "completion_tokens");
			const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "tokens");
			ok = cJSON_IsObject(o) && cJSON_IsNumber(v) && v->valuedouble == 1 && cJSON_IsString(req) &&
			     gos_utf8_valid(req->valuestring, strlen(req->valuestring)) &&
			     (cJSON_IsNull(fr) || (e->finish_reason = arena_text(a, fr, 64))) &&
			     cJSON_IsNumber(ct) && ct->valuedouble >= -1 && ct->valuedouble < 9e15 &&
			     num_or_null(cJSON_GetObjectItemCaseSensitive(o, "ttft_ms"), &e->ttft_ms) &&
			     num_or_null(cJSON_GetObjectItemCaseSensitive(o, "elapsed_ms"), &e->elapsed_ms) &&
			     cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble <= (double)(len / 8) &&
			     n->valuedouble == floor(n->valuedouble);
			if (ok) {
				e->request = gos_arena_strndup(a, req->valuestring, strlen(req->valuestring));
				e->completion_tokens = (int64_t)ct->valuedouble;
				count = (uint32_t)n->valuedouble;
				e->tokens = count ? gos_arena_alloc(a, count * sizeof *e->tokens,
				                                    _Alignof(struct gos_gencache_token)) : NULL;
			}
			cJSON_Delete(o);
			if (!ok)
				return fail(why, whylen, "not a gos_gencache version 1 header", lineno);
		} else {
			ok = got < count && parse_token(o, &e->tokens[got], a);
			cJSON_Delete(o);
			if (!ok)
				return fail(why, whylen, got < count ? "not a token" : "more tokens than the header says",
				            lineno);
			got++;
		}
		line = nl + 1;
	}
	if (lineno == 0)
		return fail(why, whylen, "no header", 0);
	if (got != count)
		return fail(why, whylen, "fewer tokens than the header says", 0);
	e->n_tokens = count;
	return true;
}

/* ---- files ---- */

static void entry_path(char *out, size_t len, const char *dir, const char *key)
{
	snprintf(out, len, "%s/%s.gen", dir, key);
}

enum gos_gencache_result gos_gencache_load(const char *dir, const char *request, struct gos_gencache_entry *e,
                                           struct gos_arena *a, char *why, size_t whylen)
{
	char key[GOS_GENCACHE_KEY_LEN + 1], path[4096];
	gos_gencache_key(request, strlen(request), key);
	entry_path(path, sizeof path, dir, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return GOS_GENCACHE_MISS;
	struct stat st;
	char *buf = NULL;
	bool ok = false;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= MAX_FILE &&
	    (buf = malloc((size_t)st.st_size))) {
		size_t got = 0;
		while (got < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		ok = got == (size_t)st.st_size && gos_gencache_parse(buf, got, e, a, why, whylen);
	} else {
		snprintf(why, whylen, "%s", st.st_size == 0 ? "empty" : "unreadable or too large");
	}
	close(fd);
	free(buf);
	if (!ok) {
		unlink(path);
		return GOS_GENCACHE_CORRUPT;
	}
	if (strcmp(e->request, request))
		return GOS_GENCACHE_MISS;
	utimensat(AT_FDCWD, path, NULL, 0);   /* most recently used */
	return GOS_GENCACHE_HIT;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

struct file_info {
	char name[GOS_GENCACHE_KEY_LEN + 5];
	uint64_t size;
	struct timespec mtime;
};

static int by_mtime(const void *pa, const void *pb)
{
	const struct file_info *x = pa, *y = pb;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Removes dead processes' temp files and the least recently used entries
 * until the rest fit in max_bytes. */
static void evict(const char *dir, uint64_t max_bytes)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct file_info *files = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		size_t nl = strlen(nm);
		if (!strncmp(nm, ".tmp-", 5)) {
			long pid = strtol(nm + 5, NULL, 10);
			if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
				unlinkat(dirfd(d), nm, 0);
			continue;
		}
		if (nl != GOS_GENCACHE_KEY_LEN + 4 || strcmp(nm + GOS_GENCACHE_KEY_LEN, ".gen"))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), nm, &st, 0) || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct file_info *f = realloc(files, cap * sizeof *f);
			if (!f)
				break;
			files = f;
		}
		snprintf(files[n].name, sizeof files[n].name, "%s", nm);
		files[n].size = (uint64_t)st.st_size;
		files[n].mtime = st.st_mtim;
		total += files[n].size;
		n++;
	}
	if (total > max_bytes && n) {
		qsort(files, n, sizeof *files, by_mtime);
		for (size_t i = 0; i < n && total > max_bytes; i++)
			if (unlinkat(dirfd(d), files[i].name, 0) == 0)
				total -= files[i].size;
	}
	free(files);
	closedir(d);
}

bool gos_gencache_store(const char *dir, const struct gos_gencache_entry *e, const struct gos_gencache_opts *o,
                        char *why, size_t whylen)
{
	struct gos_gencache_opts opts = o ? *o : (struct gos_gencache_opts){0};
	if (!opts.max_bytes)
		opts.max_bytes = DEFAULT_MAX_BYTES;
	size_t len;
	char *bytes = gos_gencache_encode(e, &len);
	if (!bytes) {
		snprintf(why, whylen, "the generation cannot be encoded");
		return false;
	}
	if (len > opts.max_bytes || len > MAX_FILE) {
		free(bytes);
		snprintf(why, whylen, "the entry (%zu bytes) is larger than the cache may hold", len);
		return false;
	}
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno));
		free(bytes);
		return false;
	}
	char key[GOS_GENCACHE_KEY_LEN + 1], tmp[4096], path[4096];
	gos_gencache_key(e->request, strlen(e->request), key);
	snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%s", dir, (long)getpid(), key);
	entry_path(path, sizeof path, dir, key);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	bool ok = fd >= 0;
	if (ok) {
		size_t half = len / 2;
		ok = write_all(fd, bytes, half);
		if (ok && opts.pause_ms)
			usleep(opts.pause_ms * 1000u);
		ok = ok && write_all(fd, bytes + half, len - half) && fsync(fd) == 0;
		ok = close(fd) == 0 && ok;
		ok = ok && rename(tmp, path) == 0;
	}
	int err = errno;
	free(bytes);
	if (!ok) {
		unlink(tmp);
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(err));
		return false;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);   /* the rename itself survives a crash */
		close(dfd);
	}
	evict(dir, opts.max_bytes);
	return true;
}
