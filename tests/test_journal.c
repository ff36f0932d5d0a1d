/* The journal (compositor/journal/): records scanned back exactly, torn and
 * corrupt files told apart at every cut; the writer behind a real core
 * answers a sync only once the events before it are in the segment on
 * disk; a restore (checkpoint + journal tail) gives the same map, and the
 * seq continues past every lease. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gos_buf.h"
#include "gos_core.h"
#include "gos_journal.h"
#include "gos_state.h"
#include "gos_test.h"

/* ---- records ---- */

struct seen {
	uint64_t n;
	uint64_t seq_sum;
	bool payload_ok;
};

static bool count_rec(void *ctx, const struct gos_jrec *r)
{
	struct seen *s = ctx;
	char want[64];
	int n = snprintf(want, sizeof(want), "payload %" PRIu64, r->seq_first);
	if (r->type == GOS_JREC_EVENT && ((int)r->len != n || memcmp(r->payload, want, r->len) != 0))
		s->payload_ok = false;
	s->n++;
	s->seq_sum += r->seq_first;
	return true;
}

static void test_scan(void)
{
	struct gos_buf w = {0};
	size_t bounds[64];
	for (uint64_t i = 0; i < 64; i++) {
		char p[64];
		int n = snprintf(p, sizeof(p), "payload %" PRIu64, i + 1);
		gos_journal_encode(&w, i % 9 == 8 ? GOS_JREC_LEASE : GOS_JREC_EVENT, i + 1, i + 1,
		                   1700000000.0 + (double)i, i % 9 == 8 ? NULL : p,
		                   i % 9 == 8 ? 0 : (uint32_t)n);
		bounds[i] = w.len;
	}
	struct seen s = {.payload_ok = true};
	struct gos_jscan sc;
	gos_journal_scan(w.data, w.len, count_rec, &s, &sc);
	CHECK(sc.end == GOS_JSCAN_CLEAN && s.n == 64 && sc.good == w.len && s.payload_ok,
	      "a clean segment reads back whole (end %d, %" PRIu64 " records)", sc.end, s.n);
	CHECK(s.seq_sum == 64 * 65 / 2, "every record's seq comes back");

	/* every cut: the whole records before it, TORN unless on a boundary */
	unsigned bad = 0;
	for (size_t cut = 0; cut <= w.len; cut++) {
		char *copy = malloc(cut ? cut : 1);
		memcpy(copy, w.data, cut);
		struct seen c = {.payload_ok = true};
		gos_journal_scan(copy, cut, count_rec, &c, &sc);
		size_t k = 0, whole = 0;
		while (k < 64 && bounds[k] <= cut)
			whole = bounds[k++];
		if (c.n != k || sc.good != whole ||
		    sc.end != (whole == cut ? GOS_JSCAN_CLEAN : GOS_JSCAN_TORN))
			bad++;
		free(copy);
	}
	CHECK(bad == 0, "every cut reads the records before it and is called torn (%u wrong)", bad);

	/* a flipped byte in record 20: corrupt (records follow), 20 records kept */
	size_t at = bounds[19] + 45;
	w.data[at] ^= 0x01;
	struct seen c = {.payload_ok = true};
	gos_journal_scan(w.data, w.len, count_rec, &c, &sc);
	CHECK(sc.end == GOS_JSCAN_CORRUPT && c.n == 20 && sc.good == bounds[19],
	      "a flipped byte in the middle is corruption after 20 records (end %d, %" PRIu64 ", %s)",
	      sc.end, c.n, sc.why);
	w.data[at] ^= 0x01;
	/* the same flip in the last record: torn (nothing valid after it) */
	w.data[bounds[62] + 41] ^= 0x01;
	c = (struct seen){.payload_ok = true};
	gos_journal_scan(w.data, w.len, count_rec, &c, &sc);
	CHECK(sc.end == GOS_JSCAN_TORN && c.n == 63, "a bad last record is a torn tail");
	gos_buf_finish(&w);
}

/* ---- the writer behind a real core ---- */

struct rig {
	char dir[256];
	_Atomic uint64_t replies;
	_Atomic uint64_t early;      /* replies sent before their events were on disk */
	_Atomic uint64_t applied_at_reply;
};

static bool count_event(void *ctx, const struct gos_jrec *r)
{
	if (r->type == GOS_JREC_EVENT)
		(*(uint64_t *)ctx)++;
	return true;
}

