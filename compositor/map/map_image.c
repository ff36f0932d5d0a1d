/* Checkpoint images of the map (docs/journal.md, "Checkpoints").
 *
 * The file, every integer and float little-endian and fixed-width:
 *   prefix  "GOSCKPT1", u32 version (3; 1 and 2 are read too), u32 flags (0)
 *   blocks  u32 type, u32 number (0, 1, 2, ...), u64 payload bytes, the
 *           payload, u32 crc32c of type..payload:
 *     HEADER   block 0: the map's scalars and stats (struct header below)
 *     STREAMS  streams in index order, streams_per_block a block:
 *              u32 first, u32 count, then per stream u32 name_len,
 *              u32 state_len, i64 tokens_processed, i64 total_tokens,
 *              f64 elapsed_ms, u64 n_tokens, i64 newest_slot, u64 seq,
 *              f32 cursor_x, f32 cursor_y, then (version 2) f32 page_x,
 *              f32 page_y, u32 page_flags (the flow layout's page), f64 ttft_ms,
 *              u32 finish_len, u32 message_len, u32 model_len, the
 *              gos_stream_stats (u64 n_conf, f64 conf_sum, f32 conf_min,
 *              u64 n_logprob, f64 logprob_sum, u64 n_entropy, f64
 *              entropy_sum, f64 first_ts, f64 last_ts, u32 hist[10]), then
 *              (version 3) i64 diverge_at, then the name, the state (and
 *              from version 2 finish_reason, message, model)
 *     SLOTS    slots 0..used-1 in order, slots_per_block a block: u32 first,
 *              u32 count, the arrays f64 ts, u64 seq, f32 x, y, w, conf,
 *              logprob, u32 stream, then (version 3) u32 index, f32 gap
 *              (count each), then per slot u32 id_len
 *              (UINT32_MAX: an empty slot, nothing follows), u32 text_len,
 *              u32 n_alts, the id, the text, per alt u32 len, f32 logprob,
 *              the string
 *     END      u64 file offset of this block, u32 blocks before it, u32
 *              crc32c over their crcs (each as 4 bytes): a file cut short
 *              after any block, or with blocks moved, does not end right
 * Strings carry no NUL and may hold none. Images before version 3 give
 * each live token its index in arrival order (the slots from the eviction
 * cursor on) and no gap.
 *
 * The writer runs in a fork()ed child (gos_map_fork): write(2) from one
 * static buffer, each block's size counted in a pass before it is written.
 * The reader trusts nothing: it checks every crc before it parses a block
 * and every count, length and index while it parses, and grows its memory
 * only as the file's bytes actually arrive. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_crc32c.h"
#include "gos_map_internal.h"
#include "gos_time.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "map_image.c copies the map's arrays as they lie in memory: little-endian hosts only"
#endif

#define MAGIC          "GOSCKPT1"
#define VERSION        3u
#define VERSION_OLD    1u           /* oldest read: streams without analytics, version 2
                                     * slots without index and gap */
#define PREFIX_BYTES   16u
#define FRAME_BYTES    16u          /* type, number, payload bytes */
#define PER_BLOCK      65536u       /* streams or slots a block */
#define MAX_PER_BLOCK  (1u << 24)   /* what a reader accepts */
#define STREAM_BYTES   64u          /* a stream's fixed fields (version 1) */
#define STREAM_BYTES2  (STREAM_BYTES + 20u + 108u + 12u)   /* version 2 */
#define STREAM_BYTES3  (STREAM_BYTES2 + 8u)                   /* version 3 */
#define SLOT_BYTES2    40u          /* a slot's array entries (versions 1, 2) */
#define SLOT_BYTES     48u          /* version 3 */
#define EMPTY_SLOT     UINT32_MAX
#define WBUF_BYTES     (1u << 20)
#define MAX_PAGES      (1u << 26)   /* flow layout pages a reader accepts */

enum block_type { BLK_HEADER = 1, BLK_STREAMS, BLK_SLOTS, BLK_END };

static const char *const block_names[] = {"?", "header", "streams", "slots", "end"};

/* The HEADER payload, field by field as written; then u64 applied[n_applied]. */
struct header {
	uint64_t seq, max_tokens;
	uint32_t used, evict_cursor;
	uint64_t live;
	uint32_t layout, n_streams;
	uint32_t slots_per_block, streams_per_block;
	uint64_t evicted, tokens_added, tokens_updated;
	uint32_t n_applied, flow_pages;   /* version 1: 0 (reserved) */
};
#define HEADER_BYTES 80u
_Static_assert(sizeof(struct header) == HEADER_BYTES, "struct header has no padding");

/* ---- writer: no malloc, no stdio, no lock ---- */

static unsigned char wbuf[WBUF_BYTES];

