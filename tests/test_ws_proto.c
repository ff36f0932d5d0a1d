/* net/ws/gos_viewer_proto on its own (also under ASan/UBSan): the exact bytes
 * of every gos.v1 message the server writes (the Python and browser tests
 * compare them on the wire, so they must not move), a misused writer
 * aborting, and what the viewer's messages read as; first the gos_buf and
 * metrics helpers they are written with. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gos_buf.h"
#include "gos_metrics.h"
#include "gos_test.h"
#include "gos_viewer_proto.h"
#include "gos_ws.h"

static void test_text(void)
{
	struct gos_buf t = {0};
	gos_buf_json_str(&t, "a\"b\\c\n\x01 \xc3\xa9");
	CHECK(!strcmp(t.data, "\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9\""), "json escape: %s", t.data);
	gos_buf_clear(&t);
	gos_buf_json_f32(&t, 12.0f);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, -0.5f);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, NAN);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, 3e20f);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, 0.1f);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f64(&t, 0.1);
	gos_buf_putc(&t, ' ');
	gos_buf_json_f32(&t, 16777217.5f);
	/* shortest text that reads back to the same float/double */
	CHECK(!strcmp(t.data, "12 -0.5 null 3e+20 0.1 0.1 16777218"), "numbers: %s", t.data);
	gos_buf_clear(&t);
	for (int i = 0; i < 1000; i++)
		gos_buf_printf(&t, "%d,", i);
	CHECK(t.len == strlen(t.data) && t.len == 3890, "printf grows the buffer: %zu", t.len);
	gos_buf_finish(&t);

	static const double b[] = {0.1, 1.0};
	struct gos_hist h;
	gos_hist_init(&h, b, 2);
	gos_hist_observe(&h, 0.05);
	gos_hist_observe(&h, 0.5);
	gos_hist_observe(&h, 5.0);
	gos_metrics_hist(&t, "x_seconds", "help.", &h);
	CHECK(strstr(t.data, "x_seconds_bucket{le=\"0.1\"} 1\n") &&
	      strstr(t.data, "x_seconds_bucket{le=\"1\"} 2\n") &&
	      strstr(t.data, "x_seconds_bucket{le=\"+Inf\"} 3\n") &&
	      strstr(t.data, "x_seconds_count 3\n") && strstr(t.data, "x_seconds_sum 5.55"),
	      "cumulative histogram: %s", t.data);
	gos_buf_finish(&t);
}

static void check_text(struct gos_buf *b, const char *want, const char *what)
{
	CHECK(b->data && b->len == strlen(want) && !strcmp(b->data, want), "%s:\n  got  %s\n  want %s",
	      what, b->data ? b->data : "(nothing)", want);
	gos_buf_clear(b);
}

static void test_single_messages(void)
{
	struct gos_buf b = {0};
	CHECK(!strcmp(GOS_VIEWER_PROTOCOL, GOS_WS_PROTOCOL), "one protocol name: %s / %s",
	      GOS_VIEWER_PROTOCOL, GOS_WS_PROTOCOL);
	gos_viewer_hello(&b);
	check_text(&b, "{\"type\":\"hello\",\"protocol\":\"gos.v1\",\"protocol_version\":1,"
	           "\"server\":\"gos\",\"server_version\":\"" GOS_VERSION "\"}", "hello");
	gos_viewer_resync(&b);
	check_text(&b, "{\"type\":\"resync\"}", "resync");
	gos_viewer_pong(&b, 7);
	check_text(&b, "{\"type\":\"pong\",\"t\":7}", "pong, an integer t");
	gos_viewer_pong(&b, 0.1);
	check_text(&b, "{\"type\":\"pong\",\"t\":0.10000000000000001}", "pong: t to 17 digits");
	gos_viewer_pong(&b, 1707345600123.5);
	check_text(&b, "{\"type\":\"pong\",\"t\":1707345600123.5}", "pong: a time in ms");
	/* Messages append: a caller may write after what the buffer holds. */
	gos_buf_puts(&b, "x");
	gos_viewer_resync(&b);
	check_text(&b, "x{\"type\":\"resync\"}", "appended, not replaced");
	gos_buf_finish(&b);
}

