/* Checkpoint images of the map: a map read back from its image holds the
 * same tokens, streams, stats and seq, and goes on exactly as the original
 * (layout cursors, eviction order, seqs) under the same events; an image
 * written by gos_map_fork's child while another thread applies events is
 * the map at one seq; every damaged or cut image is refused with a message.
 * Prints the image size per token and write/read times for 1M tokens.
 *
 * GOS_MAP_IMAGE_SEEDS=DIR also writes small images there (the seeds of
 * tests/fuzz/map_image_corpus). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gos_map.h"
#include "map_image_fix.h"
#include "gos_test.h"
#include "gos_time.h"

/* ---- files ---- */

static int temp_fd(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/gos_map_image_XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		exit(1);
	}
	unlink(path);
	return fd;
}

static unsigned char *slurp(int fd, size_t *len)
{
	struct stat st;
	fstat(fd, &st);
	unsigned char *b = malloc((size_t)st.st_size + 1);
	ssize_t n = pread(fd, b, (size_t)st.st_size, 0);
	*len = n > 0 ? (size_t)n : 0;
	return b;
}

/* The image of m, in memory (malloc'd). */
static unsigned char *image_of(struct gos_map *m, size_t *len)
{
	int fd = temp_fd();
	bool ok = gos_map_image_write(m, fd);
	CHECK(ok, "gos_map_image_write to a temp file: %s", strerror(errno));
	unsigned char *b = slurp(fd, len);
	close(fd);
	return b;
}

/* Reads a map from bytes (through a temp file, as from disk). */
static struct gos_map *read_bytes(const unsigned char *b, size_t n, const struct gos_map_opts *o,
                                  char *err, size_t errlen)
{
	static int fd = -1;
	if (fd < 0)
		fd = temp_fd();
	if (ftruncate(fd, 0) != 0 || pwrite(fd, b, n, 0) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0) {
		perror("temp file");
		exit(1);
	}
	return gos_map_image_read(fd, o, err, errlen);
}

/* ---- a deterministic workload ---- */

/* Events and the strings they point to, for one apply call. */
struct batch {
	struct gos_event ev[64];
	size_t n;
	char ids[64][24], texts[64][48], alt_s[64][5][16];
	struct gos_alt alts[64][5];
	struct gos_viz_token viz[64][3];
	char viz_ids[64][3][24];
};

static uint64_t next(uint64_t *r)
{
	*r = *r * 6364136223846793005ull + 1442695040888963407ull;
	return *r >> 33;
}

static const char *const stream_names[] = {"", "alpha", "beta", "p:1:1", "p:1:2"};  /* the last two: a group */
static const char *const pieces[] = {" the", " map", "\n", " é", "日本", " tokens", "!", " a",
                                     " long_word_that_wraps_columns", ""};

/* One apply call's events: tokens over a few hundred ids (so many come
 * again as updates), some with top_logprobs or a position, visualizations,
 * neural_states and syncs. */
static void make_batch(struct batch *b, uint64_t *r, uint32_t id_range)
{
	b->n = 1 + next(r) % 64;
	for (size_t j = 0; j < b->n; j++) {
		snprintf(b->ids[j], sizeof(b->ids[j]), "tok-%u", (unsigned)(next(r) % id_range));
		b->texts[j][0] = '\0';
		for (uint64_t k = next(r) % 3; k < 3; k++) {
			const char *p = pieces[next(r) % 10];
			if (strlen(b->texts[j]) + strlen(p) < sizeof(b->texts[j]))
				memcpy(b->texts[j] + strlen(b->texts[j]), p, strlen(p) + 1);
		}
		const char *stream = stream_names[next(r) % 5];
		uint64_t kind = next(r) % 20;
		if (kind < 15) {
			struct gos_token_ev t = {
				.id = b->ids[j], .text = b->texts[j], .stream = stream,
				.timestamp = (double)next(r) / 1000.0,
				.confidence = next(r) % 4 ? (float)(next(r) % 1000) / 1000.0f : NAN,
				.logprob = next(r) % 3 ? -(float)(next(r) % 5000) / 1000.0f : NAN,
			};
			if (next(r) % 8 == 0) {
				t.has_position = true;
				t.x = (float)(next(r) % 20000) - 10000.0f;
				t.y = (float)(next(r) % 20000) / 3.0f;
			}
			t.n_alts = next(r) % 3 == 0 ? (uint32_t)(next(r) % 6) : 0;
			for (uint32_t a = 0; a < t.n_alts; a++) {
				snprintf(b->alt_s[j][a], sizeof(b->alt_s[j][a]), "alt%u_%u", a,
				         (unsigned)(next(r) % 100));
				b->alts[j][a] = (struct gos_alt){b->alt_s[j][a], -(float)a - 0.25f};
			}
			t.alts = t.n_alts ? b->alts[j] : NULL;
			b->ev[j] = (struct gos_event){.type = GOS_EV_TOKEN, .token = t};
		} else if (kind < 17) {
			for (int q = 0; q < 3; q++) {
				snprintf(b->viz_ids[j][q], sizeof(b->viz_ids[j][q]), "tok-%u",
				         (unsigned)(next(r) % id_range));
				b->viz[j][q] = (struct gos_viz_token){
					.id = b->viz_ids[j][q], .text = b->texts[j], .stream = stream_names[q],
					.x = (float)(next(r) % 500), .y = (float)q * 22.0f,
					.confidence = (float)q / 4.0f};
			}
			b->ev[j] = (struct gos_event){.type = GOS_EV_VIZ, .viz = {3, b->viz[j]}};
		} else if (kind < 19) {
			b->ev[j] = (struct gos_event){.type = GOS_EV_STATE, .state = {
				.state = next(r) % 2 ? "generating" : "done", .stream = stream,
				.tokens_processed = (int64_t)next(r) % 1000, .total_tokens = 1000,
				.elapsed_ms = (double)(next(r) % 100000) / 7.0,
				.ttft_ms = next(r) % 3 ? (double)(next(r) % 5000) / 3.0 : NAN,
				.finish_reason = next(r) % 2 ? "stop" : NULL,
				.message = next(r) % 5 ? NULL : "upstream said: model crashed",
				.model = next(r) % 2 ? "tiny-q4.gguf" : NULL}};
		} else {
			b->ev[j] = (struct gos_event){.type = GOS_EV_SYNC};
		}
	}
}