/* Event records in the dir's segments now (what a power cut would keep). */
static uint64_t events_on_disk(const char *dir)
{
	struct gos_journal_files f;
	char err[256];
	uint64_t n = 0;
	if (!gos_journal_list(dir, &f, err, sizeof(err)))
		return 0;
	for (size_t i = 0; i < f.n_seg; i++) {
		size_t len;
		void *buf = gos_journal_read_file(f.seg[i].path, &len, err, sizeof(err));
		if (!buf)
			continue;
		struct gos_jscan sc;
		gos_journal_scan(buf, len, count_event, &n, &sc);
		free(buf);
	}
	gos_journal_files_finish(&f);
	return n;
}

static void on_sync(void *ctx, const struct gos_sync_ev *s, uint64_t tokens)
{
	struct rig *r = ctx;
	(void)tokens;
	/* the sync's `applied` counts this producer's events; here one producer */
	if (events_on_disk(r->dir) < s->applied)
		atomic_fetch_add(&r->early, 1);
	atomic_store(&r->applied_at_reply, s->applied);
	atomic_fetch_add(&r->replies, 1);
}

static void push_tokens(struct gos_queue *q, uint64_t from, uint64_t n, uint64_t *applied)
{
	struct gos_batch *b = gos_queue_get_batch(q);
	for (uint64_t i = from; i < from + n; i++) {
		struct gos_event *e = gos_batch_push(b);
		char id[32], text[32], stream[16];
		snprintf(id, sizeof(id), "t%" PRIu64, i);
		snprintf(text, sizeof(text), "w%" PRIu64 " ", i % 97);
		snprintf(stream, sizeof(stream), "s%" PRIu64, i % 3);
		e->type = GOS_EV_TOKEN;
		e->token = (struct gos_token_ev){
			.id = gos_arena_strndup(&b->arena, id, strlen(id)),
			.text = gos_arena_strndup(&b->arena, text, strlen(text)),
			.stream = gos_arena_strndup(&b->arena, stream, strlen(stream)),
			.timestamp = (double)i, .confidence = (float)(i % 100) / 100.0f,
			.logprob = NAN,
		};
		(*applied)++;
	}
	struct gos_event *s = gos_batch_push(b);
	s->type = GOS_EV_SYNC;
	s->sync.applied = *applied;
	gos_queue_push(q, b);
}

static bool same_maps(struct gos_map *a, struct gos_map *b)
{
	struct gos_map_view va = {0}, vb = {0};
	gos_map_read_all(a, 0, 0, &va);
	gos_map_read_all(b, 0, 0, &vb);
	bool same = va.n_tokens == vb.n_tokens && va.n_streams == vb.n_streams;
	for (size_t i = 0; same && i < va.n_tokens; i++) {
		const struct gos_token *x = &va.tokens[i], *y = &vb.tokens[i];
		same = x->slot == y->slot && x->x == y->x && x->y == y->y && x->w == y->w &&
		       x->stream == y->stream && x->seq == y->seq && !strcmp(x->id, y->id) &&
		       !strcmp(x->text, y->text) &&
		       (x->confidence == y->confidence || (isnan(x->confidence) && isnan(y->confidence)));
		if (!same)
			fprintf(stderr, "token %zu differs: %s/%s seq %" PRIu64 "/%" PRIu64 "\n", i,
			        x->id, y->id, x->seq, y->seq);
	}
	for (size_t i = 0; same && i < va.n_streams; i++)
		same = !strcmp(va.streams[i].name, vb.streams[i].name) &&
		       va.streams[i].n_tokens == vb.streams[i].n_tokens;
	gos_map_view_finish(&va);
	gos_map_view_finish(&vb);
	return same;
}