static void test_lists(void)
{
	struct gos_buf b = {0};
	struct gos_viewer_writer w;
	static const struct gos_alt alts[] = {{"hello", -0.05f}, {NULL, -3.1f}};
	const struct gos_viewer_token full = {
		.id = "abc123", .text = "hel\"lo\n", .x = 100, .y = 200.5f, .w = 45,
		.confidence = 0.95f, .stream = "gen-1", .timestamp = 1707345600.0,
		.logprob = -0.05f, .n_alts = 2, .alts = alts, .index = 7, .rank = UINT32_MAX,
		.gap_ms = 12.5f, .entropy = 0.5f, .agree = 1.0f / 3, .diverges = true,
	};
	const struct gos_viewer_token bare = {
		.id = "t7", .x = -18, .y = 11, .w = 0.25f, .confidence = NAN,
		.timestamp = 1707345601.25, .logprob = NAN, .rank = 2, .gap_ms = NAN,
		.entropy = NAN, .agree = NAN,
	};
	const struct gos_viewer_token gone = {.id = "t1", .removed = true, .text = "ignored"};
	const struct gos_viewer_stream s1 = {
		.name = "gen-1", .state = "processing", .tokens_processed = 150, .total_tokens = 264,
		.elapsed_ms = 1234, .tokens = 150, .group = "gen-0", .diverge_at = 12,
	};
	const struct gos_viewer_stream s0 = {.total_tokens = -1, .elapsed_ms = NAN, .diverge_at = -1};

	static const char full_json[] =
		"{\"id\":\"abc123\",\"text\":\"hel\\\"lo\\n\",\"x\":100,\"y\":200.5,\"w\":45,"
		"\"confidence\":0.95,\"stream\":\"gen-1\",\"timestamp\":1707345600,\"logprob\":-0.05,"
		"\"alts\":[{\"token\":\"hello\",\"logprob\":-0.05},{\"token\":\"\",\"logprob\":-3.1}],"
		"\"index\":7,\"rank\":-1,\"gap_ms\":12.5,\"entropy\":0.5,\"agree\":0.333333343,"
		"\"diverges\":true}";
	static const char bare_json[] =
		"{\"id\":\"t7\",\"text\":\"\",\"x\":-18,\"y\":11,\"w\":0.25,\"confidence\":null,"
		"\"stream\":\"\",\"timestamp\":1707345601.25,\"index\":0,\"rank\":2}";
	static const char s1_json[] =
		"{\"stream\":\"gen-1\",\"state\":\"processing\",\"tokens_processed\":150,"
		"\"total_tokens\":264,\"elapsed_ms\":1234,\"tokens\":150,\"group\":\"gen-0\","
		"\"diverge_at\":12}";
	static const char s0_json[] =
		"{\"stream\":\"\",\"state\":\"\",\"tokens_processed\":0,\"total_tokens\":-1,"
		"\"elapsed_ms\":null,\"tokens\":0,\"group\":\"\",\"diverge_at\":-1}";
	char want[2048];

	gos_viewer_snapshot_begin(&w, &b, 285);
	gos_viewer_put_token(&w, &full);
	gos_viewer_put_token(&w, &bare);
	gos_viewer_put_stream(&w, &s1);
	gos_viewer_put_stream(&w, &s0);
	CHECK(gos_viewer_end(&w) == 2, "a snapshot counts its tokens");
	snprintf(want, sizeof(want), "{\"type\":\"snapshot\",\"seq\":285,\"tokens\":[%s,%s],"
	         "\"streams\":[%s,%s],\"live_tokens\":2}", full_json, bare_json, s1_json, s0_json);
	check_text(&b, want, "snapshot");

	gos_viewer_snapshot_begin(&w, &b, 0);
	CHECK(gos_viewer_end(&w) == 0, "an empty snapshot has no tokens");
	check_text(&b, "{\"type\":\"snapshot\",\"seq\":0,\"tokens\":[],\"streams\":[],\"live_tokens\":0}",
	           "empty snapshot");
	gos_viewer_snapshot_begin(&w, &b, 9);
	gos_viewer_put_stream(&w, &s0);
	gos_viewer_end(&w);
	snprintf(want, sizeof(want), "{\"type\":\"snapshot\",\"seq\":9,\"tokens\":[],\"streams\":[%s],"
	         "\"live_tokens\":0}", s0_json);
	check_text(&b, want, "snapshot with streams only");

	gos_viewer_token_visualization_begin(&w, &b, 285, 293, 139, 2);
	gos_viewer_put_token(&w, &bare);
	gos_viewer_put_token(&w, &gone);
	gos_viewer_end(&w);
	snprintf(want, sizeof(want), "{\"type\":\"token_visualization\",\"since\":285,\"seq\":293,"
	         "\"live_tokens\":139,\"n\":2,\"tokens\":[%s,{\"id\":\"t1\",\"removed\":true}]}",
	         bare_json);
	check_text(&b, want, "token_visualization");
	gos_viewer_token_visualization_begin(&w, &b, 5, 5, 0, 0);
	gos_viewer_end(&w);
	check_text(&b, "{\"type\":\"token_visualization\",\"since\":5,\"seq\":5,\"live_tokens\":0,"
	           "\"n\":0,\"tokens\":[]}", "empty token_visualization");

	gos_viewer_neural_state_begin(&w, &b, 285, 293);
	gos_viewer_put_stream(&w, &s1);
	gos_viewer_end(&w);
	snprintf(want, sizeof(want), "{\"type\":\"neural_state\",\"since\":285,\"seq\":293,"
	         "\"streams\":[%s]}", s1_json);
	check_text(&b, want, "neural_state");

	/* a stream with the generation's analytics (issue 13): derived on the way out */
	const struct gos_stream_stats stats = {
		.n_conf = 4, .conf_sum = 3.0, .conf_min = 0.5f, .n_logprob = 2, .logprob_sum = -2.0,
		.n_entropy = 2, .entropy_sum = 1.5, .first_ts = 10.0, .last_ts = 12.0,
		.hist = {0, 0, 0, 0, 0, 1, 0, 2, 0, 1},
	};
	const struct gos_viewer_stream s2 = {
		.name = "g", .state = "error", .tokens_processed = 5, .total_tokens = -1,
		.elapsed_ms = 2000, .tokens = 5, .ttft_ms = 120.5, .finish_reason = "",
		.message = "upstream \"died\"", .model = "tiny", .stats = &stats, .diverge_at = -1,
	};
	gos_viewer_neural_state_begin(&w, &b, 1, 2);
	gos_viewer_put_stream(&w, &s2);
	gos_viewer_end(&w);
	check_text(&b, "{\"type\":\"neural_state\",\"since\":1,\"seq\":2,\"streams\":[{\"stream\":\"g\","
	           "\"state\":\"error\",\"tokens_processed\":5,\"total_tokens\":-1,\"elapsed_ms\":2000,"
	           "\"tokens\":5,\"ttft_ms\":120.5,\"finish_reason\":\"\",\"message\":\"upstream \\\"died\\\"\","
	           "\"model\":\"tiny\",\"tokens_per_s\":2,\"mean_confidence\":0.75,\"min_confidence\":0.5,"
	           "\"perplexity\":2.7182818284590451,\"mean_entropy\":0.75,"
	           "\"confidence_hist\":[0,0,0,0,0,1,0,2,0,1],\"group\":\"g\",\"diverge_at\":-1}]}",
	           "a stream's analytics");
	gos_buf_finish(&b);
}