/* Applies `calls` apply calls of the workload seeded *r to every map. */
static void feed(struct gos_map **maps, int n_maps, uint64_t *r, int calls, uint32_t id_range)
{
	static struct batch b;
	for (int c = 0; c < calls; c++) {
		make_batch(&b, r, id_range);
		for (int k = 0; k < n_maps; k++)
			gos_map_apply(maps[k], b.ev, b.n);
	}
}

/* ---- comparing two maps ---- */

static bool same_bits(const void *a, const void *b, size_t n)
{
	return memcmp(a, b, n) == 0;
}

static const char *token_diff(const struct gos_token *a, const struct gos_token *b)
{
	if (a->slot != b->slot) return "slot";
	if (a->stream != b->stream) return "stream";
	if (!same_bits(&a->x, &b->x, 4) || !same_bits(&a->y, &b->y, 4)) return "position";
	if (!same_bits(&a->w, &b->w, 4)) return "width";
	if (!same_bits(&a->confidence, &b->confidence, 4)) return "confidence";
	if (!same_bits(&a->logprob, &b->logprob, 4)) return "logprob";
	if (!same_bits(&a->timestamp, &b->timestamp, 8)) return "timestamp";
	if (a->seq != b->seq) return "seq";
	if (a->removed != b->removed) return "removed";
	if (a->index != b->index || !same_bits(&a->gap_ms, &b->gap_ms, 4)) return "index or gap";
	if (a->rank != b->rank || !same_bits(&a->entropy, &b->entropy, 4)) return "rank or entropy";
	if (!same_bits(&a->agree, &b->agree, 4) || a->diverges != b->diverges)
		return "agreement";
	if (strcmp(a->id, b->id)) return "id";
	if (strcmp(a->text, b->text)) return "text";
	if (a->n_alts != b->n_alts) return "alt count";
	for (uint32_t k = 0; k < a->n_alts; k++)
		if (strcmp(a->alts[k].token, b->alts[k].token) ||
		    !same_bits(&a->alts[k].logprob, &b->alts[k].logprob, 4))
			return "alts";
	return NULL;
}