struct wr {
	int fd;
	bool failed;
	size_t n;            /* bytes in wbuf */
	size_t crc_from;     /* where the open block starts in wbuf; SIZE_MAX: none */
	uint32_t crc;        /* the open block's crc over what left wbuf */
	uint64_t off;        /* bytes flushed */
	uint64_t block_end;  /* file offset the open block's payload ends at */
	uint32_t blocks, chain;
};

static void w_flush(struct wr *w)
{
	if (w->crc_from != SIZE_MAX) {
		w->crc = gos_crc32c(w->crc, wbuf + w->crc_from, w->n - w->crc_from);
		w->crc_from = 0;
	}
	const unsigned char *p = wbuf;
	size_t n = w->n;
	while (n && !w->failed) {
		ssize_t r = write(w->fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			w->failed = true;
			break;
		}
		p += r;
		n -= (size_t)r;
	}
	w->off += w->n;
	w->n = 0;
}

static void w_put(struct wr *w, const void *p, size_t n)
{
	const unsigned char *s = p;
	while (n && !w->failed) {
		if (w->n == WBUF_BYTES)
			w_flush(w);
		size_t k = WBUF_BYTES - w->n;
		if (k > n)
			k = n;
		memcpy(wbuf + w->n, s, k);
		w->n += k;
		s += k;
		n -= k;
	}
}

static void w_u32(struct wr *w, uint32_t v)
{
	w_put(w, &v, 4);
}

static void w_u64(struct wr *w, uint64_t v)
{
	w_put(w, &v, 8);
}

static void w_begin(struct wr *w, enum block_type type, uint64_t len)
{
	if (w->n == WBUF_BYTES)
		w_flush(w);
	w->crc = 0;
	w->crc_from = w->n;
	w_u32(w, type);
	w_u32(w, w->blocks);
	w_u64(w, len);
	w->block_end = w->off + w->n + len;
}

static void w_end(struct wr *w)
{
	/* the size pass and the write pass must agree, or the file lies */
	if (!w->failed && w->off + w->n != w->block_end)
		abort();
	w->crc = gos_crc32c(w->crc, wbuf + w->crc_from, w->n - w->crc_from);
	w->crc_from = SIZE_MAX;
	uint32_t c = w->crc;
	w_u32(w, c);
	w->chain = gos_crc32c(w->chain, &c, 4);
	w->blocks++;
}

static void write_header(struct wr *w, const struct gos_map *m)
{
	struct header h = {
		.seq = m->cur_seq, .max_tokens = m->max_tokens,
		.used = m->used, .evict_cursor = m->evict_cursor, .live = m->live,
		.layout = (uint32_t)m->layout, .n_streams = m->n_streams,
		.slots_per_block = PER_BLOCK, .streams_per_block = PER_BLOCK,
		.evicted = m->stats.evicted, .tokens_added = m->stats.tokens_added,
		.tokens_updated = m->stats.tokens_updated, .n_applied = GOS_EV_COUNT_,
		.flow_pages = m->pages.n,
	};
	w_begin(w, BLK_HEADER, HEADER_BYTES + 8u * GOS_EV_COUNT_);
	w_put(w, &h, sizeof(h));
	w_put(w, m->stats.applied, 8u * GOS_EV_COUNT_);
	w_end(w);
}

static void write_streams(struct wr *w, const struct gos_map *m, uint32_t first, uint32_t count)
{
	uint64_t len = 8;
	for (uint32_t i = first; i < first + count; i++) {
		const struct stream_rec *s = &m->streams[i];
		len += STREAM_BYTES3 + strlen(s->name) + strlen(s->state) + strlen(s->finish_reason) +
		       strlen(s->message) + strlen(s->model);
	}
	w_begin(w, BLK_STREAMS, len);
	w_u32(w, first);
	w_u32(w, count);
	for (uint32_t i = first; i < first + count; i++) {
		const struct stream_rec *s = &m->streams[i];
		uint32_t nl = (uint32_t)strlen(s->name), sl = (uint32_t)strlen(s->state);
		w_u32(w, nl);
		w_u32(w, sl);
		w_put(w, &s->tokens_processed, 8);
		w_put(w, &s->total_tokens, 8);
		w_put(w, &s->elapsed_ms, 8);
		w_put(w, &s->n_tokens, 8);
		w_put(w, &s->newest_slot, 8);
		w_put(w, &s->seq, 8);
		w_put(w, &s->cursor_x, 4);
		w_put(w, &s->cursor_y, 4);
		w_put(w, &s->page_x, 4);
		w_put(w, &s->page_y, 4);
		w_u32(w, s->page_flags);
		uint32_t fl = (uint32_t)strlen(s->finish_reason), ml = (uint32_t)strlen(s->message),
		         dl = (uint32_t)strlen(s->model);
		w_put(w, &s->ttft_ms, 8);
		w_u32(w, fl);
		w_u32(w, ml);
		w_u32(w, dl);
		const struct gos_stream_stats *t = &s->stats;
		w_put(w, &t->n_conf, 8);
		w_put(w, &t->conf_sum, 8);
		w_put(w, &t->conf_min, 4);
		w_put(w, &t->n_logprob, 8);
		w_put(w, &t->logprob_sum, 8);
		w_put(w, &t->n_entropy, 8);
		w_put(w, &t->entropy_sum, 8);
		w_put(w, &t->first_ts, 8);
		w_put(w, &t->last_ts, 8);
		w_put(w, t->hist, sizeof(t->hist));
		w_put(w, &s->diverge_at, 8);
		w_put(w, s->name, nl);
		w_put(w, s->state, sl);
		w_put(w, s->finish_reason, fl);
		w_put(w, s->message, ml);
		w_put(w, s->model, dl);
	}
	w_end(w);
}