/* Runs f in a child; true when it died of SIGABRT. */
static bool aborts(void (*f)(void))
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);  /* the message is expected */
		if (devnull >= 0)
			dup2(devnull, 2);
		f();
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void token_in_neural_state(void)
{
	struct gos_buf b = {0};
	struct gos_viewer_writer w;
	gos_viewer_neural_state_begin(&w, &b, 1, 2);
	gos_viewer_put_token(&w, &(struct gos_viewer_token){.id = "x"});
}

static void token_after_streams(void)
{
	struct gos_buf b = {0};
	struct gos_viewer_writer w;
	gos_viewer_snapshot_begin(&w, &b, 1);
	gos_viewer_put_stream(&w, &(struct gos_viewer_stream){0});
	gos_viewer_put_token(&w, &(struct gos_viewer_token){.id = "x"});
}

static void short_token_visualization(void)
{
	struct gos_buf b = {0};
	struct gos_viewer_writer w;
	gos_viewer_token_visualization_begin(&w, &b, 1, 2, 3, 2);
	gos_viewer_put_token(&w, &(struct gos_viewer_token){.id = "x", .removed = true});
	gos_viewer_end(&w);
}

static void test_misuse(void)
{
	CHECK(aborts(token_in_neural_state), "a token in neural_state aborts");
	CHECK(aborts(token_after_streams), "a snapshot token after its streams aborts");
	CHECK(aborts(short_token_visualization), "a token_visualization short of its n aborts");
}