static const char *stream_diff(const struct gos_stream *a, const struct gos_stream *b)
{
	if (a->index != b->index) return "index";
	if (strcmp(a->name, b->name)) return "name";
	if (strcmp(a->state, b->state)) return "state";
	if (a->tokens_processed != b->tokens_processed || a->total_tokens != b->total_tokens)
		return "token counts";
	if (!same_bits(&a->elapsed_ms, &b->elapsed_ms, 8)) return "elapsed_ms";
	if (a->n_tokens != b->n_tokens) return "n_tokens";
	if (a->newest_slot != b->newest_slot) return "newest_slot";
	if (a->seq != b->seq) return "seq";
	if (!same_bits(&a->ttft_ms, &b->ttft_ms, 8)) return "ttft_ms";
	if (strcmp(a->finish_reason, b->finish_reason) || strcmp(a->message, b->message) ||
	    strcmp(a->model, b->model))
		return "finish_reason, message or model";
	const struct gos_stream_stats *x = &a->stats, *y = &b->stats;
	if (x->n_conf != y->n_conf || x->n_logprob != y->n_logprob || x->n_entropy != y->n_entropy ||
	    !same_bits(&x->conf_sum, &y->conf_sum, 8) || !same_bits(&x->conf_min, &y->conf_min, 4) ||
	    !same_bits(&x->logprob_sum, &y->logprob_sum, 8) ||
	    !same_bits(&x->entropy_sum, &y->entropy_sum, 8) ||
	    !same_bits(&x->first_ts, &y->first_ts, 8) || !same_bits(&x->last_ts, &y->last_ts, 8) ||
	    memcmp(x->hist, y->hist, sizeof(x->hist)))
		return "stats";
	if (a->group != b->group || a->diverge_at != b->diverge_at) return "group or divergence";
	return NULL;
}

/* Two views token by token and stream by stream (arrival times aside). */
static bool views_equal(const struct gos_map_view *a, const struct gos_map_view *b,
                        const char *what)
{
	if (a->seq != b->seq || a->n_tokens != b->n_tokens || a->n_streams != b->n_streams ||
	    a->live_tokens != b->live_tokens) {
		CHECK(0, "%s: seq %llu/%llu, %zu/%zu tokens, %zu/%zu streams, %llu/%llu live", what,
		      (unsigned long long)a->seq, (unsigned long long)b->seq, a->n_tokens, b->n_tokens,
		      a->n_streams, b->n_streams, (unsigned long long)a->live_tokens,
		      (unsigned long long)b->live_tokens);
		return false;
	}
	for (size_t i = 0; i < a->n_tokens; i++) {
		const char *d = token_diff(&a->tokens[i], &b->tokens[i]);
		if (d) {
			CHECK(0, "%s: token %zu (%s) differs in its %s", what, i, a->tokens[i].id, d);
			return false;
		}
	}
	for (size_t i = 0; i < a->n_streams; i++) {
		const char *d = stream_diff(&a->streams[i], &b->streams[i]);
		if (d) {
			CHECK(0, "%s: stream %zu differs in its %s", what, i, d);
			return false;
		}
	}
	CHECK(1, "%s", what);
	return true;
}

static bool maps_equal(struct gos_map *a, struct gos_map *b, const char *what)
{
	struct gos_map_view va = {0}, vb = {0};
	gos_map_read_all(a, 0, 0, &va);
	gos_map_read_all(b, 0, 0, &vb);
	bool ok = views_equal(&va, &vb, what);
	struct gos_map_stats sa, sb;
	gos_map_stats(a, &sa);
	gos_map_stats(b, &sb);
	bool st = same_bits(&sa, &sb, sizeof(sa));
	CHECK(st, "%s: stats differ (seq %llu/%llu, evicted %llu/%llu, added %llu/%llu, "
	      "updated %llu/%llu)", what, (unsigned long long)sa.seq, (unsigned long long)sb.seq,
	      (unsigned long long)sa.evicted, (unsigned long long)sb.evicted,
	      (unsigned long long)sa.tokens_added, (unsigned long long)sb.tokens_added,
	      (unsigned long long)sa.tokens_updated, (unsigned long long)sb.tokens_updated);
	CHECK(gos_map_seq(a) == gos_map_seq(b), "%s: gos_map_seq", what);
	gos_map_view_finish(&va);
	gos_map_view_finish(&vb);
	return ok && st;
}

/* ---- tests ---- */

/* Image, read back, compare; then the same events into both, compare again:
 * the layout cursors, the eviction cursor and the seqs carry on alike. */
