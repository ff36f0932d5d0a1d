/* gos_reply: every reply serializer's output (gos_protocol_sync_reply,
 * gos_protocol_error_line, gos_protocol_screenshot_reply, the ingest's
 * too_many_producers refusal) reads back to what was written; malformed
 * lines, every truncation of a good one included, read as
 * GOS_REPLY_INVALID with a reason. Lines are exact-size heap copies with no
 * NUL after them, so ASan catches any over-read; linked with
 * tests/support/json_guard.c. Last, gos_client takes its sync counts from
 * the parser and still hands every line to on_line. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gos_client.h"
#include "gos_protocol.h"
#include "gos_reply.h"
#include "gos_test.h"

/* Parses s[0..len) from an exact-size heap copy. */
static enum gos_reply_type parse_n(const char *s, size_t len, struct gos_reply *r)
{
	char *b = malloc(len ? len : 1);
	if (!b)
		abort();
	memcpy(b, s, len);
	enum gos_reply_type t = gos_reply_parse(b, len, r);
	free(b);
	return t;
}

static enum gos_reply_type parse(const char *s, struct gos_reply *r)
{
	return parse_n(s, strlen(s), r);
}

/* Every proper prefix of a good line is not a reply. */
static void check_prefixes(const char *line)
{
	size_t len = strlen(line);
	unsigned bad = 0;
	for (size_t n = 0; n < len; n++) {
		struct gos_reply r;
		if (parse_n(line, n, &r) != GOS_REPLY_INVALID || !r.why[0])
			bad++;
	}
	CHECK(bad == 0, "%u prefixes of %.60s read as a reply", bad, line);
}

static void test_sync(void)
{
	static const uint64_t v[][3] = {
		{0, 0, 0},
		{1, 2, 3},
		{20000, 0, 20052},
		{1ull << 53, (1ull << 53) - 1, 9007199254740993ull /* 2^53 + 1: not a double */},
		{UINT64_MAX, UINT64_MAX - 1, 1ull << 63},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *line = gos_protocol_sync_reply(v[i][0], v[i][1], v[i][2]);
		struct gos_reply r;
		enum gos_reply_type t = parse(line, &r);
		CHECK(t == GOS_REPLY_SYNC && r.type == t && !r.why[0], "%s: %s (%s)", line,
		      gos_reply_type_name(t), r.why);
		/* Exact up to 2^53; above that as close as a double gets. */
		for (int k = 0; k < 3; k++) {
			uint64_t want = v[i][k];
			uint64_t got = k == 0 ? r.sync.applied : k == 1 ? r.sync.rejected : r.sync.tokens;
			double d = (double)want;
			uint64_t near = d >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)d;
			CHECK(got == (want <= (1ull << 53) ? want : near), "%s: field %d is %llu", line, k,
			      (unsigned long long)got);
		}
		check_prefixes(line);
		free(line);
	}
	struct gos_reply r;
	CHECK(parse("{\"type\":\"sync\",\"applied\":18446744073709551615,\"rejected\":0,\"tokens\":0}",
	            &r) == GOS_REPLY_SYNC && r.sync.applied == UINT64_MAX, "UINT64_MAX reads back");
}