static void test_parse(void)
{
	struct gos_viewer_in in;
	static const char vp[] = "{\"type\":\"viewport\",\"x\":1.5,\"y\":-2,\"w\":800,\"h\":600,\"zoom\":2}";
	CHECK(gos_viewer_parse(vp, sizeof(vp) - 1, &in) == GOS_VIEWER_IN_VIEWPORT &&
	      in.viewport_has == 31 && in.viewport.x == 1.5 && in.viewport.y == -2 &&
	      in.viewport.w == 800 && in.viewport.h == 600 && in.viewport.zoom == 2,
	      "a viewport reads whole (has %#x)", in.viewport_has);
	struct gos_viewer_viewport kept = {1, 2, 3, 4, 5};
	static const char part[] = "{\"type\":\"viewport\",\"w\":\"wide\",\"zoom\":0.5,\"h\":null}";
	CHECK(gos_viewer_parse(part, sizeof(part) - 1, &in) == GOS_VIEWER_IN_VIEWPORT &&
	      in.viewport_has == GOS_VIEWER_VP_ZOOM, "only number fields count (has %#x)",
	      in.viewport_has);
	gos_viewer_viewport_update(&kept, &in);
	CHECK(kept.x == 1 && kept.y == 2 && kept.w == 3 && kept.h == 4 && kept.zoom == 0.5,
	      "an update changes the fields sent, keeps the rest");

	/* Not NUL-terminated: the length ends the message (json_guard: no
	 * length-bounded cJSON parse). */
	static const char ping[] = "{\"type\":\"ping\",\"t\":123.25}{\"type\":\"what\"}";
	CHECK(gos_viewer_parse(ping, 27, &in) == GOS_VIEWER_IN_PING && in.ping_t == 123.25,
	      "a ping reads its t (%g)", in.ping_t);
	static const char ping_bad[] = "{\"type\":\"ping\",\"t\":\"soon\"}";
	CHECK(gos_viewer_parse(ping_bad, sizeof(ping_bad) - 1, &in) == GOS_VIEWER_IN_PING &&
	      in.ping_t == 0, "a ping's t that is not a number reads 0");
	CHECK(gos_viewer_parse("{\"type\":\"ping\"}", 15, &in) == GOS_VIEWER_IN_PING && in.ping_t == 0,
	      "a ping without t reads 0");
	/* 1e999 reads as inf, which the pong could not carry as JSON */
	static const char ping_inf[] = "{\"type\":\"ping\",\"t\":1e999}";
	CHECK(gos_viewer_parse(ping_inf, sizeof(ping_inf) - 1, &in) == GOS_VIEWER_IN_PING &&
	      in.ping_t == 0, "a ping's t that is not finite reads 0 (%g)", in.ping_t);
	static const char vp_inf[] = "{\"type\":\"viewport\",\"x\":-1e999,\"y\":2}";
	CHECK(gos_viewer_parse(vp_inf, sizeof(vp_inf) - 1, &in) == GOS_VIEWER_IN_VIEWPORT &&
	      in.viewport_has == GOS_VIEWER_VP_Y, "a viewport field that is not finite is not taken");

	static const char *const ignored[] = {
		"{\"type\":\"what\"}", "{\"type\":7}", "{\"x\":1}", "not json", "", "[\"ping\"]",
		"{\"type\":\"Ping\"}", "\"ping\"", "{\"type\":\"viewport\"",
	};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		CHECK(gos_viewer_parse(ignored[i], strlen(ignored[i]), &in) == GOS_VIEWER_IN_IGNORED &&
		      in.type == GOS_VIEWER_IN_IGNORED, "ignored: %s", ignored[i]);
}

