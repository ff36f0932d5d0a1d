/* Geometry OS's producers through a real Unix socket into a real map
 * (issue 14; docs/geometry-os.md): the Rust EvolutionClient's little-endian
 * frames, the Python side's big-endian ones with their glyph command, what
 * each becomes on the map, the replies in each peer's own framing and
 * shape, messages gos does not draw counted, the frame deadline, and the
 * same messages as JSON lines. The rig is tests/support/ingest_rig.h. */
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_geo.h"
#include "gos_ingest.h"
#include "gos_map.h"
#include "gos_test.h"
#include "ingest_rig.h"

static const char GLYPH[16] = "\xce\x10\x00\x20\x00\xff\xff\x00\xff\x00\x00\x00\x00\x00\x00\x00";

/* Writes one frame: length (be: big-endian), JSON, trailer. */
static bool send_frame(int fd, bool be, const char *json, const char *tr, size_t tn)
{
	size_t jn = strlen(json);
	uint32_t n = (uint32_t)(jn + tn);
	char *b = malloc(4 + n);
	for (int i = 0; i < 4; i++)
		b[be ? 3 - i : i] = (char)(n >> (8 * i));
	memcpy(b + 4, json, jn);
	memcpy(b + 4 + jn, tr, tn);
	bool ok = write_all(fd, b, 4 + n);
	free(b);
	return ok;
}

static int ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* The live token with this id (copied into *out); false if none. */
static bool find_token(struct rig *r, const char *id, struct gos_token *out, char *stream, size_t cap)
{
	struct gos_map_view v = {0};
	gos_map_read_all(r->map, 0, 0, &v);
	bool found = false;
	for (size_t i = 0; i < v.n_tokens && !found; i++) {
		if (!v.tokens[i].removed && v.tokens[i].id && !strcmp(v.tokens[i].id, id)) {
			*out = v.tokens[i];
			out->id = out->text = NULL;
			snprintf(stream, cap, "%s", v.tokens[i].stream < v.n_streams
			                            ? v.streams[v.tokens[i].stream].name : "?");
			found = true;
		}
	}
	gos_map_view_finish(&v);
	return found;
}

static void stream_model(struct rig *r, const char *name, char *state, char *model, size_t cap)
{
	struct gos_map_view v = {0};
	gos_map_read_streams(r->map, &v);
	state[0] = model[0] = 0;
	for (size_t i = 0; i < v.n_streams; i++) {
		if (!strcmp(v.streams[i].name, name)) {
			snprintf(state, cap, "%s", v.streams[i].state ? v.streams[i].state : "");
			snprintf(model, cap, "%s", v.streams[i].model ? v.streams[i].model : "");
		}
	}
	gos_map_view_finish(&v);
}