static void test_round_trip(enum gos_layout_kind layout)
{
	const char *name = layout == GOS_LAYOUT_FLOW ? "flow" : "hilbert";
	struct gos_map_opts o = {.max_tokens = 500, .log_capacity = 1u << 16, .layout = layout};
	struct gos_map *a = gos_map_create(&o);
	uint64_t r = 42 + layout;
	feed(&a, 1, &r, 150, 900);
	struct gos_map_stats st;
	gos_map_stats(a, &st);
	CHECK(st.evicted > 500 && st.tokens_updated > 100 && st.streams == 5,
	      "%s: the workload evicts past max_tokens (%llu), updates (%llu), 5 streams (%llu)", name,
	      (unsigned long long)st.evicted, (unsigned long long)st.tokens_updated,
	      (unsigned long long)st.streams);

	size_t n;
	unsigned char *img = image_of(a, &n);
	char err[256] = "";
	/* the restore takes the image's layout, whatever opts say */
	enum gos_layout_kind other = layout == GOS_LAYOUT_FLOW ? GOS_LAYOUT_HILBERT : GOS_LAYOUT_FLOW;
	struct gos_map_opts ro = {.max_tokens = 500, .log_capacity = 1u << 16, .layout = other};
	struct gos_map *b = read_bytes(img, n, &ro, err, sizeof(err));
	CHECK(b, "%s: read back the image: %s", name, err);
	if (!b) {
		free(img);
		gos_map_destroy(a);
		return;
	}
	maps_equal(a, b, name);
	size_t n2;
	unsigned char *img2 = image_of(b, &n2);
	CHECK(n2 == n && !memcmp(img, img2, n), "%s: the restored map's image is the same bytes", name);
	free(img2);

	uint64_t seq = gos_map_seq(b);
	struct gos_map_view va = {0}, vb = {0};
	CHECK(!gos_map_read_since(b, seq - 1, 0, &vb),
	      "%s: a reader from before the restore is told to read_all", name);
	CHECK(gos_map_read_since(b, seq, 0, &vb) && vb.n_tokens == 0 && vb.n_streams == 0,
	      "%s: a reader at the restore's seq reads nothing new", name);

	struct gos_map *both[2] = {a, b};
	feed(both, 2, &r, 150, 900);
	maps_equal(a, b, name);
	/* the changes after the restore, as the log tells them, agree too */
	CHECK(gos_map_read_since(a, seq, 0, &va) && gos_map_read_since(b, seq, 0, &vb),
	      "%s: both logs hold the changes since the restore", name);
	views_equal(&va, &vb, "changes since the restore");
	gos_map_view_finish(&va);
	gos_map_view_finish(&vb);
	gos_map_destroy(b);
	free(img);

	/* a bigger max_tokens keeps every token and fills the new slots first */
	img = image_of(a, &n);
	b = read_bytes(img, n, &(struct gos_map_opts){.max_tokens = 800}, err, sizeof(err));
	CHECK(b, "%s: read with a bigger max_tokens: %s", name, err);
	if (b) {
		struct gos_map_stats sb;
		gos_map_stats(b, &sb);
		CHECK(sb.live_tokens == 500, "%s: all 500 tokens kept", name);
		feed(&b, 1, &r, 20, 1u << 30);   /* fresh ids only */
		gos_map_stats(b, &sb);
		CHECK(sb.live_tokens > 500 && sb.live_tokens <= 800 && sb.evicted >= st.evicted,
		      "%s: new tokens go to the new slots (%llu live)", name,
		      (unsigned long long)sb.live_tokens);
		gos_map_destroy(b);
	}
	b = read_bytes(img, n, &(struct gos_map_opts){.max_tokens = 499}, err, sizeof(err));
	CHECK(!b && strstr(err, "max_tokens 499"), "%s: max_tokens under the image's count is "
	      "refused: %s", name, err);
	gos_map_destroy(b);
	free(img);
	gos_map_destroy(a);
}

/* The image a gos_map_fork child writes is the map as it was. */
static void test_fork_child(void)
{
	struct gos_map *a = gos_map_create(&(struct gos_map_opts){.max_tokens = 300});
	uint64_t r = 7;
	feed(&a, 1, &r, 60, 500);
	int fd = temp_fd();
	pid_t pid = gos_map_fork(a, NULL);
	if (pid == 0)
		_exit(gos_map_image_write(a, fd) ? 0 : 1);
	CHECK(pid > 0, "gos_map_fork: %s", strerror(errno));
	int status = 0;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0, "the child wrote its image and exited 0 (status %d)", status);
	/* the parent's lock was released: the map goes on */
	feed(&a, 1, &r, 1, 500);
	lseek(fd, 0, SEEK_SET);
	char err[256] = "";
	struct gos_map *b = gos_map_image_read(fd, NULL, err, sizeof(err));
	CHECK(b, "read the child's image: %s", err);
	close(fd);
	if (b) {
		/* replay the same workload into a fresh map up to the image */
		struct gos_map *ref = gos_map_create(&(struct gos_map_opts){.max_tokens = 300});
		uint64_t r2 = 7;
		feed(&ref, 1, &r2, 60, 500);
		maps_equal(ref, b, "fork child's image");
		gos_map_destroy(ref);
		gos_map_destroy(b);
	}
	gos_map_destroy(a);
}

struct writer {
	struct gos_map *map;
	uint64_t seed;
	int calls;
	atomic_int done;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct batch *b = malloc(sizeof(*b));
	uint64_t r = w->seed;
	for (int c = 0; c < w->calls; c++) {
		make_batch(b, &r, 400);
		gos_map_apply(w->map, b->ev, b->n);
		atomic_store(&w->done, c + 1);
	}
	free(b);
	return NULL;
}