static void test_writer(void)
{
	struct rig r = {0};
	snprintf(r.dir, sizeof(r.dir), "/tmp/gos-test-journal-XXXXXX");
	CHECK(mkdtemp(r.dir) != NULL, "mkdtemp");
	char err[512];
	int lock = gos_state_lock(r.dir, err, sizeof(err));
	CHECK(lock >= 0, "lock: %s", err);
	int lock2 = gos_state_lock(r.dir, err, sizeof(err));
	CHECK(lock2 < 0 && strstr(err, "--state-dir") && strstr(err, "--no-journal"),
	      "a second lock is refused naming both ways out: %s", err);

	struct gos_map_opts mo = {.max_tokens = 5000};   /* eviction too */
	struct gos_journal_restore_info info;
	struct gos_map *map = gos_journal_restore(r.dir, &mo, &info, err, sizeof(err));
	CHECK(map && info.seq == 0 && info.events == 0, "an empty dir restores an empty map");
	struct gos_queue *q = gos_queue_create(8);
	struct gos_journal *j = gos_journal_start(&(struct gos_journal_opts){
		.dir = r.dir, .map = map, .pool = q, .seq = info.seq,
		.checkpoint_events = 3000, .segment_bytes = 256 << 10,
		.on_sync = on_sync, .ctx = &r}, err, sizeof(err));
	CHECK(j != NULL, "journal starts: %s", err);
	struct gos_core *core = gos_core_create(&(struct gos_core_opts){
		.queue = q, .map = map, .on_sync = on_sync, .journal = j, .ctx = &r});
	uint64_t applied = 0;
	for (int k = 0; k < 40; k++)
		push_tokens(q, (uint64_t)k * 250, 250, &applied);
	for (int i = 0; i < 2000 && atomic_load(&r.replies) < 40; i++)
		usleep(5000);
	CHECK(atomic_load(&r.replies) == 40, "every sync answered (%" PRIu64 ")",
	      (uint64_t)atomic_load(&r.replies));
	CHECK(atomic_load(&r.early) == 0, "no sync answered before its events were on disk "
	      "(%" PRIu64 " early)", (uint64_t)atomic_load(&r.early));
	struct gos_journal_stats js;
	gos_journal_stats(j, &js);
	CHECK(js.records == 10000 && js.fsyncs >= 1 && js.fsyncs <= 41 + 10,
	      "group commit: %" PRIu64 " records in %" PRIu64 " fsyncs", js.records, js.fsyncs);
	struct gos_map_stats ms;
	gos_map_stats(map, &ms);
	CHECK(js.durable_seq == ms.seq, "durable seq %" PRIu64 " is the map's %" PRIu64,
	      js.durable_seq, ms.seq);
	gos_core_destroy(core);
	gos_journal_stop(j);
	close(lock);

	/* a checkpoint was written (3000 events) and the restore uses it */
	struct gos_journal_files f;
	gos_journal_list(r.dir, &f, err, sizeof(err));
	/* rolled: more than one segment, or the one left is not the first (a
	 * checkpoint that covers the older ones lets them go, at its own pace) */
	CHECK(f.n_ckpt >= 1 && (f.n_seg >= 2 || (f.n_seg == 1 && f.seg[0].seq > 1)),
	      "checkpoints (%zu) and rolled segments (%zu, the first from seq %llu) on disk",
	      f.n_ckpt, f.n_seg, f.n_seg ? (unsigned long long)f.seg[0].seq : 0ull);
	gos_journal_files_finish(&f);
	struct gos_map *back = gos_journal_restore(r.dir, &mo, &info, err, sizeof(err));
	CHECK(back != NULL, "restore: %s", err);
	CHECK(info.checkpoint_seq > 0, "the restore started from a checkpoint (seq %" PRIu64 ")",
	      info.checkpoint_seq);
	CHECK(back && same_maps(map, back), "the restored map equals the one that was fed");
	struct gos_map_stats bs;
	gos_map_stats(back, &bs);
	CHECK(bs.seq >= ms.seq + (1u << 19), "seq continues past the lease: %" PRIu64 " after %" PRIu64,
	      bs.seq, ms.seq);
	gos_map_destroy(back);

	/* the journal alone (no checkpoint) gives the same map too */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -f %s/checkpoint/*.ckpt", r.dir);
	CHECK(system(cmd) == 0, "remove the checkpoints");
	back = gos_journal_restore(r.dir, &mo, &info, err, sizeof(err));
	CHECK(back && info.checkpoint_seq == 0 && info.events == 10000 && same_maps(map, back),
	      "the journal alone restores the same map (%" PRIu64 " events)", info.events);
	gos_map_destroy(back);
	gos_map_destroy(map);
	gos_queue_destroy(q);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", r.dir);
	CHECK(system(cmd) == 0, "clean up");
}

int main(void)
{
	test_scan();
	test_writer();
	return gos_test_report("test_journal");
}