static void test_error(void)
{
	static const char *messages[] = {
		"",
		"line is not valid JSON (near byte 3)",
		"\"token_text\" is over 4096 bytes: \\ / \b\f\n\r\t \x01 \x1f",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 sync",
	};
	for (int reason = 0; reason < GOS_REJECT_COUNT_; reason++) {
		for (size_t m = 0; m < sizeof(messages) / sizeof(messages[0]); m++) {
			struct gos_parse_error e = {.reason = (enum gos_reject)reason};
			snprintf(e.message, sizeof(e.message), "%s", messages[m]);
			uint64_t line_no = m == 0 ? 0 : m == 1 ? 1 : m == 2 ? 123456789 : 1ull << 53;
			char *line = gos_protocol_error_line(line_no, &e);
			struct gos_reply r;
			enum gos_reply_type t = parse(line, &r);
			CHECK(t == GOS_REPLY_ERROR && r.error.line == line_no &&
			      !strcmp(r.error.reason, e.message) &&
			      !strcmp(r.error.code, gos_reject_name(e.reason)),
			      "%s: %s line %llu code '%s' reason '%s' (%s)", line, gos_reply_type_name(t),
			      (unsigned long long)r.error.line, r.error.code, r.error.reason, r.why);
			if (m == 1)
				check_prefixes(line);
			free(line);
		}
	}
	/* The longest message gos_parse_error holds. */
	struct gos_parse_error e = {.reason = GOS_REJECT_TOO_LONG};
	memset(e.message, 'x', sizeof(e.message) - 1);
	char *line = gos_protocol_error_line(UINT64_MAX, &e);
	struct gos_reply r;
	CHECK(parse(line, &r) == GOS_REPLY_ERROR && r.error.line == UINT64_MAX &&
	      strlen(r.error.reason) == sizeof(e.message) - 1, "a 159-byte reason reads whole");
	free(line);

	/* The ingest writes its refusal itself (net/ingest/gos_ingest.c refuse). */
	CHECK(parse("{\"type\":\"error\",\"line\":0,\"code\":\"too_many_producers\","
	            "\"reason\":\"too many producers (max 1024)\"}", &r) == GOS_REPLY_ERROR &&
	      r.error.line == 0 && !strcmp(r.error.code, "too_many_producers") &&
	      !strcmp(r.error.reason, "too many producers (max 1024)"), "the refusal reads: %s", r.why);
	/* Compositors before "code" (shared/design.md's shape). */
	CHECK(parse("{\"type\":\"error\",\"line\":7,\"reason\":\"bad\"}", &r) == GOS_REPLY_ERROR &&
	      r.error.line == 7 && r.error.code[0] == '\0', "an error line without code reads");

	/* A reason longer than GOS_REPLY_MAX_REASON is cut on a character
	 * boundary: 2-byte characters, so byte 1023 is the middle of one. */
	size_t n = 2 * GOS_REPLY_MAX_REASON;
	char *big = malloc(n + 64);
	if (!big)
		abort();
	size_t at = (size_t)snprintf(big, 64, "{\"type\":\"error\",\"line\":1,\"reason\":\"");
	for (size_t i = 0; i < GOS_REPLY_MAX_REASON; i++, at += 2)
		memcpy(big + at, "\xc3\xa9", 2);
	memcpy(big + at, "\"}", 3);
	CHECK(parse(big, &r) == GOS_REPLY_ERROR && strlen(r.error.reason) == GOS_REPLY_MAX_REASON - 1 &&
	      (unsigned char)r.error.reason[GOS_REPLY_MAX_REASON - 2] == 0xa9,
	      "a long reason is cut to %zu bytes on a character boundary", strlen(r.error.reason));
	free(big);
}

static void test_screenshot(void)
{
	char longest[GOS_MAX_PATH + 1];
	longest[0] = '/';
	memset(longest + 1, 'p', GOS_MAX_PATH - 1);
	longest[GOS_MAX_PATH] = '\0';
	static const struct {
		const char *path;
		bool ok;
		uint32_t w, h;
		uint64_t tokens;
		const char *reason;
	} cases[] = {
		{"/tmp/a.png", true, 1280, 720, 139, NULL},
		{"/tmp/\"q\"\\ caf\xc3\xa9\n.png", true, 0, 0, 0, NULL},
		{"/x.png", true, UINT32_MAX, 1, 1ull << 53, NULL},
		{"/tmp/nodir/y.png", false, 0, 0, 0, "cannot write /tmp/nodir/y.png: No such file or directory"},
		{"/tmp/b.png", false, 0, 0, 0, "too many screenshot requests pending (limit 16); try again"},
		{"/tmp/c.png", false, 0, 0, 0, NULL},   /* "unknown failure" */
		{NULL, false, 0, 0, 0, "no window"},    /* path "" */
		{NULL, true, 1, 1, 1, NULL},
	};
	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		bool last = i == sizeof(cases) / sizeof(cases[0]);
		const char *path = last ? longest : cases[i].path;
		bool ok = last || cases[i].ok;
		uint32_t w = last ? 64 : cases[i].w, h = last ? 48 : cases[i].h;
		uint64_t tokens = last ? 5 : cases[i].tokens;
		const char *reason = last ? NULL : cases[i].reason;
		char *line = gos_protocol_screenshot_reply(path, ok, w, h, tokens, reason);
		struct gos_reply r;
		enum gos_reply_type t = parse(line, &r);
		const char *want_reason = ok ? "" : reason ? reason : "unknown failure";
		CHECK(t == GOS_REPLY_SCREENSHOT && !strcmp(r.shot.path, path ? path : "") &&
		      r.shot.ok == ok && r.shot.width == (ok ? w : 0) && r.shot.height == (ok ? h : 0) &&
		      r.shot.tokens == (ok ? tokens : 0) && !strcmp(r.shot.reason, want_reason),
		      "%.80s: %s ok %d %ux%u %llu '%s' (%s)", line, gos_reply_type_name(t), r.shot.ok,
		      r.shot.width, r.shot.height, (unsigned long long)r.shot.tokens, r.shot.reason, r.why);
		if (i == 0 || i == 3)
			check_prefixes(line);
		free(line);
	}
}