/* Forks while another thread applies events: each child's image is the map
 * after some whole apply call, as a replay of the same calls shows. */
static void test_fork_under_writer(void)
{
	enum { CALLS = 3000, FORKS = 4 };
	const struct gos_map_opts o = {.max_tokens = 250, .log_capacity = 4096};
	struct writer w = {.map = gos_map_create(&o), .seed = 99, .calls = CALLS};
	int fds[FORKS];
	pthread_t t;
	pthread_create(&t, NULL, writer_main, &w);
	for (int k = 0; k < FORKS; k++) {
		while (atomic_load(&w.done) < (k + 1) * CALLS / (FORKS + 2))
			usleep(100);
		fds[k] = temp_fd();
		pid_t pid = gos_map_fork(w.map, NULL);
		if (pid == 0)
			_exit(gos_map_image_write(w.map, fds[k]) ? 0 : 1);
		int status = 0;
		CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0, "fork %d: the child wrote its image", k);
	}
	pthread_join(t, NULL);

	struct gos_map *ref = gos_map_create(&o);
	uint64_t r = w.seed;
	static struct batch b;
	int calls = 0;
	for (int k = 0; k < FORKS; k++) {
		char err[256] = "";
		lseek(fds[k], 0, SEEK_SET);
		struct gos_map *img = gos_map_image_read(fds[k], &o, err, sizeof(err));
		close(fds[k]);
		CHECK(img, "fork %d: read its image: %s", k, err);
		if (!img)
			continue;
		uint64_t seq = gos_map_seq(img);
		while (gos_map_seq(ref) < seq && calls < CALLS) {
			make_batch(&b, &r, 400);
			gos_map_apply(ref, b.ev, b.n);
			calls++;
		}
		CHECK(gos_map_seq(ref) == seq, "fork %d: image seq %llu falls between two apply calls",
		      k, (unsigned long long)seq);
		char what[64];
		snprintf(what, sizeof(what), "fork %d's image against the replay", k);
		maps_equal(ref, img, what);
		gos_map_destroy(img);
	}
	gos_map_destroy(ref);
	gos_map_destroy(w.map);
}

static void test_empty_map(void)
{
	struct gos_map *a = gos_map_create(NULL);
	size_t n;
	unsigned char *img = image_of(a, &n);
	char err[256] = "";
	struct gos_map *b = read_bytes(img, n, NULL, err, sizeof(err));
	CHECK(b, "an empty map's image reads back: %s", err);
	if (b) {
		maps_equal(a, b, "empty map");
		uint64_t r = 5;
		struct gos_map *both[2] = {a, b};
		feed(both, 2, &r, 30, 200);
		maps_equal(a, b, "empty map, then the same events");
		gos_map_destroy(b);
	}
	printf("test_map_image: an empty map's image is %zu bytes\n", n);
	free(img);
	gos_map_destroy(a);
}

/* A small image with some of everything. */
static unsigned char *small_image(size_t *n)
{
	struct gos_map *a = gos_map_create(&(struct gos_map_opts){.max_tokens = 12});
	uint64_t r = 3;
	feed(&a, 1, &r, 4, 40);
	unsigned char *img = image_of(a, n);
	gos_map_destroy(a);
	return img;
}

static bool has_message(const char *err)
{
	return err[0] && strlen(err) < 200 && !strchr(err, '\n');
}

/* Every flipped byte (each flipped one of three ways) and every cut is
 * refused with a message. Each read that gets past the header builds a
 * map, which costs some milliseconds: the image is small. */
