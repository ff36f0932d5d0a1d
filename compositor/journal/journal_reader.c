/* Reading a state dir's records through a window, from any position: the
 * seek worker's index and replays, and GET /recording (gos_journal.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_journal.h"

#define WINDOW_MIN (1u << 20)

struct gos_jreader {
	char *dir;
	struct gos_journal_files f;
	size_t seg;              /* index in f.seg; f.n_seg: none yet */
	uint64_t seg_name;       /* f.seg[seg].seq */
	int fd;
	unsigned char *buf;
	size_t cap, len, cur;    /* window: buf[0..len) is the file from woff */
	uint64_t woff;
	size_t last_start;       /* the record last returned (unread) */
	bool can_unread;
	bool more;               /* the last false came from max_read */
	char err[256];
	bool failed;
};

struct one {
	struct gos_jrec rec;
	bool got;
};

static bool take_one(void *ctx, const struct gos_jrec *rec)
{
	struct one *o = ctx;
	o->rec = *rec;
	o->got = true;
	return false;
}

static void close_seg(struct gos_jreader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->len = r->cur = 0;
	r->woff = 0;
	r->can_unread = false;
}

static void relist(struct gos_jreader *r)
{
	struct gos_journal_files f;
	char err[256];
	if (!gos_journal_list(r->dir, &f, err, sizeof(err)))
		return;
	gos_journal_files_finish(&r->f);
	r->f = f;
	r->seg = r->f.n_seg;
	for (size_t i = 0; i < r->f.n_seg; i++)
		if (r->f.seg[i].seq == r->seg_name)
			r->seg = i;
}

static bool open_seg(struct gos_jreader *r, size_t i, uint64_t off)
{
	close_seg(r);
	r->seg = i;
	r->seg_name = r->f.seg[i].seq;
	r->fd = open(r->f.seg[i].path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		snprintf(r->err, sizeof(r->err), "cannot open %s: %s", r->f.seg[i].path, strerror(errno));
		r->failed = true;
		return false;
	}
	r->woff = off;
	return true;
}

struct gos_jreader *gos_jreader_create(const char *dir)
{
	struct gos_jreader *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->dir = strdup(dir);
	r->fd = -1;
	r->cap = WINDOW_MIN;
	r->buf = malloc(r->cap);
	if (!r->dir || !r->buf)
		abort();
	return r;
}

void gos_jreader_destroy(struct gos_jreader *r)
{
	if (!r)
		return;
	close_seg(r);
	gos_journal_files_finish(&r->f);
	free(r->buf);
	free(r->dir);
	free(r);
}

void gos_jreader_at(struct gos_jreader *r, const struct gos_jpos *pos)
{
	close_seg(r);
	r->failed = false;
	r->err[0] = '\0';
	r->seg_name = pos ? pos->seg : 0;
	relist(r);
	if (!pos) {
		if (r->f.n_seg)
			open_seg(r, 0, 0);
		return;
	}
	if (r->seg == r->f.n_seg) {
		snprintf(r->err, sizeof(r->err), "segment %020llu is gone",
		         (unsigned long long)pos->seg);
		r->failed = true;
		return;
	}
	open_seg(r, r->seg, pos->off);
}

/* Reads more of the current segment into the window (keeping from cur).
 * Returns bytes read, 0 at its end, -1 on error. */
static ssize_t refill(struct gos_jreader *r, size_t max_read)
{
	if (r->cur) {
		memmove(r->buf, r->buf + r->cur, r->len - r->cur);
		r->woff += r->cur;
		r->len -= r->cur;
		r->cur = 0;
		r->can_unread = false;
	}
	if (r->len == r->cap) {
		if (r->cap >= 2 * (GOS_JREC_MAX + GOS_JREC_HEADER))
			return 0;  /* cannot hold more than the largest record: treat as torn */
		r->cap *= 2;
		r->buf = realloc(r->buf, r->cap);
		if (!r->buf)
			abort();
	}
	size_t want = r->cap - r->len;
	if (max_read && want > max_read)
		want = max_read;
	ssize_t n;
	do
		n = pread(r->fd, r->buf + r->len, want, (off_t)(r->woff + r->len));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		snprintf(r->err, sizeof(r->err), "cannot read segment %020llu: %s",
		         (unsigned long long)r->seg_name, strerror(errno));
		r->failed = true;
		return -1;
	}
	r->len += (size_t)n;
	return n;
}

bool gos_jreader_next(struct gos_jreader *r, struct gos_jrec *rec, struct gos_jpos *pos,
                      size_t max_read)
{
	r->more = false;
	size_t budget = max_read;
	for (;;) {
		if (r->failed)
			return false;
		if (r->fd < 0) {
			relist(r);
			if (!r->f.n_seg)
				return false;
			size_t i = 0;
			if (r->seg_name) {
				/* the segment after the one we finished */
				while (i < r->f.n_seg && r->f.seg[i].seq <= r->seg_name)
					i++;
				if (i == r->f.n_seg)
					return false;
			}
			if (!open_seg(r, i, 0))
				return false;
		}
		struct one o = {0};
		struct gos_jscan sc;
		gos_journal_scan(r->buf + r->cur, r->len - r->cur, take_one, &o, &sc);
		if (o.got) {
			*rec = o.rec;
			rec->offset = (size_t)(r->woff + r->cur);
			if (pos)
				*pos = (struct gos_jpos){r->seg_name, r->woff + r->cur};
			r->last_start = r->cur;
			r->can_unread = true;
			r->cur += GOS_JREC_HEADER + rec->len;
			return true;
		}
		if (sc.end == GOS_JSCAN_CORRUPT) {
			snprintf(r->err, sizeof(r->err), "segment %020llu: %s",
			         (unsigned long long)r->seg_name, sc.why);
			r->failed = true;
			return false;
		}
		if (max_read && budget == 0) {
			r->more = true;
			return false;
		}
		ssize_t n = refill(r, budget);
		if (n < 0)
			return false;
		if (max_read)
			budget -= (size_t)n < budget ? (size_t)n : budget;
		if (n > 0)
			continue;
		/* the end of this segment: go on only when a newer one exists
		 * (then this one is complete); else we are at the end for now */
		relist(r);
		bool newer = false;
		for (size_t i = 0; i < r->f.n_seg; i++)
			newer |= r->f.seg[i].seq > r->seg_name;
		if (!newer || r->len != r->cur)
			return false;
		close_seg(r);
	}
}

void gos_jreader_unread(struct gos_jreader *r)
{
	if (r->can_unread)
		r->cur = r->last_start;
	r->can_unread = false;
}

const char *gos_jreader_error(const struct gos_jreader *r)
{
	return r->failed ? r->err : NULL;
}

bool gos_jreader_wants_more(const struct gos_jreader *r)
{
	return r->more;
}
