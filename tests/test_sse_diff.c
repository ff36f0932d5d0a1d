/* test_sse_diff: gos_sse against npm eventsource-parser@3 on random event
 * streams. Writes the streams to a file, parses each with gos_sse here (in
 * random chunks) and with tests/node-sse/parse.mjs (in other random chunks,
 * through a streaming TextDecoder), and compares the two transcripts line by
 * line. Exits 77 (skipped) when node is not installed.
 *
 *   test_sse_diff [streams] [seed]     (default 3000 streams, seed 1) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_sse.h"

static uint64_t rng;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static size_t pick(size_t n) { return (size_t)(rnd() % n); }

struct bytes {
	char *p;
	size_t len, cap;
};

static void put(struct bytes *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}
static void puts_(struct bytes *b, const char *s) { put(b, s, strlen(s)); }

static void put_hex(struct bytes *b, const char *s, size_t n)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		char h[2] = {d[(unsigned char)s[i] >> 4], d[(unsigned char)s[i] & 15]};
		put(b, h, 2);
	}
}

/* ---- random streams ---- */

static const char *const names[] = {
	"data", "data", "data", "data", "event", "id", "retry", "", "dat", "Data",
	"data ", "ids", "eventx", "foo", "\xEF\xBB\xBF" "data", "\xC3\xA9vent",
};
static const char *const pieces[] = {
	"hello", "a", "x y", " ", "  ", ":", ": ", "0", "42", "007", "message", "add",
	"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xE6\x97\xA5\xE6\x9C\xAC",
	"\xFF", "\xFE", "\x80", "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xED\xA0\x80",
	"\xC0\xAF", "\xE0\x80\xAF", "\xF4\x90\x80\x80", "\xEF\xBB\xBF", "\xEF\xBB",
	"\t", "{\"k\":1}", "[DONE]",
};

static void random_value(struct bytes *b, bool digits)
{
	size_t n = pick(5);
	for (size_t i = 0; i < n; i++) {
		if (digits) {
			char c = (char)('0' + pick(10));
			put(b, &c, 1);
			if (i > 12)
				break;
		} else if (pick(12) == 0) {
			put(b, "", 1);   /* a NUL byte */
		} else {
			puts_(b, pieces[pick(sizeof pieces / sizeof pieces[0])]);
		}
	}
}

static void line_end(struct bytes *b)
{
	static const char *const ends[] = {"\n", "\n", "\n", "\r\n", "\r"};
	puts_(b, ends[pick(5)]);
}

static void random_stream(struct bytes *b)
{
	b->len = 0;
	put(b, "", 0);
	switch (pick(8)) {
	case 0: puts_(b, "\xEF\xBB\xBF"); break;
	case 1: puts_(b, "\xEF\xBB"); break;
	default: break;
	}
	size_t lines = pick(40);
	for (size_t i = 0; i < lines; i++) {
		size_t r = pick(20);
		if (r < 5) {
			/* an empty line: dispatch */
		} else if (r < 6) {
			puts_(b, ":");
			random_value(b, false);
		} else if (r < 7) {
			/* raw bytes, line ends among them */
			size_t n = pick(12);
			for (size_t k = 0; k < n; k++) {
				static const char soup[] = "da:t \r\n\r\nie\xFF\xC3\xA9\x00";
				char c = soup[pick(sizeof soup - 1)];
				put(b, &c, 1);
			}
		} else {
			const char *name = names[pick(sizeof names / sizeof names[0])];
			puts_(b, name);
			size_t sep = pick(6);
			if (sep == 0)
				;   /* no colon: the whole line is the name */
			else if (sep < 3)
				puts_(b, ":");
			else if (sep < 5)
				puts_(b, ": ");
			else
				puts_(b, ":  ");
			if (sep)
				random_value(b, !strcmp(name, "retry") && pick(3));
		}
		line_end(b);
	}
	/* Sometimes an unfinished last line or event. */
	if (pick(4) == 0)
		puts_(b, "data: tail");
}

/* ---- gos_sse side ---- */

struct side {
	struct bytes *out;
	size_t k;
};

static void on_event(void *ctx, const struct gos_sse_event *ev)
{
	struct side *s = ctx;
	char head[32];
	snprintf(head, sizeof head, "E %zu ", s->k);
	puts_(s->out, head);
	put_hex(s->out, ev->type, ev->type_len);
	puts_(s->out, " ");
	put_hex(s->out, ev->data, ev->data_len);
	puts_(s->out, " ");
	if (ev->has_id)
		put_hex(s->out, ev->id, ev->id_len);
	else
		puts_(s->out, "-");
	puts_(s->out, "\n");
}

static void on_retry(void *ctx, uint64_t ms)
{
	struct side *s = ctx;
	char line[64];
	snprintf(line, sizeof line, "R %zu %llu\n", s->k, (unsigned long long)ms);
	puts_(s->out, line);
}