static void test_malformed(void)
{
	static const char *lines[] = {
		"",
		"   ",
		"not json",
		"null",
		"[]",
		"[{\"type\":\"sync\",\"applied\":1,\"rejected\":0,\"tokens\":1}]",
		"\"sync\"",
		"42",
		"{}",
		"{\"applied\":1,\"rejected\":0,\"tokens\":1}",
		"{\"type\":null}",
		"{\"type\":1}",
		"{\"type\":\"Sync\",\"applied\":1,\"rejected\":0,\"tokens\":1}",
		"{\"type\":\"token_activation\",\"token_id\":\"a\",\"token_text\":\"b\"}",
		"{\"type\":\"pong\",\"t\":1}",
		/* sync */
		"{\"type\":\"sync\"}",
		"{\"type\":\"sync\",\"applied\":1,\"rejected\":0}",
		"{\"type\":\"sync\",\"applied\":\"1\",\"rejected\":0,\"tokens\":1}",
		"{\"type\":\"sync\",\"applied\":-1,\"rejected\":0,\"tokens\":1}",
		"{\"type\":\"sync\",\"applied\":1.5,\"rejected\":0,\"tokens\":1}",
		"{\"type\":\"sync\",\"applied\":1e30,\"rejected\":0,\"tokens\":1}",
		"{\"type\":\"sync\",\"applied\":true,\"rejected\":0,\"tokens\":1}",
		"{\"type\":\"sync\",\"applied\":null,\"rejected\":0,\"tokens\":1}",
		"{\"type\":\"sync\",\"applied\":1,\"rejected\":0,\"tokens\":1} {}",
		"{\"type\":\"sync\",\"applied\":1,\"rejected\":0,\"tokens\":1}x",
		"{\"type\":\"sync\",\"applied\":1,\"rejected\":0,\"tokens\":1},",
		"{\"type\":\"sync\" \"applied\":1,\"rejected\":0,\"tokens\":1}",
		/* error */
		"{\"type\":\"error\"}",
		"{\"type\":\"error\",\"line\":1}",
		"{\"type\":\"error\",\"reason\":\"x\"}",
		"{\"type\":\"error\",\"line\":\"1\",\"reason\":\"x\"}",
		"{\"type\":\"error\",\"line\":1,\"reason\":7}",
		"{\"type\":\"error\",\"line\":1,\"reason\":null}",
		"{\"type\":\"error\",\"line\":1,\"reason\":\"x\",\"code\":3}",
		"{\"type\":\"error\",\"line\":-2,\"reason\":\"x\"}",
		/* screenshot */
		"{\"type\":\"screenshot\"}",
		"{\"type\":\"screenshot\",\"ok\":true,\"width\":1,\"height\":1,\"tokens\":1}",
		"{\"type\":\"screenshot\",\"path\":\"/a\"}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":1,\"width\":1,\"height\":1,\"tokens\":1}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":\"true\",\"width\":1,\"height\":1,\"tokens\":1}",
		"{\"type\":\"screenshot\",\"path\":7,\"ok\":true,\"width\":1,\"height\":1,\"tokens\":1}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":true}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":true,\"width\":1,\"height\":1}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":true,\"width\":4294967296,\"height\":1,\"tokens\":1}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":true,\"width\":1,\"height\":-1,\"tokens\":1}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":false}",
		"{\"type\":\"screenshot\",\"path\":\"/a\",\"ok\":false,\"reason\":false}",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct gos_reply r;
		memset(&r, 0x5a, sizeof(r));
		enum gos_reply_type t = parse(lines[i], &r);
		CHECK(t == GOS_REPLY_INVALID && r.type == GOS_REPLY_INVALID && r.why[0] &&
		      r.sync.applied == 0, "'%s' reads as %s (%s)", lines[i], gos_reply_type_name(t),
		      r.why);
	}

	/* A NUL inside the line ends the JSON text there: what follows is not
	 * whitespace. */
	static const char nul[] = "{\"type\":\"sync\",\"applied\":1,\"rejected\":0,\"tokens\":1}\0{}";
	struct gos_reply r;
	CHECK(parse_n(nul, sizeof(nul) - 1, &r) == GOS_REPLY_INVALID, "a NUL then more text: %s", r.why);

	/* A path over GOS_MAX_PATH is not cut (it would name another file). */
	size_t n = GOS_MAX_PATH + 200;
	char *big = malloc(n);
	if (!big)
		abort();
	size_t at = (size_t)snprintf(big, 64, "{\"type\":\"screenshot\",\"path\":\"/");
	memset(big + at, 'p', GOS_MAX_PATH);
	at += GOS_MAX_PATH;
	snprintf(big + at, n - at, "\",\"ok\":false,\"reason\":\"x\"}");
	CHECK(parse(big, &r) == GOS_REPLY_INVALID && strstr(r.why, "path"),
	      "a path over %d bytes: %s", GOS_MAX_PATH, r.why);
	free(big);

	/* Accepted around the object: whitespace (a CR from a CRLF sender),
	 * members in any order, fields gos does not know. */
	static const char *good[] = {
		" \t{\"type\":\"sync\",\"applied\":1,\"rejected\":0,\"tokens\":1}\r",
		"{\"tokens\":1,\"rejected\":0,\"applied\":1,\"type\":\"sync\"}",
		"{\"type\":\"sync\",\"applied\":1,\"rejected\":0,\"tokens\":1,\"seq\":9,\"x\":{\"y\":[]}}",
		"{\"type\":\"sync\",\"applied\":1.0,\"rejected\":0e0,\"tokens\":1}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(parse(good[i], &r) == GOS_REPLY_SYNC && r.sync.applied == 1 && r.sync.tokens == 1 &&
		      !r.why[0], "'%s' reads (%s)", good[i], r.why);

	CHECK(!strcmp(gos_reply_type_name(GOS_REPLY_SYNC), "sync") &&
	      !strcmp(gos_reply_type_name(GOS_REPLY_ERROR), "error") &&
	      !strcmp(gos_reply_type_name(GOS_REPLY_SCREENSHOT), "screenshot") &&
	      !strcmp(gos_reply_type_name(GOS_REPLY_INVALID), "invalid") &&
	      !strcmp(gos_reply_type_name((enum gos_reply_type)99), "invalid"), "type names");
}