static uint64_t slot_strings_bytes(const struct blob *b)
{
	if (!b)
		return 4;
	uint64_t n = 12 + (uint64_t)b->id_len + b->text_len;
	if (b->n_alts) {
		const struct gos_alt *a = blob_alts(b);
		for (uint32_t i = 0; i < b->n_alts; i++)
			n += 8 + strlen(a[i].token);
	}
	return n;
}

static void write_slots(struct wr *w, const struct gos_map *m, uint32_t first, uint32_t count)
{
	uint64_t len = 8 + (uint64_t)count * SLOT_BYTES;
	for (uint32_t i = first; i < first + count; i++)
		len += slot_strings_bytes(m->blob[i]);
	w_begin(w, BLK_SLOTS, len);
	w_u32(w, first);
	w_u32(w, count);
	w_put(w, m->ts + first, (size_t)count * 8);
	w_put(w, m->seq + first, (size_t)count * 8);
	w_put(w, m->x + first, (size_t)count * 4);
	w_put(w, m->y + first, (size_t)count * 4);
	w_put(w, m->w + first, (size_t)count * 4);
	w_put(w, m->conf + first, (size_t)count * 4);
	w_put(w, m->logprob + first, (size_t)count * 4);
	w_put(w, m->stream + first, (size_t)count * 4);
	w_put(w, m->index + first, (size_t)count * 4);
	w_put(w, m->gap + first, (size_t)count * 4);
	for (uint32_t i = first; i < first + count; i++) {
		const struct blob *b = m->blob[i];
		if (!b) {
			w_u32(w, EMPTY_SLOT);
			continue;
		}
		w_u32(w, b->id_len);
		w_u32(w, b->text_len);
		w_u32(w, b->n_alts);
		w_put(w, blob_id(b), b->id_len);
		w_put(w, blob_text(b), b->text_len);
		const struct gos_alt *a = b->n_alts ? blob_alts(b) : NULL;
		for (uint32_t k = 0; k < b->n_alts; k++) {
			uint32_t al = (uint32_t)strlen(a[k].token);
			w_u32(w, al);
			w_put(w, &a[k].logprob, 4);
			w_put(w, a[k].token, al);
		}
	}
	w_end(w);
}

bool gos_map_image_write(struct gos_map *m, int fd)
{
	struct wr w = {.fd = fd, .crc_from = SIZE_MAX};
	w_put(&w, MAGIC, 8);
	w_u32(&w, VERSION);
	w_u32(&w, 0);
	write_header(&w, m);
	for (uint64_t i = 0; i < m->n_streams; i += PER_BLOCK)
		write_streams(&w, m, (uint32_t)i, (uint32_t)(m->n_streams - i < PER_BLOCK ?
		                                             m->n_streams - i : PER_BLOCK));
	for (uint64_t i = 0; i < m->used; i += PER_BLOCK)
		write_slots(&w, m, (uint32_t)i, (uint32_t)(m->used - i < PER_BLOCK ?
		                                           m->used - i : PER_BLOCK));
	uint64_t end_at = w.off + w.n;
	uint32_t blocks = w.blocks, chain = w.chain;
	w_begin(&w, BLK_END, 16);
	w_u64(&w, end_at);
	w_u32(&w, blocks);
	w_u32(&w, chain);
	w_end(&w);
	w_flush(&w);
	return !w.failed;
}

pid_t gos_map_fork(struct gos_map *m, uint64_t *seq)
{
	pthread_mutex_lock(&m->lock);
	if (seq)
		*seq = m->cur_seq;
	pid_t pid = fork();
	if (pid != 0) {
		int e = errno;
		pthread_mutex_unlock(&m->lock);
		errno = e;
	}
	return pid;
}

/* ---- reader ---- */

struct rd {
	int fd;
	char *err;
	size_t errlen;
	bool failed;
	unsigned char *buf;       /* the current block's payload */
	size_t cap;
	uint64_t off;             /* file offset of the next block */
	uint32_t blocks, chain;   /* blocks read, crc32c over their crcs */
	struct gos_alt *alts;     /* scratch for a slot's alternatives */
	size_t cap_alts;
	char *strs;               /* ... and their NUL-terminated strings */
	size_t cap_strs;
	uint32_t version;         /* the image's */
};