static void test_search(void)
{
	struct gos_buf b = {0};
	const char *ids1[] = {"a1", "a2"}, *ids2[] = {"q\"x"};
	struct gos_viewer_match m[] = {{"gen-1", 2, ids1, 9.5f, -22}, {NULL, 1, ids2, 0, NAN}};
	gos_viewer_search_result(&b, "the cat", 5, m, 2);
	check_text(&b, "{\"type\":\"search_result\",\"q\":\"the cat\",\"count\":5,\"matches\":["
	           "{\"stream\":\"gen-1\",\"ids\":[\"a1\",\"a2\"],\"x\":9.5,\"y\":-22},"
	           "{\"stream\":\"\",\"ids\":[\"q\\\"x\"],\"x\":0,\"y\":null}],\"truncated\":true}",
	           "search_result, truncated");
	gos_viewer_search_result(&b, "猫", 0, NULL, 0);
	check_text(&b, "{\"type\":\"search_result\",\"q\":\"猫\",\"count\":0,\"matches\":[],"
	           "\"truncated\":false}", "search_result, no match");
	gos_buf_finish(&b);

	struct gos_viewer_in in;
	static const char full[] = "{\"type\":\"search\",\"q\":\"The Cat\",\"limit\":5,"
	                           "\"streams\":[\"gen-1\",\"\"],\"min_p\":0.25,\"max_p\":0.5}";
	CHECK(gos_viewer_parse(full, sizeof(full) - 1, &in) == GOS_VIEWER_IN_SEARCH &&
	      !strcmp(in.search.q, "The Cat") && in.search.limit == 5 && in.search.has_streams &&
	      in.search.n_streams == 2 && !strcmp(in.search.streams, "gen-1") &&
	      in.search.streams[6] == 0 && in.search.min_p == 0.25 && in.search.max_p == 0.5,
	      "a search reads whole");
	static const char bare[] = "{\"type\":\"search\",\"q\":\"x\",\"min_p\":null}";
	CHECK(gos_viewer_parse(bare, sizeof(bare) - 1, &in) == GOS_VIEWER_IN_SEARCH &&
	      in.search.limit == GOS_VIEWER_SEARCH_LIMIT && !in.search.has_streams &&
	      isnan(in.search.min_p) && isnan(in.search.max_p), "defaults: 100, all streams, no range");
	char q256[400];
	snprintf(q256, sizeof(q256), "{\"type\":\"search\",\"q\":\"%0256d\"}", 0);
	CHECK(gos_viewer_parse(q256, strlen(q256), &in) == GOS_VIEWER_IN_SEARCH, "q of 256 bytes");
	snprintf(q256, sizeof(q256), "{\"type\":\"search\",\"q\":\"%0257d\"}", 0);
	CHECK(gos_viewer_parse(q256, strlen(q256), &in) == GOS_VIEWER_IN_BAD &&
	      strstr(in.bad, "256 bytes"), "q of 257 bytes: %s", in.bad);
	static const struct {
		const char *msg, *why;
	} bad[] = {
		{"{\"type\":\"search\"}", "\"q\" must be a string"},
		{"{\"type\":\"search\",\"q\":\"\"}", "not empty"},
		{"{\"type\":\"search\",\"q\":7}", "\"q\" must be a string"},
		{"{\"type\":\"search\",\"q\":\"a\",\"limit\":0}", "\"limit\""},
		{"{\"type\":\"search\",\"q\":\"a\",\"limit\":10001}", "\"limit\""},
		{"{\"type\":\"search\",\"q\":\"a\",\"limit\":2.5}", "\"limit\""},
		{"{\"type\":\"search\",\"q\":\"a\",\"min_p\":-0.1}", "\"min_p\""},
		{"{\"type\":\"search\",\"q\":\"a\",\"max_p\":\"1\"}", "\"max_p\""},
		{"{\"type\":\"search\",\"q\":\"a\",\"min_p\":0.6,\"max_p\":0.5}", "above"},
		{"{\"type\":\"search\",\"q\":\"a\",\"streams\":\"gen-1\"}", "array"},
		{"{\"type\":\"search\",\"q\":\"a\",\"streams\":[1]}", "array"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum gos_viewer_in_type t = gos_viewer_parse(bad[i].msg, strlen(bad[i].msg), &in);
		CHECK(t == GOS_VIEWER_IN_BAD && strstr(in.bad, "search: ") && strstr(in.bad, bad[i].why),
		      "bad: %s -> %s", bad[i].msg, t == GOS_VIEWER_IN_BAD ? in.bad : "(not bad)");
	}
	/* 257 names, or names of more than 128 bytes, are refused */
	struct gos_buf many = {0};
	gos_buf_puts(&many, "{\"type\":\"search\",\"q\":\"a\",\"streams\":[");
	for (int i = 0; i < 257; i++)
		gos_buf_printf(&many, "%s\"s%d\"", i ? "," : "", i);
	gos_buf_puts(&many, "]}");
	CHECK(gos_viewer_parse(many.data, many.len, &in) == GOS_VIEWER_IN_BAD &&
	      strstr(in.bad, "256 streams"), "257 stream names: %s", in.bad);
	gos_buf_clear(&many);
	gos_buf_printf(&many, "{\"type\":\"search\",\"q\":\"a\",\"streams\":[\"%0129d\"]}", 0);
	CHECK(gos_viewer_parse(many.data, many.len, &in) == GOS_VIEWER_IN_BAD &&
	      strstr(in.bad, "128 bytes"), "a name of 129 bytes: %s", in.bad);
	gos_buf_finish(&many);
}

int main(void)
{
	test_search();
	test_text();
	test_single_messages();
	test_lists();
	test_misuse();
	test_parse();
	return gos_test_report("test_ws_proto");
}