/* The Rust side: u32 little-endian frames, {"message_type",...}. */
static void test_rust(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	int fd = raw_connect(r.path);
	send_frame(fd, false,
	           "{\"message_type\":\"TokenVisualizationUpdate\",\"payload\":{\"current_token\":\"hello\","
	           "\"token_id\":42,\"hilbert_position\":[0.25,0.5],\"activation\":0.8,\"layer\":3,"
	           "\"attention_weights\":[0.1,0.9],\"timestamp\":1707345600.5,\"sequence_position\":1,"
	           "\"sequence_length\":8},\"timestamp\":1707345600500}", "", 0);
	send_frame(fd, false,
	           "{\"message_type\":\"TokenVisualizationUpdate\",\"payload\":{\"current_token\":\" world\","
	           "\"token_id\":7,\"hilbert_position\":[1.0,0.0],\"activation\":3.5,\"layer\":0,"
	           "\"attention_weights\":[]},\"timestamp\":1707345600600}", "", 0);
	send_frame(fd, false,
	           "{\"message_type\":\"NeuralStateUpdate\",\"payload\":{\"daemon_id\":\"lm_studio_daemon\","
	           "\"strength\":0.8,\"data\":{\"confidence\":0.95,\"layer_activations\":[0.1]}},"
	           "\"timestamp\":1707345600700}", "", 0);
	send_frame(fd, false, "{\"message_type\":\"EvolutionTick\",\"payload\":null,\"timestamp\":1}", "", 0);
	send_frame(fd, false, "{\"message_type\":\"NeuralStateUpdate\",\"payload\":null,\"timestamp\":1}", "", 0);
	send_frame(fd, false, "{\"message_type\":\"SyncRequest\",\"payload\":null,\"timestamp\":1}", "", 0);
	char buf[4096];
	CHECK(read_frame(fd, buf, sizeof(buf), false), "a little-endian reply frame");
	static const char sync_want[] = "{\"message_type\":\"SyncResponse\",\"payload\":{\"applied\":3,"
	                                "\"rejected\":0,\"tokens\":2,\"ignored\":2},\"timestamp\":";
	CHECK(!strncmp(buf, sync_want, sizeof(sync_want) - 1),
	      "SyncResponse in the Rust shape: %s", buf);
	struct gos_token t;
	char stream[64];
	CHECK(find_token(&r, "geo:42", &t, stream, sizeof(stream)) && t.x == 1536.0f && t.y == 3072.0f &&
	      fabsf(t.confidence - 0.8f) < 1e-6f && !strcmp(stream, GOS_GEO_STREAM_RUST) &&
	      fabs(t.timestamp - 1707345600.5) < 1e-6,
	      "token_id 42 at hilbert [0.25,0.5] x 6144, activation 0.8 as confidence, its seconds: "
	      "(%g,%g) %g in '%s' at %f", t.x, t.y, t.confidence, stream, t.timestamp);
	CHECK(find_token(&r, "geo:7", &t, stream, sizeof(stream)) && t.x == 6144.0f && t.y == 0.0f &&
	      t.confidence == 1.0f && fabs(t.timestamp - 1707345600.6) < 1e-6,
	      "activation 3.5 clamps to 1; no payload timestamp: the message's ms: %g at %f",
	      t.confidence, t.timestamp);
	char state[64], model[64];
	stream_model(&r, GOS_GEO_STREAM_RUST, state, model, sizeof(state));
	CHECK(!strcmp(state, "processing") && !strcmp(model, "lm_studio_daemon"),
	      "NeuralStateUpdate: the stream's state '%s', the daemon as its model '%s'", state, model);
	/* A token without its text: an Error in the Rust shape, framed so */
	send_frame(fd, false, "{\"message_type\":\"TokenVisualizationUpdate\",\"payload\":{\"token_id\":1},"
	                      "\"timestamp\":1}", "", 0);
	CHECK(read_frame(fd, buf, sizeof(buf), false) &&
	      strstr(buf, "{\"message_type\":\"Error\",\"payload\":{\"error\":\"required field "
	                  "\\\"payload.current_token\\\" is missing\",\"code\":\"missing_field\",\"line\":7}"),
	      "a bad token: %s", buf);
	struct gos_ingest_stats st;
	gos_ingest_stats(r.ingest, &st);
	CHECK(st.geo[GOS_GEO_K_TOKEN] == 2 && st.geo[GOS_GEO_K_STATE] == 1 && st.geo[GOS_GEO_K_IGNORED] == 2 &&
	      st.geo[GOS_GEO_K_SYNC] == 1, "counted by kind: token %llu state %llu ignored %llu sync %llu",
	      (unsigned long long)st.geo[GOS_GEO_K_TOKEN], (unsigned long long)st.geo[GOS_GEO_K_STATE],
	      (unsigned long long)st.geo[GOS_GEO_K_IGNORED], (unsigned long long)st.geo[GOS_GEO_K_SYNC]);
	struct gos_buf m = {0};
	gos_ingest_metrics(r.ingest, &m);
	CHECK(m.data && strstr(m.data, "gos_ingest_geo_messages_total{kind=\"ignored\"} 2") &&
	      strstr(m.data, "gos_ingest_frame_timeouts_total 0"), "metrics: %s", m.data);
	gos_buf_finish(&m);
	close(fd);
	rig_finish(&r);
}

/* The Python side: u32 big-endian frames, {"msg_type","sequence",...}, a
 * 16-byte glyph command after the JSON inside the frame. */