__attribute__((format(printf, 2, 3)))
static bool fail(struct rd *r, const char *fmt, ...)
{
	if (!r->failed && r->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	r->failed = true;
	return false;
}

/* Reads up to n bytes; fewer only at the end of the file. SIZE_MAX: an error
 * (reported). */
static size_t rd_raw(struct rd *r, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(r->fd, (char *)p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			fail(r, "reading the checkpoint failed at byte %llu: %s",
			     (unsigned long long)(r->off + got), strerror(errno));
			return SIZE_MAX;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return got;
}

static const char *type_name(uint32_t type)
{
	return type >= BLK_HEADER && type <= BLK_END ? block_names[type] : "unknown";
}

/* Reads the next block, which must be of `type`, into r->buf and checks its
 * crc. *len: its payload bytes. */
static bool rd_block(struct rd *r, enum block_type type, size_t *len)
{
	uint32_t no = r->blocks;
	const char *name = block_names[type];
	unsigned char fr[FRAME_BYTES];
	size_t got = rd_raw(r, fr, sizeof(fr));
	if (got == SIZE_MAX)
		return false;
	if (got == 0)
		return fail(r, "checkpoint truncated: block %u (%s) is missing", no, name);
	if (got < sizeof(fr))
		return fail(r, "checkpoint truncated in block %u (%s)", no, name);
	uint32_t t, n;
	uint64_t plen;
	memcpy(&t, fr, 4);
	memcpy(&n, fr + 4, 4);
	memcpy(&plen, fr + 8, 8);
	if (t != type)
		return fail(r, "checkpoint block %u is of type %u (%s) where %s was expected",
		            no, t, type_name(t), name);
	if (n != no)
		return fail(r, "checkpoint block %u (%s) is numbered %u", no, name, n);
	if (plen > SIZE_MAX - 4)
		return fail(r, "checkpoint block %u (%s) claims %llu bytes", no, name,
		            (unsigned long long)plen);
	/* Memory grows with the bytes that arrive, not with what the frame claims. */
	size_t want = (size_t)plen;
	if (!r->buf) {
		r->buf = malloc(4096);
		if (!r->buf)
			return fail(r, "out of memory reading checkpoint block %u (%s)", no, name);
		r->cap = 4096;
	}
	got = 0;
	while (got < want) {
		if (got == r->cap) {
			size_t ncap = r->cap ? r->cap * 2 : 65536;
			if (ncap > want)
				ncap = want;
			unsigned char *nb = realloc(r->buf, ncap);
			if (!nb)
				return fail(r, "out of memory reading checkpoint block %u (%s)", no, name);
			r->buf = nb;
			r->cap = ncap;
		}
		size_t part = (r->cap < want ? r->cap : want) - got;
		size_t k = rd_raw(r, r->buf + got, part);
		if (k == SIZE_MAX)
			return false;
		got += k;
		if (k < part)
			return fail(r, "checkpoint truncated in block %u (%s): %zu of %zu bytes",
			            no, name, got, want);
	}
	unsigned char cb[4];
	got = rd_raw(r, cb, 4);
	if (got == SIZE_MAX)
		return false;
	if (got < 4)
		return fail(r, "checkpoint truncated in block %u (%s): its checksum is missing", no, name);
	uint32_t want_crc, crc = gos_crc32c(gos_crc32c(0, fr, sizeof(fr)), r->buf, want);
	memcpy(&want_crc, cb, 4);
	if (crc != want_crc)
		return fail(r, "checkpoint block %u (%s) checksum mismatch", no, name);
	r->chain = gos_crc32c(r->chain, cb, 4);
	r->blocks++;
	r->off += FRAME_BYTES + want + 4;
	*len = want;
	return true;
}

/* A bounds-checked walk through a payload. */
struct cur {
	const unsigned char *p, *end;
};

static const unsigned char *take(struct cur *c, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return NULL;
	const unsigned char *p = c->p;
	c->p += n;
	return p;
}

static bool get32(struct cur *c, void *out)
{
	const unsigned char *p = take(c, 4);
	if (p)
		memcpy(out, p, 4);
	return p != NULL;
}

static bool get64(struct cur *c, void *out)
{
	const unsigned char *p = take(c, 8);
	if (p)
		memcpy(out, p, 8);
	return p != NULL;
}

/* A string of n bytes with no NUL in it. */
static const char *get_str(struct cur *c, uint32_t n)
{
	const unsigned char *p = take(c, n);
	if (p && memchr(p, 0, n))
		return NULL;
	return (const char *)p;
}

static bool rd_header(struct rd *r, struct header *h, uint64_t applied[GOS_EV_COUNT_])
{
	size_t len;
	if (!rd_block(r, BLK_HEADER, &len))
		return false;
	if (len < HEADER_BYTES)
		return fail(r, "checkpoint header is %zu bytes, too short", len);
	memcpy(h, r->buf, HEADER_BYTES);
	if (h->n_applied > GOS_EV_COUNT_ || len != HEADER_BYTES + 8u * h->n_applied)
		return fail(r, "checkpoint header counts %u event types in %zu bytes; this build knows %d",
		            h->n_applied, len, GOS_EV_COUNT_);
	memset(applied, 0, 8u * GOS_EV_COUNT_);
	memcpy(applied, r->buf + HEADER_BYTES, 8u * h->n_applied);
	if (r->version < 2 && h->flow_pages)
		return fail(r, "checkpoint header has unknown flags %#x", h->flow_pages);
	if (h->flow_pages > MAX_PAGES)
		return fail(r, "checkpoint header counts %u layout pages, more than %u", h->flow_pages,
		            MAX_PAGES);
	if (h->max_tokens == 0 || h->max_tokens > UINT32_MAX - 1)
		return fail(r, "checkpoint header: max_tokens %llu is out of range",
		            (unsigned long long)h->max_tokens);
	if (h->used > h->max_tokens)
		return fail(r, "checkpoint header: %u slots used of max_tokens %llu", h->used,
		            (unsigned long long)h->max_tokens);
	/* the cursor moves once used reaches max_tokens; an image read into a
	 * bigger max_tokens keeps it while its new slots fill */
	if (h->evict_cursor && h->evict_cursor >= h->used)
		return fail(r, "checkpoint header: eviction cursor %u with %u of %llu slots used",
		            h->evict_cursor, h->used, (unsigned long long)h->max_tokens);
	if (h->live > h->used)
		return fail(r, "checkpoint header: %llu live tokens in %u slots",
		            (unsigned long long)h->live, h->used);
	if (h->layout > GOS_LAYOUT_HILBERT)
		return fail(r, "checkpoint header: unknown layout %u", h->layout);
	if (h->slots_per_block == 0 || h->slots_per_block > MAX_PER_BLOCK ||
	    h->streams_per_block == 0 || h->streams_per_block > MAX_PER_BLOCK)
		return fail(r, "checkpoint header: %u slots and %u streams a block is out of range",
		            h->slots_per_block, h->streams_per_block);
	return true;
}

static bool rd_streams(struct rd *r, struct gos_map *m, const struct header *h, uint32_t first)
{
	uint32_t no = r->blocks;
	size_t len;
	if (!rd_block(r, BLK_STREAMS, &len))
		return false;
	struct cur c = {r->buf, r->buf + len};
	uint32_t bfirst, count, want = h->n_streams - first;
	if (want > h->streams_per_block)
		want = h->streams_per_block;
	if (!get32(&c, &bfirst) || !get32(&c, &count) || bfirst != first || count != want)
		return fail(r, "checkpoint block %u (streams) does not hold streams %u..%u", no,
		            first, first + want - 1);
	for (uint32_t i = first; i < first + count; i++) {
		uint32_t nl, sl;
		int64_t tp, tt, newest;
		double ms;
		uint64_t nt, seq;
		float cx, cy;
		if (!get32(&c, &nl) || !get32(&c, &sl) || !get64(&c, &tp) || !get64(&c, &tt) ||
		    !get64(&c, &ms) || !get64(&c, &nt) || !get64(&c, &newest) || !get64(&c, &seq) ||
		    !get32(&c, &cx) || !get32(&c, &cy))
			return fail(r, "checkpoint block %u (streams) ends inside stream %u", no, i);
		/* version 2: the generation's analytics */
		double ttft = NAN;
		uint32_t fl = 0, ml = 0, dl = 0, pflags;
		float px, py;
		struct gos_stream_stats st = {.conf_min = NAN, .first_ts = NAN, .last_ts = NAN};
		int64_t diverge_at = -1;
		if (r->version < 2) {
			/* the old layout's column: it goes on down it (gos_map.h) */
			px = (float)i * (GOS_FLOW_COLUMN_W + GOS_FLOW_COLUMN_GAP);
			py = 0;
			pflags = STREAM_PAGE_HAS | STREAM_PAGE_COLUMN;
		} else {
			bool ok = get32(&c, &px) && get32(&c, &py) && get32(&c, &pflags) &&
			          get64(&c, &ttft) && get32(&c, &fl) && get32(&c, &ml) && get32(&c, &dl) &&
			          get64(&c, &st.n_conf) && get64(&c, &st.conf_sum) &&
			          get32(&c, &st.conf_min) && get64(&c, &st.n_logprob) &&
			          get64(&c, &st.logprob_sum) && get64(&c, &st.n_entropy) &&
			          get64(&c, &st.entropy_sum) && get64(&c, &st.first_ts) &&
			          get64(&c, &st.last_ts);
			for (int k = 0; ok && k < 10; k++)
				ok = get32(&c, &st.hist[k]);
			if (ok && r->version >= 3)
				ok = get64(&c, &diverge_at);
			if (!ok)
				return fail(r, "checkpoint block %u (streams) ends inside stream %u", no, i);
		}
		const char *name = get_str(&c, nl), *state = name ? get_str(&c, sl) : NULL;
		if (!name || !state)
			return fail(r, "checkpoint block %u (streams): stream %u's name or state is "
			            "cut short or holds a NUL", no, i);
		const char *finish = get_str(&c, fl), *message = finish ? get_str(&c, ml) : NULL,
		           *model = message ? get_str(&c, dl) : NULL;
		if (!model)
			return fail(r, "checkpoint block %u (streams): stream %u's finish reason, message "
			            "or model is cut short or holds a NUL", no, i);
		if (seq > h->seq)
			return fail(r, "checkpoint block %u (streams): stream %u has seq %llu, past the "
			            "image's %llu", no, i, (unsigned long long)seq,
			            (unsigned long long)h->seq);
		if (newest < -1 || newest >= (int64_t)h->used)
			return fail(r, "checkpoint block %u (streams): stream %u's newest slot %lld is "
			            "out of range", no, i, (long long)newest);
		if (nt > (1ull << 53))
			return fail(r, "checkpoint block %u (streams): stream %u counts %llu tokens, past "
			            "2^53", no, i, (unsigned long long)nt);
		if (diverge_at < -1 || (diverge_at >= 0 && (uint64_t)diverge_at >= nt))
			return fail(r, "checkpoint block %u (streams): stream %u diverges at index %lld "
			            "of its %llu tokens", no, i, (long long)diverge_at,
			            (unsigned long long)nt);
		if (!gos_map_restore_stream(m, name, nl, state, sl))
			return fail(r, "checkpoint block %u (streams): stream %u repeats another's name",
			            no, i);
		struct stream_rec *s = &m->streams[i];
		s->tokens_processed = tp;
		s->total_tokens = tt;
		s->elapsed_ms = ms;
		s->n_tokens = nt;
		s->newest_slot = newest;
		s->seq = seq;
		s->cursor_x = cx;
		s->cursor_y = cy;
		s->ttft_ms = ttft;
		s->stats = st;
		s->diverge_at = diverge_at;
		s->page_x = px;
		s->page_y = py;
		s->page_flags = pflags & (STREAM_PAGE_HAS | STREAM_PAGE_COLUMN);
		if (s->page_flags & STREAM_PAGE_COLUMN)
			m->pages.origin_x = (float)(i + 1) * (GOS_FLOW_COLUMN_W + GOS_FLOW_COLUMN_GAP);
		gos_map_stream_texts(s, finish, fl, message, ml, model, dl);
	}
	if (c.p != c.end)
		return fail(r, "checkpoint block %u (streams) has %zu bytes left over", no,
		            (size_t)(c.end - c.p));
	return true;
}

/* A slot's alternatives, copied with NULs into r's scratch for blob_make. */
static bool rd_alts(struct rd *r, struct cur *c, uint32_t n_alts)
{
	/* each alt takes 8 bytes at least: bounds n_alts by the block */
	if ((size_t)(c->end - c->p) / 8 < n_alts)
		return false;
	if (n_alts > r->cap_alts) {
		struct gos_alt *na = realloc(r->alts, n_alts * sizeof(*na));
		if (!na)
			return false;
		r->alts = na;
		r->cap_alts = n_alts;
	}
	const unsigned char *start = c->p;
	size_t total = 0;
	for (uint32_t k = 0; k < n_alts; k++) {
		uint32_t al;
		float lp;
		if (!get32(c, &al) || !get32(c, &lp) || !get_str(c, al))
			return false;
		total += (size_t)al + 1;
	}
	if (total > r->cap_strs) {
		char *ns = realloc(r->strs, total);
		if (!ns)
			return false;
		r->strs = ns;
		r->cap_strs = total;
	}
	/* second walk: copy, now that every length is known good */
	struct cur again = {start, c->p};
	char *s = r->strs;
	for (uint32_t k = 0; k < n_alts; k++) {
		uint32_t al = 0;
		float lp = 0;
		get32(&again, &al);
		get32(&again, &lp);
		memcpy(s, take(&again, al), al);
		s[al] = '\0';
		r->alts[k] = (struct gos_alt){.token = s, .logprob = lp};
		s += al + 1;
	}
	return true;
}

static bool rd_slots(struct rd *r, struct gos_map *m, const struct header *h, uint32_t first,
                     double now, uint64_t *live)
{
	uint32_t no = r->blocks;
	size_t len;
	if (!rd_block(r, BLK_SLOTS, &len))
		return false;
	struct cur c = {r->buf, r->buf + len};
	uint32_t bfirst, count, want = h->used - first;
	if (want > h->slots_per_block)
		want = h->slots_per_block;
	if (!get32(&c, &bfirst) || !get32(&c, &count) || bfirst != first || count != want)
		return fail(r, "checkpoint block %u (slots) does not hold slots %u..%u", no,
		            first, first + want - 1);
	size_t slot_bytes = r->version >= 3 ? SLOT_BYTES : SLOT_BYTES2;
	const unsigned char *arr = take(&c, (size_t)count * slot_bytes);
	if (!arr)
		return fail(r, "checkpoint block %u (slots) is too short for its %u slots", no, count);
	gos_map_restore_slots(m, first + count);
	size_t n4 = (size_t)count * 4, n8 = (size_t)count * 8;
	memcpy(m->ts + first, arr, n8);
	memcpy(m->seq + first, arr + n8, n8);
	memcpy(m->x + first, arr + 2 * n8, n4);
	memcpy(m->y + first, arr + 2 * n8 + n4, n4);
	memcpy(m->w + first, arr + 2 * n8 + 2 * n4, n4);
	memcpy(m->conf + first, arr + 2 * n8 + 3 * n4, n4);
	memcpy(m->logprob + first, arr + 2 * n8 + 4 * n4, n4);
	memcpy(m->stream + first, arr + 2 * n8 + 5 * n4, n4);
	if (r->version >= 3) {
		memcpy(m->index + first, arr + 2 * n8 + 6 * n4, n4);
		memcpy(m->gap + first, arr + 2 * n8 + 7 * n4, n4);
	}
	for (uint32_t i = first; i < first + count; i++) {
		m->arrived[i] = now;
		if (r->version < 3)
			m->gap[i] = NAN;
		if (m->stream[i] >= m->n_streams)
			return fail(r, "checkpoint block %u (slots): slot %u names stream %u of %u", no,
			            i, m->stream[i], m->n_streams);
		if (m->seq[i] > h->seq)
			return fail(r, "checkpoint block %u (slots): slot %u has seq %llu, past the "
			            "image's %llu", no, i, (unsigned long long)m->seq[i],
			            (unsigned long long)h->seq);
	}
	for (uint32_t i = first; i < first + count; i++) {
		uint32_t id_len, text_len, n_alts;
		if (!get32(&c, &id_len))
			return fail(r, "checkpoint block %u (slots) ends inside slot %u", no, i);
		if (id_len == EMPTY_SLOT)
			continue;
		if (!get32(&c, &text_len) || !get32(&c, &n_alts))
			return fail(r, "checkpoint block %u (slots) ends inside slot %u", no, i);
		const char *id = get_str(&c, id_len), *text = id ? get_str(&c, text_len) : NULL;
		if (!id || !text)
			return fail(r, "checkpoint block %u (slots): slot %u's id or text is cut short "
			            "or holds a NUL", no, i);
		if (!rd_alts(r, &c, n_alts))
			return fail(r, "checkpoint block %u (slots): slot %u's %u alternatives are cut "
			            "short or hold a NUL", no, i, n_alts);
		if (!gos_map_restore_token(m, i, id, id_len, text, text_len, n_alts, r->alts))
			return fail(r, "checkpoint block %u (slots): slot %u repeats another slot's "
			            "token id", no, i);
		(*live)++;
	}
	if (c.p != c.end)
		return fail(r, "checkpoint block %u (slots) has %zu bytes left over", no,
		            (size_t)(c.end - c.p));
	return true;
}

/* Images before version 3: each live token's index, in arrival order (the
 * slots from the eviction cursor on, then those before it), the evicted
 * ones counted before the first that lives. */
static void index_by_arrival(struct gos_map *m, uint32_t cursor)
{
	uint64_t *left = calloc(m->n_streams ? m->n_streams : 1, sizeof(*left));
	if (!left)
		abort();
	for (uint32_t i = 0; i < m->used; i++)
		if (m->blob[i])
			left[m->stream[i]]++;
	for (uint32_t k = 0; k < m->used; k++) {
		uint32_t i = (uint32_t)(((uint64_t)cursor + k) % m->used);
		if (!m->blob[i])
			continue;
		const struct stream_rec *s = &m->streams[m->stream[i]];
		uint64_t n = left[m->stream[i]]--;
		m->index[i] = s->n_tokens >= n ? (uint32_t)(s->n_tokens - n) : 0;
	}
	free(left);
}

/* Every live token's index is below its stream's count and no other
 * token of the stream holds it; the streams learn them. */
static bool rd_indexes(struct rd *r, struct gos_map *m)
{
	for (uint32_t i = 0; i < m->used; i++) {
		if (!m->blob[i])
			continue;
		struct stream_rec *s = &m->streams[m->stream[i]];
		uint32_t index = m->index[i];
		/* past 2^32 tokens a stream's indexes wrap */
		if (s->n_tokens <= UINT32_MAX && index >= s->n_tokens)
			return fail(r, "checkpoint slot %u has index %u in a stream of %llu tokens", i,
			            index, (unsigned long long)s->n_tokens);
		if (index >= s->at_base && index - s->at_base < s->at_n &&
		    s->at[index - s->at_base] != UINT32_MAX)
			return fail(r, "checkpoint slots %u and %u have the same index %u in their "
			            "stream", s->at[index - s->at_base], i, index);
		gos_map_stream_at(m, i);
	}
	return true;
}

static bool rd_end(struct rd *r)
{
	uint64_t at = r->off;
	uint32_t blocks = r->blocks, chain = r->chain;
	size_t len;
	if (!rd_block(r, BLK_END, &len))
		return false;
	uint64_t e_at;
	uint32_t e_blocks, e_chain;
	struct cur c = {r->buf, r->buf + len};
	if (len != 16 || !get64(&c, &e_at) || !get32(&c, &e_blocks) || !get32(&c, &e_chain))
		return fail(r, "checkpoint end block is %zu bytes, not 16", len);
	if (e_at != at || e_blocks != blocks || e_chain != chain)
		return fail(r, "checkpoint end block does not match the blocks before it");
	unsigned char extra;
	size_t got = rd_raw(r, &extra, 1);
	if (got == SIZE_MAX)
		return false;
	if (got)
		return fail(r, "checkpoint has bytes after its end block");
	return true;
}

static struct gos_map *read_image(struct rd *r, const struct gos_map_opts *opts)
{
	unsigned char pre[PREFIX_BYTES];
	size_t got = rd_raw(r, pre, sizeof(pre));
	if (got == SIZE_MAX)
		return NULL;
	if (got < sizeof(pre) || memcmp(pre, MAGIC, 8) != 0) {
		fail(r, "not a gos checkpoint (no GOSCKPT1 magic at its start)");
		return NULL;
	}
	uint32_t version, flags;
	memcpy(&version, pre + 8, 4);
	memcpy(&flags, pre + 12, 4);
	r->version = version;
	if (version < VERSION_OLD || version > VERSION) {
		fail(r, "checkpoint version %u is not readable by this build (it reads %u to %u)",
		     version, VERSION_OLD, VERSION);
		return NULL;
	}
	if (flags) {
		fail(r, "checkpoint has unknown flags %#x", flags);
		return NULL;
	}
	r->off = PREFIX_BYTES;

	struct header h;
	uint64_t applied[GOS_EV_COUNT_];
	if (!rd_header(r, &h, applied))
		return NULL;
	uint64_t max = opts->max_tokens ? opts->max_tokens : h.max_tokens;
	if (max > UINT32_MAX - 1)
		max = UINT32_MAX - 1;   /* as gos_map_create clamps it */
	if (h.used > max) {
		fail(r, "the checkpoint holds %u token slots, more than max_tokens %llu", h.used,
		     (unsigned long long)max);
		return NULL;
	}
	struct gos_map *m = gos_map_create(&(struct gos_map_opts){
		.max_tokens = max, .log_capacity = opts->log_capacity,
		.layout = (enum gos_layout_kind)h.layout});

	for (uint64_t i = 0; i < h.n_streams; i += h.streams_per_block)
		if (!rd_streams(r, m, &h, (uint32_t)i))
			goto error;
	gos_map_pages_replay(&m->pages, h.flow_pages);
	double now = gos_now_s();
	uint64_t live = 0;
	for (uint64_t i = 0; i < h.used; i += h.slots_per_block)
		if (!rd_slots(r, m, &h, (uint32_t)i, now, &live))
			goto error;
	if (!rd_end(r))
		goto error;
	if (live != h.live) {
		fail(r, "checkpoint header counts %llu live tokens but its slots hold %llu",
		     (unsigned long long)h.live, (unsigned long long)live);
		goto error;
	}
	if (r->version < 3)
		index_by_arrival(m, h.evict_cursor);
	if (!rd_indexes(r, m))
		goto error;
	for (uint32_t i = 0; i < m->n_streams; i++) {
		int64_t s = m->streams[i].newest_slot;
		if (s >= 0 && (!m->blob[s] || m->stream[s] != i)) {
			fail(r, "checkpoint stream %u's newest slot %lld is not one of its tokens", i,
			     (long long)s);
			goto error;
		}
	}

	m->evict_cursor = h.evict_cursor;
	m->live = live;
	m->cur_seq = h.seq;
	m->log_floor = h.seq;
	m->stats.seq = h.seq;
	m->stats.live_tokens = live;
	m->stats.streams = m->n_streams;
	m->stats.evicted = h.evicted;
	m->stats.tokens_added = h.tokens_added;
	m->stats.tokens_updated = h.tokens_updated;
	memcpy(m->stats.applied, applied, sizeof(m->stats.applied));
	return m;

error:
	gos_map_destroy(m);
	return NULL;
}

struct gos_map *gos_map_image_read(int fd, const struct gos_map_opts *opts, char *err,
                                   size_t errlen)
{
	struct rd r = {.fd = fd, .err = err, .errlen = errlen};
	if (errlen)
		err[0] = '\0';
	struct gos_map *m = read_image(&r, opts ? opts : &(struct gos_map_opts){0});
	free(r.buf);
	free(r.alts);
	free(r.strs);
	return m;
}