static void parse_c(const struct bytes *stream, size_t k, struct bytes *out)
{
	struct side s = {out, k};
	struct gos_sse_callbacks cb = {on_event, on_retry, NULL, &s, NULL};
	struct gos_sse *p = gos_sse_create(NULL, &cb);
	if (!p)
		abort();
	size_t at = 0;
	while (at < stream->len) {
		size_t n = 1 + pick(stream->len - at < 64 ? stream->len - at : 64);
		gos_sse_feed(p, stream->p + at, n);
		at += n;
	}
	gos_sse_end(p);
	gos_sse_destroy(p);
	char end[32];
	snprintf(end, sizeof end, ". %zu\n", k);
	puts_(out, end);
}

static void print_escaped(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, f);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\r')
			fputs("\\r", f);
		else
			fprintf(f, "\\x%02x", c);
	}
}

int main(int argc, char **argv)
{
	size_t n_streams = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000;
	unsigned long seed = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
	rng = 0x9E3779B97F4A7C15ull ^ (seed * 0x100000001B3ull);

	if (system("node --version >/dev/null 2>&1") != 0) {
		printf("test_sse_diff: node is not installed: skipped\n");
		return 77;
	}
	const char *src = getenv("GOS_SOURCE_DIR");
	if (!src)
		src = ".";
	char mod[4096];
	snprintf(mod, sizeof mod, "%s/tests/node-sse/node_modules/eventsource-parser/package.json", src);
	if (access(mod, R_OK) != 0) {
		fprintf(stderr, "test_sse_diff: %s is missing: run tools/setup.sh (it installs the npm packages)\n", mod);
		return 1;
	}

	char path[] = "/tmp/gos-sse-diff-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "test_sse_diff: mkstemp: %s\n", strerror(errno));
		return 1;
	}
	FILE *f = fdopen(fd, "wb");
	struct bytes stream = {0}, want = {0};
	struct bytes *all = calloc(n_streams, sizeof *all);
	size_t total = 0;
	for (size_t k = 0; k < n_streams; k++) {
		random_stream(&stream);
		uint32_t len = (uint32_t)stream.len;
		unsigned char le[4] = {len & 255, (len >> 8) & 255, (len >> 16) & 255, len >> 24};
		fwrite(le, 1, 4, f);
		fwrite(stream.p, 1, stream.len, f);
		all[k] = (struct bytes){0};
		put(&all[k], stream.p, stream.len);
		parse_c(&stream, k, &want);
		total += stream.len;
	}
	fclose(f);

	char cmd[8192];
	snprintf(cmd, sizeof cmd, "node '%s/tests/node-sse/parse.mjs' '%s' %lu", src, path, seed);
	FILE *pipe = popen(cmd, "r");
	struct bytes got = {0};
	char chunk[65536];
	size_t n;
	while (pipe && (n = fread(chunk, 1, sizeof chunk, pipe)) > 0)
		put(&got, chunk, n);
	int rc = pipe ? pclose(pipe) : -1;
	unlink(path);
	if (rc != 0) {
		fprintf(stderr, "test_sse_diff: '%s' failed (status %d)\n", cmd, rc);
		return 1;
	}

	/* Compare line by line; report the first stream that differs. */
	const char *a = want.p, *b = got.p ? got.p : "";
	size_t events = 0, line = 1;
	while (*a || *b) {
		const char *ae = strchr(a, '\n'), *be = strchr(b, '\n');
		size_t al = ae ? (size_t)(ae - a) : strlen(a), bl = be ? (size_t)(be - b) : strlen(b);
		if (al != bl || memcmp(a, b, al)) {
			size_t k = 0;
			sscanf(a[0] ? a + 2 : b + 2, "%zu", &k);
			fprintf(stderr, "test_sse_diff: line %zu differs\n  gos_sse:            %.*s\n"
			        "  eventsource-parser: %.*s\nstream %zu (seed %lu): \"", line,
			        (int)al, a, (int)bl, b, k, seed);
			if (k < n_streams)
				print_escaped(stderr, all[k].p, all[k].len);
			fprintf(stderr, "\"\n");
			return 1;
		}
		if (a[0] == 'E' || a[0] == 'R')
			events++;
		a += al + (ae ? 1 : 0);
		b += bl + (be ? 1 : 0);
		line++;
	}
	printf("test_sse_diff: %zu random streams (%zu bytes), %zu events and retries: gos_sse and "
	       "eventsource-parser agree\n", n_streams, total, events);
	for (size_t k = 0; k < n_streams; k++)
		free(all[k].p);
	free(all);
	free(stream.p);
	free(want.p);
	free(got.p);
	return 0;
}