static void test_python(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	int fd = raw_connect(r.path);
	send_frame(fd, true, "{\"msg_type\":\"Thought\",\"sequence\":1001,\"payload\":{\"type\":\"token\","
	                     "\"token\":\"hello\",\"confidence\":0.9}}", GLYPH, 16);
	send_frame(fd, true, "{\"msg_type\":\"Thought\",\"sequence\":1001,\"payload\":{\"type\":\"token\","
	                     "\"token\":\" there\"}}", GLYPH, 16);
	send_frame(fd, true, "{\"msg_type\":\"Thought\",\"sequence\":1002,\"payload\":{\"type\":\"gvn\","
	                     "\"content\":\"Eliminated 45 instructions\"}}", GLYPH, 16);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	send_frame(fd, true, "{\"msg_type\":\"Heartbeat\",\"sequence\":1003,\"payload\":{\"opcode\":254,"
	                     "\"timestamp\":1707345601.25}}", GLYPH, 16);
	char buf[4096];
	CHECK(read_frame(fd, buf, sizeof(buf), true) && ms_since(&t0) < 1000 &&
	      !strcmp(buf, "{\"msg_type\":\"Ack\",\"sequence\":1003,\"payload\":{\"status\":\"alive\","
	                   "\"of\":\"Heartbeat\"}}"),
	      "Heartbeat answered at once, big-endian, in the Python shape (%d ms): %s", ms_since(&t0), buf);
	send_frame(fd, true, "{\"msg_type\":\"RequestMetrics\",\"sequence\":1004,\"payload\":{}}", GLYPH, 16);
	CHECK(read_frame(fd, buf, sizeof(buf), true) &&
	      !strcmp(buf, "{\"msg_type\":\"Ack\",\"sequence\":1004,\"payload\":{\"status\":\"unsupported\","
	                   "\"of\":\"RequestMetrics\"}}"), "a request gos does not serve: %s", buf);
	send_frame(fd, true, "{\"msg_type\":\"Thought\",\"sequence\":1005,\"payload\":{\"type\":\"token\","
	                     "\"token\":\"x\",\"confidence\":1.5}}", GLYPH, 16);
	CHECK(read_frame(fd, buf, sizeof(buf), true) &&
	      !strcmp(buf, "{\"msg_type\":\"Error\",\"sequence\":1005,\"payload\":{\"error\":\"field "
	                   "\\\"payload.confidence\\\" is 1.5, outside [0,1]\",\"code\":\"confidence\","
	                   "\"line\":6}}"), "a bad confidence: %s", buf);
	send_frame(fd, true, "{\"msg_type\":\"SyncRequest\",\"sequence\":1006,\"payload\":{}}", GLYPH, 16);
	CHECK(read_frame(fd, buf, sizeof(buf), true) &&
	      !strcmp(buf, "{\"msg_type\":\"SyncResponse\",\"sequence\":1006,\"payload\":{\"applied\":2,"
	                   "\"rejected\":1,\"tokens\":2,\"ignored\":1}}"), "SyncResponse: %s", buf);
	struct gos_map_view v = {0};
	gos_map_read_all(r.map, 0, 0, &v);
	int thoughts = 0;
	for (size_t i = 0; i < v.n_tokens; i++) {
		const struct gos_token *t = &v.tokens[i];
		if (!strncmp(t->id, "thought:1001:", 13) &&
		    !strcmp(v.streams[t->stream].name, GOS_GEO_STREAM_THOUGHT))
			thoughts++;
		if (!strcmp(t->text, "hello"))
			CHECK(fabsf(t->confidence - 0.9f) < 1e-6f, "hello: confidence %g", t->confidence);
		if (!strcmp(t->text, " there"))
			CHECK(isnan(t->confidence), "no confidence: drawn neutral (%g)", t->confidence);
	}
	CHECK(thoughts == 2 && v.n_tokens == 2, "two thought tokens, same sequence, two ids (%d of %zu)",
	      thoughts, v.n_tokens);
	gos_map_view_finish(&v);
	close(fd);
	rig_finish(&r);
}

/* A big-endian Heartbeat frame of exactly 256 bytes (00 00 01 00: 65536
 * little-endian) is answered at once, not taken for a 64 KiB frame. */
static void test_low_byte_zero(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	char json[256];
	const char *head = "{\"msg_type\":\"Heartbeat\",\"sequence\":9,\"payload\":{\"opcode\":254,\"pad\":\"";
	size_t hn = strlen(head), jn = 256 - 16;
	memcpy(json, head, hn);
	memset(json + hn, 'p', jn - hn - 3);
	memcpy(json + jn - 3, "\"}}", 4);
	int fd = raw_connect(r.path);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	send_frame(fd, true, json, GLYPH, 16);
	char buf[4096];
	CHECK(read_frame(fd, buf, sizeof(buf), true) && ms_since(&t0) < 1000 && strstr(buf, "\"alive\""),
	      "answered in %d ms: %s", ms_since(&t0), buf);
	close(fd);
	rig_finish(&r);
}