static void test_corruption(void)
{
	size_t n;
	unsigned char *img = small_image(&n);
	unsigned char *bad = malloc(n + 1);
	const struct gos_map_opts o = {.log_capacity = 64};
	char err[256];
	int accepted = 0, silent = 0, crc_msgs = 0;
	static const unsigned char flips[] = {0x01, 0x80, 0xff};
	for (size_t i = 0; i < n; i++) {
		memcpy(bad, img, n);
		bad[i] ^= flips[i % 3];
		err[0] = '\0';
		struct gos_map *m = read_bytes(bad, n, &o, err, sizeof(err));
		if (m) {
			accepted++;
			gos_map_destroy(m);
		} else if (!has_message(err)) {
			silent++;
		}
		crc_msgs += strstr(err, "checksum mismatch") != NULL;
	}
	CHECK(accepted == 0, "%d of %zu flipped images accepted", accepted, n);
	CHECK(silent == 0, "%d refusals without a one-line message", silent);
	CHECK(crc_msgs > (int)n / 2, "most flips are caught by a block checksum (%d)", crc_msgs);

	int cut_ok = 0, cut_msgs = 0;
	for (size_t len = 0; len < n; len++) {
		err[0] = '\0';
		struct gos_map *m = read_bytes(img, len, &o, err, sizeof(err));
		if (m) {
			cut_ok++;
			gos_map_destroy(m);
		}
		cut_msgs += has_message(err);
	}
	CHECK(cut_ok == 0 && cut_msgs == (int)n, "every cut image is refused with a message "
	      "(%d accepted, %d messages of %zu)", cut_ok, cut_msgs, n);
	memcpy(bad, img, n);
	bad[n] = 0;
	CHECK(!read_bytes(bad, n + 1, &o, err, sizeof(err)) && strstr(err, "after its end"),
	      "a byte after the end block is refused: %s", err);
	read_bytes(img, 20, &o, err, sizeof(err));
	CHECK(strstr(err, "truncated"), "a cut image says so: %s", err);
	memcpy(bad, img, n);
	bad[40] ^= 1;
	read_bytes(bad, n, &o, err, sizeof(err));
	CHECK(!strcmp(err, "checkpoint block 0 (header) checksum mismatch"),
	      "the message names the block: %s", err);
	memcpy(bad, img, n);
	bad[8] = 4;
	read_bytes(bad, n, &o, err, sizeof(err));
	CHECK(strstr(err, "version 4"), "another version is named: %s", err);
	printf("test_map_image: %zu-byte image: %zu flips and %zu cuts refused\n", n, n, n);
	free(bad);
	free(img);
}

/* Damage behind valid checksums (what a bug or a forged file could hold):
 * refused with a message, or a map that works. */
static void test_valid_crc_damage(void)
{
	size_t n;
	unsigned char *img = small_image(&n);
	unsigned char *bad = malloc(n);
	const struct gos_map_opts o = {.max_tokens = 64, .log_capacity = 64};
	uint64_t r = 1234;
	int accepted = 0, refused = 0, silent = 0, broken = 0;
	static const uint32_t edge[] = {0, 1, 2, 5, 23, 24, 25, 0x7fffffff, 0xfffffffe, 0xffffffff};
	for (int round = 0; round < 1000; round++) {
		memcpy(bad, img, n);
		for (uint64_t k = 1 + next(&r) % 3; k > 0; k--) {
			size_t at = 16 + next(&r) % (n - 16);
			if (next(&r) % 2) {
				bad[at] = (unsigned char)next(&r);
			} else if (at + 4 <= n) {
				uint32_t v = edge[next(&r) % 10];
				memcpy(bad + at, &v, 4);
			}
		}
		map_image_fix_crcs(bad, n);
		char err[256] = "";
		struct gos_map *m = read_bytes(bad, n, &o, err, sizeof(err));
		if (!m) {
			refused++;
			silent += !has_message(err);
			continue;
		}
		accepted++;
		/* what was accepted must work: read, apply, image again alike */
		struct gos_map_view v = {0};
		gos_map_read_all(m, 0, 0, &v);
		gos_map_view_finish(&v);
		feed(&m, 1, &r, 3, 60);
		size_t n2;
		unsigned char *img2 = image_of(m, &n2);
		struct gos_map *m2 = read_bytes(img2, n2, &o, err, sizeof(err));
		CHECK(m2, "a damaged but accepted image, after more events, images again: %s", err);
		broken += !m2 || !maps_equal(m, m2, "a damaged but accepted image, after more events");
		gos_map_destroy(m2);
		free(img2);
		gos_map_destroy(m);
	}
	CHECK(silent == 0, "%d refusals without a one-line message", silent);
	CHECK(broken == 0, "%d accepted images made a map that does not image again", broken);
	CHECK(refused > 500, "most damage is refused (%d refused, %d accepted)", refused, accepted);
	printf("test_map_image: damage behind valid checksums: %d refused, %d accepted "
	       "(floats, timestamps, counters)\n", refused, accepted);
	free(bad);
	free(img);
}

static void test_io_errors(void)
{
	struct gos_map *a = gos_map_create(&(struct gos_map_opts){.max_tokens = 50});
	uint64_t r = 11;
	feed(&a, 1, &r, 10, 100);
	int full = open("/dev/full", O_WRONLY);
	if (full >= 0) {
		errno = 0;
		CHECK(!gos_map_image_write(a, full) && errno == ENOSPC,
		      "a full disk fails the write with ENOSPC (%s)", strerror(errno));
		close(full);
	}
	int p[2];
	if (pipe(p) == 0) {
		signal(SIGPIPE, SIG_IGN);
		close(p[0]);
		CHECK(!gos_map_image_write(a, p[1]) && errno == EPIPE,
		      "a closed pipe fails the write with EPIPE");
		close(p[1]);
	}
	char err[256] = "";
	int dir = open(".", O_RDONLY);
	CHECK(!gos_map_image_read(dir, NULL, err, sizeof(err)) && strstr(err, "reading the checkpoint"),
	      "a read error is named: %s", err);
	close(dir);
	int empty = temp_fd();
	CHECK(!gos_map_image_read(empty, NULL, err, sizeof(err)) && strstr(err, "not a gos checkpoint"),
	      "an empty file is no checkpoint: %s", err);
	CHECK(!gos_map_image_read(empty, NULL, NULL, 0), "err may be NULL with errlen 0");
	close(empty);
	gos_map_destroy(a);
}