/* gos_client: a one-shot server answers the sync with lines that mention
 * sync without being its reply, then the reply. */
struct server {
	int fd;
};

static void *serve_one(void *arg)
{
	struct server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	char buf[256];
	ssize_t n = c >= 0 ? read(c, buf, sizeof(buf)) : -1;
	static const char first[] =
		"{\"type\":\"error\",\"line\":1,\"reason\":\"\\\"sync\\\" is not here\",\"code\":\"not_json\"}\n"
		"{\"type\":\"sync\",\"applied\":-1,\"rejected\":0,\"tokens\":0}\n";
	static const char reply[] = "{\"type\":\"sync\",\"applied\":3,\"rejected\":1,\"tokens\":9}\n";
	if (n > 0 && write(c, first, sizeof(first) - 1) < 0)
		n = -1;
	/* Apart, so that a client fooled by the first lines returns before
	 * the reply arrives. */
	usleep(100 * 1000);
	if (n > 0 && write(c, reply, sizeof(reply) - 1) < 0)
		n = -1;
	if (c >= 0)
		close(c);
	return NULL;
}

static void count_line(void *ctx, const char *line, size_t len)
{
	(void)line;
	(void)len;
	(*(int *)ctx)++;
}

static void test_client(void)
{
	char path[108];
	snprintf(path, sizeof(path), "/tmp/gos_test_reply_%d.sock", (int)getpid());
	unlink(path);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path) + 1);
	struct server s = {.fd = socket(AF_UNIX, SOCK_STREAM, 0)};
	if (s.fd < 0 || bind(s.fd, (struct sockaddr *)&a, sizeof(a)) || listen(s.fd, 1)) {
		CHECK(false, "test socket");
		if (s.fd >= 0)
			close(s.fd);
		return;
	}
	pthread_t t;
	pthread_create(&t, NULL, serve_one, &s);
	char err[256];
	struct gos_client *c = gos_client_connect(path, err, sizeof(err));
	CHECK(c != NULL, "connect: %s", err);
	int lines = 0;
	struct gos_sync_result res = {0};
	if (c) {
		gos_client_on_line(c, count_line, &lines);
		CHECK(gos_client_sync(c, 5000, &res) && res.applied == 3 && res.rejected == 1 &&
		      res.tokens == 9, "the sync reply is the third line (applied %llu)",
		      (unsigned long long)res.applied);
		CHECK(lines == 3, "on_line saw every line (%d)", lines);
	}
	gos_client_close(c);
	pthread_join(t, NULL);
	close(s.fd);
	unlink(path);
}

int main(void)
{
	test_sync();
	test_error();
	test_screenshot();
	test_malformed();
	test_client();
	return gos_test_report("test_reply");
}
