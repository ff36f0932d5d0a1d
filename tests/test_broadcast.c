/* compositor/gos_broadcast with a real map and a real gos_ws server (also
 * under ASan/UBSan): a viewer that applies hello, snapshot and deltas ends up
 * with exactly the map, `since` chains, evictions reach it, and when the
 * broadcaster falls further behind than the map's change log holds (a tiny
 * log here) every viewer gets resync + a fresh snapshot that equals the map.
 * Then gos_web (server + broadcaster) torn down while clients keep asking
 * for /health and /metrics: nothing may read the broadcaster once it is
 * freed (ASan here; a ThreadSanitizer build sees the race itself). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gos_broadcast.h"
#include "gos_map.h"
#include "gos_test.h"
#include "gos_web.h"
#include "gos_ws.h"
#include "ws_test_client.h"

struct mirror {
	cJSON *tokens;     /* object: id -> token */
	uint64_t seq;
	bool have_snapshot;
	unsigned chain_errors, resyncs, snapshots;
};

static void mirror_apply(struct mirror *m, const char *text)
{
	cJSON *j = cJSON_Parse(text);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
	if (!type) {
		cJSON_Delete(j);
		return;
	}
	uint64_t seq = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "seq"));
	uint64_t since = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "since"));
	if (!strcmp(type, "snapshot")) {
		cJSON_Delete(m->tokens);
		m->tokens = cJSON_CreateObject();
		cJSON *t;
		cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tokens"))
			cJSON_AddItemToObject(m->tokens, cJSON_GetStringValue(cJSON_GetObjectItem(t, "id")),
			                      cJSON_Duplicate(t, 1));
		m->seq = seq;
		m->have_snapshot = true;
		m->snapshots++;
	} else if (!strcmp(type, "token_visualization") || !strcmp(type, "neural_state")) {
		if (!m->have_snapshot || since != m->seq)
			m->chain_errors++;
		if (!strcmp(type, "token_visualization")) {
			cJSON *t;
			cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tokens")) {
				const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(t, "id"));
				cJSON_DeleteItemFromObjectCaseSensitive(m->tokens, id);
				if (!cJSON_IsTrue(cJSON_GetObjectItem(t, "removed")))
					cJSON_AddItemToObject(m->tokens, id, cJSON_Duplicate(t, 1));
			}
			m->seq = seq;
		}
	} else if (!strcmp(type, "resync")) {
		m->resyncs++;
	}
	cJSON_Delete(j);
}

/* Reads until the mirror holds the map's current seq. */
static bool catch_up(struct client *c, struct mirror *m, struct gos_map *map)
{
	struct gos_map_stats ms;
	gos_map_stats(map, &ms);
	double deadline = now_s() + 10;
	while (m->seq != ms.seq && now_s() < deadline) {
		char *msg = NULL;
		size_t n = 0;
		if (client_recv(c, &msg, &n, 200))
			mirror_apply(m, msg);
		free(msg);
	}
	return m->seq == ms.seq;
}

/* The mirror equals the map: same ids, texts and positions. */
static bool same_as_map(const struct mirror *m, struct gos_map *map, const char *what)
{
	struct gos_map_view v = {0};
	gos_map_read_all(map, 0, 0, &v);
	int mirrored = cJSON_GetArraySize(m->tokens);
	bool ok = (size_t)mirrored == v.n_tokens;
	CHECK(ok, "%s: viewer has %d tokens, map %zu", what, mirrored, v.n_tokens);
	size_t bad = 0;
	for (size_t i = 0; i < v.n_tokens; i++) {
		const struct gos_token *t = &v.tokens[i];
		cJSON *x = cJSON_GetObjectItemCaseSensitive(m->tokens, t->id);
		if (!x || strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "text")), t->text) ||
		    fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(x, "x")) - t->x) > 1e-3 ||
		    fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(x, "y")) - t->y) > 1e-3)
			bad++;
	}
	CHECK(bad == 0, "%s: %zu tokens differ from the map", what, bad);
	gos_map_view_finish(&v);
	return ok && bad == 0;
}