/* Size and speed, printed, not asserted. */
static void bench(void)
{
#if defined(__SANITIZE_ADDRESS__)
	uint32_t tokens = 100000;
#else
	uint32_t tokens = 1000000;
#endif
	const char *env = getenv("GOS_MAP_IMAGE_BENCH");
	if (env)
		tokens = (uint32_t)strtoul(env, NULL, 10);
	if (!tokens)
		return;
	for (int with_alts = 0; with_alts < 2; with_alts++) {
		uint32_t count = with_alts ? tokens / 10 : tokens;
		uint64_t ta = gos_now_ns();
		struct gos_map *m = gos_map_create(&(struct gos_map_opts){.max_tokens = count});
		enum { B = 4096 };
		static struct gos_event ev[B];
		static char ids[B][16];
		static const struct gos_alt alts[5] = {{" the", -0.1f}, {" a", -1.2f}, {" an", -2.5f},
		                                       {" this", -3.0f}, {" that", -3.5f}};
		for (uint32_t i = 0; i < count; i += B) {
			uint32_t k = count - i < B ? count - i : B;
			for (uint32_t j = 0; j < k; j++) {
				snprintf(ids[j], sizeof(ids[j]), "t%u", i + j);
				ev[j] = (struct gos_event){.type = GOS_EV_TOKEN, .token = {
					.id = ids[j], .text = pieces[(i + j) % 8], .stream = stream_names[j % 4],
					.timestamp = i + j, .confidence = 0.5f, .logprob = -0.7f,
					.n_alts = with_alts ? 5 : 0, .alts = with_alts ? alts : NULL}};
			}
			gos_map_apply(m, ev, k);
		}
		double apply_ms = (gos_now_ns() - ta) / 1e6;
		int fd = temp_fd();
		uint64_t t0 = gos_now_ns();
		bool ok = gos_map_image_write(m, fd);
		uint64_t t1 = gos_now_ns();
		off_t size = lseek(fd, 0, SEEK_CUR);
		lseek(fd, 0, SEEK_SET);
		char err[256] = "";
		struct gos_map *b = gos_map_image_read(fd, NULL, err, sizeof(err));
		uint64_t t2 = gos_now_ns();
		CHECK(ok && b, "bench image round trip: %s", err);
		if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
			perror("ftruncate");
		uint64_t t3 = gos_now_ns();
		pid_t pid = gos_map_fork(m, NULL);
		if (pid == 0)
			_exit(gos_map_image_write(m, fd) ? 0 : 1);
		uint64_t t4 = gos_now_ns();
		int status = 0;
		waitpid(pid, &status, 0);
		uint64_t t5 = gos_now_ns();
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bench fork child wrote");
		printf("test_map_image: %u tokens%s: %.1f bytes/token (%.1f MB), write %.0f ms, "
		       "read %.0f ms (applying the events took %.0f ms), fork %.1f ms (the parent's lock "
		       "hold) + child write %.0f ms\n",
		       count, with_alts ? " with 5 top_logprobs each" : "", (double)size / count,
		       (double)size / 1e6, (t1 - t0) / 1e6, (t2 - t1) / 1e6, apply_ms, (t4 - t3) / 1e6,
		       (t5 - t4) / 1e6);
		close(fd);
		gos_map_destroy(b);
		gos_map_destroy(m);
	}
}

/* Small images for the fuzz target's corpus. */
static void write_seeds(const char *dir)
{
	struct {
		const char *name;
		uint64_t max, seed;
		int calls;
		enum gos_layout_kind layout;
	} seeds[] = {
		{"empty", 0, 0, 0, GOS_LAYOUT_FLOW},
		{"flow_small", 8, 1, 1, GOS_LAYOUT_FLOW},
		{"flow_evicted", 16, 2, 3, GOS_LAYOUT_FLOW},
		{"hilbert_evicted", 16, 3, 3, GOS_LAYOUT_HILBERT},
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		struct gos_map *m = gos_map_create(&(struct gos_map_opts){
			.max_tokens = seeds[i].max, .layout = seeds[i].layout});
		uint64_t r = seeds[i].seed;
		feed(&m, 1, &r, seeds[i].calls, 30);
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, seeds[i].name);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		CHECK(fd >= 0 && gos_map_image_write(m, fd), "seed %s", path);
		if (fd >= 0)
			close(fd);
		gos_map_destroy(m);
	}
}