/* A frame announced but not complete within frame_timeout_ms, however
 * its bytes trickle in: an error in its framing, the connection closed,
 * what came before applied. */
static void test_frame_deadline(void)
{
	struct rig r;
	if (!rig_init_opts(&r, 0, 0, true, &(struct gos_ingest_opts){.frame_timeout_ms = 400})) {
		CHECK(0, "rig");
		return;
	}
	int fd = raw_connect(r.path);
	send_frame(fd, false, "{\"message_type\":\"TokenVisualizationUpdate\",\"payload\":{\"current_token\":"
	                      "\"kept\",\"token_id\":5,\"hilbert_position\":[0.5,0.5],\"activation\":0.5},"
	                      "\"timestamp\":1}", "", 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	write_all(fd, "\xc8\x00\x00\x00{\"message_type\"", 19);   /* 200 bytes announced */
	bool eof = false;
	char buf[4096];
	/* one byte every 100 ms: progress, but no completion */
	for (int i = 0; i < 8 && !eof; i++) {
		usleep(100000);
		if (write(fd, " ", 1) != 1)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0)
			break;
	}
	CHECK(read_frame(fd, buf, sizeof(buf), false) && strstr(buf, "\"code\":\"timeout\"") &&
	      strstr(buf, "frame not complete 0.4 s after it began"),
	      "deadline: an error frame in the connection's framing: %s", buf);
	int took = ms_since(&t0);
	CHECK(took >= 350 && took < 1500, "after the deadline (%d ms)", took);
	int ms = read_until(fd, buf, sizeof(buf), NULL, 3000, &eof);
	CHECK(ms >= 0 && eof, "then closed");
	struct gos_token t;
	char stream[64];
	CHECK(find_token(&r, "geo:5", &t, stream, sizeof(stream)), "the earlier token stays applied");
	struct gos_ingest_stats st;
	gos_ingest_stats(r.ingest, &st);
	CHECK(st.frame_timeouts == 1 && st.rejected[GOS_REJECT_TIMEOUT] == 1, "counted: %llu",
	      (unsigned long long)st.frame_timeouts);
	close(fd);
	rig_finish(&r);
}

/* The same shapes as JSON lines, and --framing be for a producer that
 * wants no guessing. */
static void test_lines_and_forced(void)
{
	struct rig r;
	if (!rig_init(&r, 0, 0, true)) {
		CHECK(0, "rig");
		return;
	}
	int fd = raw_connect(r.path);
	const char *lines = "{\"message_type\":\"TokenVisualizationUpdate\",\"payload\":{\"current_token\":\"a\","
	                    "\"token_id\":1,\"hilbert_position\":[0,0],\"activation\":0.5},\"timestamp\":1}\n"
	                    "{\"message_type\":\"SyncRequest\",\"payload\":null,\"timestamp\":2}\n";
	write_all(fd, lines, strlen(lines));
	char buf[4096];
	bool eof;
	int ms = read_until(fd, buf, sizeof(buf), "}\n", 3000, &eof);
	static const char want[] = "{\"message_type\":\"SyncResponse\",\"payload\":{\"applied\":1,";
	CHECK(ms >= 0 && !strncmp(buf, want, sizeof(want) - 1),
	      "a line in, a line out: %s", buf);
	close(fd);
	rig_finish(&r);

	if (!rig_init_opts(&r, 0, 0, true, &(struct gos_ingest_opts){.framing = GOS_FRAMING_BE})) {
		CHECK(0, "rig");
		return;
	}
	fd = raw_connect(r.path);
	send_frame(fd, true, "{\"type\":\"sync\"}", "", 0);
	CHECK(read_frame(fd, buf, sizeof(buf), true) && !strcmp(buf, "{\"type\":\"sync\",\"applied\":0,"
	                                                           "\"rejected\":0,\"tokens\":0}"),
	      "--framing be: gos's own sync, a big-endian frame: %s", buf);
	close(fd);
	rig_finish(&r);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_rust();
	test_python();
	test_low_byte_zero();
	test_frame_deadline();
	test_lines_and_forced();
	return gos_test_report("test_ingest_geo");
}