static void apply_tokens(struct gos_map *map, const char *prefix, int from, int to)
{
	size_t n = (size_t)(to - from);
	struct gos_event *ev = calloc(n, sizeof(*ev));
	char (*ids)[32] = calloc(n, sizeof(*ids));
	char (*texts)[32] = calloc(n, sizeof(*texts));
	for (size_t i = 0; i < n; i++) {
		int k = from + (int)i;
		snprintf(ids[i], sizeof(ids[i]), "%s%d", prefix, k);
		snprintf(texts[i], sizeof(texts[i]), "w%d", k);
		ev[i].type = GOS_EV_TOKEN;
		ev[i].token = (struct gos_token_ev){
			.id = ids[i], .text = texts[i], .stream = k % 2 ? "odd" : "",
			.timestamp = k, .has_position = k % 3 != 0, .x = (float)k * 10.0f,
			.y = (float)(k % 7), .confidence = (float)(k % 10) / 10.0f, .logprob = NAN,
		};
	}
	gos_map_apply(map, ev, n);
	free(ev);
	free(ids);
	free(texts);
}

/* ---- gos_web shut down under /health and /metrics traffic ---------------- */

struct hammer {
	pthread_t thread;
	int port;
	const char *path;
	_Atomic bool *stop;
	_Atomic unsigned answered;    /* 200 answers read */
};

/* Keep-alive requests back to back (several in flight), reconnecting when
 * the server hangs up, until told to stop. */
static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	                 h->path, h->port);
	while (!atomic_load(h->stop)) {
		int fd = tcp_connect(h->port);
		if (fd < 0) {
			sleep_ms(1);
			continue;
		}
		char buf[65536];
		while (!atomic_load(h->stop)) {
			for (int i = 0; i < 4; i++)
				send(fd, req, (size_t)n, MSG_NOSIGNAL);
			struct pollfd p = {fd, POLLIN, 0};
			if (poll(&p, 1, 200) <= 0)
				break;
			ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
			if (got <= 0)
				break;
			buf[got] = '\0';
			if (strstr(buf, "HTTP/1.1 200"))
				atomic_fetch_add(&h->answered, 1);
		}
		close(fd);
	}
	return NULL;
}

static void test_web_shutdown(void)
{
	char err[256];
	struct gos_map *map = gos_map_create(&(struct gos_map_opts){.max_tokens = 100});
	struct gos_web_opts wo = {.listen = "127.0.0.1:0", .tick_ms = 1};
	struct gos_web *w = gos_web_create(&wo, &(struct gos_web_sources){.map = map},
	                                   err, sizeof(err));
	CHECK(w != NULL, "gos_web starts: %s", err);
	if (!w) {
		gos_map_destroy(map);
		return;
	}
	_Atomic bool stop = false;
	struct hammer h[6];
	for (int i = 0; i < 6; i++) {
		h[i] = (struct hammer){.port = gos_web_port(w), .path = i % 2 ? "/metrics" : "/health",
		                       .stop = &stop};
		pthread_create(&h[i].thread, NULL, hammer_main, &h[i]);
	}
	double deadline = now_s() + 10;
	bool all = false;
	while (!all && now_s() < deadline) {
		all = true;
		for (int i = 0; i < 6; i++)
			all = all && atomic_load(&h[i].answered) > 0;
		sleep_ms(1);
	}
	CHECK(all, "/health and /metrics answered before the shutdown");
	sleep_ms(20);
	gos_web_destroy(w);  /* while the clients keep asking */
	atomic_store(&stop, true);
	for (int i = 0; i < 6; i++)
		pthread_join(h[i].thread, NULL);
	gos_map_destroy(map);
}