static struct gos_map *read_seed(const char *name, unsigned *version, char *err, size_t errlen)
{
	char dir[4096], path[4200];
	snprintf(dir, sizeof(dir), "%s", __FILE__);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/fuzz/map_image_corpus/%s", dir, name);
	int fd = open(path, O_RDONLY);
	unsigned char pre[16] = {0};
	*version = fd >= 0 && pread(fd, pre, 16, 0) == 16 ? pre[8] : 0;
	struct gos_map *m = fd >= 0 ? gos_map_image_read(fd, &(struct gos_map_opts){0}, err, errlen)
	                            : NULL;
	if (fd >= 0)
		close(fd);
	return m;
}

/* Images written before tokens knew their index and gap (version 2, the
 * committed *_v2 seeds) still read: each live token's index in arrival
 * order, counting the evicted ones before it; no gaps. */
static void test_version_2(void)
{
	static const char *const seeds[] = {"flow_small_v2", "flow_evicted_v2", "hilbert_evicted_v2"};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char err[256] = "";
		unsigned version;
		struct gos_map *m = read_seed(seeds[i], &version, err, sizeof(err));
		CHECK(version == 2 && m, "a version 2 image (%s) still reads: %s", seeds[i], err);
		if (!m)
			continue;
		struct gos_map_view v = {0};
		gos_map_read_all(m, 0, 0, &v);
		/* per stream: its live tokens in arrival order hold the last indexes */
		bool ok = v.n_tokens > 0, gaps = true;
		for (size_t s = 0; s < v.n_streams; s++) {
			uint64_t n = v.streams[s].n_tokens, live = 0, sum = 0;
			uint32_t lo = UINT32_MAX, hi = 0;
			for (size_t k = 0; k < v.n_tokens; k++) {
				const struct gos_token *t = &v.tokens[k];
				if (t->stream != v.streams[s].index)
					continue;
				live++;
				sum += t->index;
				lo = t->index < lo ? t->index : lo;
				hi = t->index > hi ? t->index : hi;
				gaps &= isnan(t->gap_ms);
			}
			if (live)
				ok &= hi == n - 1 && lo == n - live && sum == (lo + hi) * live / 2;
		}
		CHECK(ok && gaps, "%s: each stream's live tokens hold its last indexes, no gaps",
		      seeds[i]);
		gos_map_view_finish(&v);
		gos_map_destroy(m);
	}
}

/* Images written before the streams' analytics (version 1: the committed
 * fuzz seeds) still read, their streams with no analytics. */
static void test_version_1(void)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", __FILE__);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	static const char *const seeds[] = {"flow_small", "flow_evicted"};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char path[4200], err[256] = "";
		snprintf(path, sizeof(path), "%s/fuzz/map_image_corpus/%s", dir, seeds[i]);
		int fd = open(path, O_RDONLY);
		unsigned char pre[16] = {0};
		bool v1 = fd >= 0 && pread(fd, pre, 16, 0) == 16 && pre[8] == 1;
		struct gos_map *m = fd >= 0 ? gos_map_image_read(fd, &(struct gos_map_opts){0}, err,
		                                                 sizeof(err)) : NULL;
		CHECK(v1 && m, "a version 1 image (%s) still reads: %s", seeds[i], err);
		if (m) {
			struct gos_map_view v = {0};
			gos_map_read_all(m, 0, 0, &v);
			bool plain = v.n_streams > 0;
			for (size_t k = 0; k < v.n_streams; k++)
				plain &= isnan(v.streams[k].ttft_ms) && !v.streams[k].model[0] &&
				         v.streams[k].stats.n_conf == 0;
			CHECK(plain, "its streams come with no analytics (%zu streams)", v.n_streams);
			gos_map_view_finish(&v);
			gos_map_destroy(m);
		}
		if (fd >= 0)
			close(fd);
	}
}

int main(void)
{
	test_version_1();
	test_version_2();
	test_round_trip(GOS_LAYOUT_FLOW);
	test_round_trip(GOS_LAYOUT_HILBERT);
	test_fork_child();
	test_fork_under_writer();
	test_empty_map();
	test_corruption();
	test_valid_crc_damage();
	test_io_errors();
	const char *seeds = getenv("GOS_MAP_IMAGE_SEEDS");
	if (seeds)
		write_seeds(seeds);
	bench();
	return gos_test_report("test_map_image");
}