int main(void)
{
	char err[256];
	struct gos_map *map = gos_map_create(&(struct gos_map_opts){.max_tokens = 500,
	                                                            .log_capacity = 1024});
	struct gos_ws *ws = gos_ws_create(&(struct gos_ws_opts){.listen = "127.0.0.1:0"}, err,
	                                  sizeof(err));
	CHECK(ws != NULL, "server starts: %s", err);
	if (!ws)
		return gos_test_report("test_broadcast");
	struct gos_broadcast *bc = gos_broadcast_create(map, &(struct gos_broadcast_opts){
		.tick_ms = 5, .page = 64});
	CHECK(gos_broadcast_start(bc, ws, err, sizeof(err)), "broadcaster starts: %s", err);

	struct client c;
	struct mirror m = {.tokens = cJSON_CreateObject()};
	CHECK(client_connect(&c, gos_ws_port(ws), 0), "viewer connects");
	expect(&c, "\"type\":\"hello\"", "hello first");

	/* Steady traffic: batches between ticks, a neural_state per stream. */
	for (int b = 0; b < 10; b++) {
		apply_tokens(map, "a", b * 30, b * 30 + 30);
		sleep_ms(3);
	}
	struct gos_event st = {.type = GOS_EV_STATE, .state = {
		.state = "processing", .stream = "odd", .tokens_processed = 5, .total_tokens = 9,
		.elapsed_ms = 12}};
	gos_map_apply(map, &st, 1);
	CHECK(catch_up(&c, &m, map), "viewer reaches the map's seq (%llu)", (unsigned long long)m.seq);
	same_as_map(&m, map, "after steady traffic");
	CHECK(m.chain_errors == 0 && m.snapshots == 1 && m.resyncs == 0,
	      "deltas chained (%u errors), one snapshot (%u), no resync (%u)", m.chain_errors,
	      m.snapshots, m.resyncs);

	/* Repeats of the same ids update in place; past 500 tokens, evictions. */
	apply_tokens(map, "a", 100, 200);
	for (int b = 0; b < 10; b++) {
		apply_tokens(map, "e", b * 40, b * 40 + 40);
		sleep_ms(3);
	}
	CHECK(catch_up(&c, &m, map), "viewer catches up after evictions");
	same_as_map(&m, map, "after evictions");
	struct gos_map_stats ms;
	gos_map_stats(map, &ms);
	CHECK(ms.evicted > 0 && ms.live_tokens == 500, "the map evicted (%llu) down to 500 (%llu)",
	      (unsigned long long)ms.evicted, (unsigned long long)ms.live_tokens);

	/* 5000 events at once: the change log (1024) overflows before the next
	 * tick, no delta can be made, every viewer is resynced. */
	apply_tokens(map, "f", 0, 5000);
	CHECK(catch_up(&c, &m, map), "viewer catches up after the log overflowed");
	same_as_map(&m, map, "after a resync");
	struct gos_broadcast_stats bs;
	gos_broadcast_stats(bc, &bs);
	CHECK(bs.fallbacks >= 1 && m.resyncs >= 1 && m.snapshots >= 2,
	      "fallback (%llu) sent resync (%u) and a snapshot (%u)", (unsigned long long)bs.fallbacks,
	      m.resyncs, m.snapshots);
	CHECK(m.chain_errors == 0, "still no chain errors (%u)", m.chain_errors);

	/* A late joiner's snapshot (built from 64-token pages) is the map too. */
	struct client late;
	struct mirror lm = {.tokens = cJSON_CreateObject()};
	CHECK(client_connect(&late, gos_ws_port(ws), 0), "late viewer connects");
	apply_tokens(map, "g", 0, 50);
	CHECK(catch_up(&late, &lm, map), "late viewer reaches the map's seq");
	same_as_map(&lm, map, "late joiner");
	CHECK(catch_up(&c, &m, map), "first viewer too");
	same_as_map(&m, map, "first viewer at the end");

	/* The broadcaster counts a snapshot after handing it over, so the late
	 * viewer can hold its snapshot before the count moves: wait a little. */
	double deadline = now_s() + 2;
	gos_broadcast_stats(bc, &bs);
	while (bs.snapshots < 3 && now_s() < deadline) {
		sleep_ms(1);
		gos_broadcast_stats(bc, &bs);
	}
	CHECK(bs.deltas > 10 && bs.snapshots >= 3 && bs.seq > ms.seq,
	      "broadcaster stats move (deltas %llu, snapshots %llu, seq %llu)",
	      (unsigned long long)bs.deltas, (unsigned long long)bs.snapshots,
	      (unsigned long long)bs.seq);

	client_close(&c);
	client_close(&late);
	cJSON_Delete(m.tokens);
	cJSON_Delete(lm.tokens);
	gos_broadcast_destroy(bc);
	gos_ws_destroy(ws);
	gos_map_destroy(map);
	test_web_shutdown();
	return gos_test_report("test_broadcast");
}
