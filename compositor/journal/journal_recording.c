/* gos_jrecording (gos_journal.h): a state dir's session as a recording,
 * the EVENT payloads one a line, in pieces: what GET /recording sends and
 * the native window's Ctrl+S writes. */
#include <stdlib.h>
#include <string.h>

#include "gos_journal.h"

#define READ_SHARE (256 * 1024)   /* file bytes read per call, at most */

struct gos_jrecording {
	struct gos_jreader *rd;
	uint64_t last;            /* the last seq it hands out */
	char *carry;              /* a line longer than a piece, being handed out */
	size_t carry_len, carry_off;
	bool done;
};

struct gos_jrecording *gos_jrecording_open(const char *dir, uint64_t upto)
{
	struct gos_jrecording *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->last = upto;
	r->rd = gos_jreader_create(dir);
	gos_jreader_at(r->rd, NULL);
	return r;
}

long gos_jrecording_read(struct gos_jrecording *r, void *buf, size_t cap)
{
	char *out = buf;
	size_t n = 0;
	if (r->carry) {
		size_t k = r->carry_len - r->carry_off < cap ? r->carry_len - r->carry_off : cap;
		memcpy(out, r->carry + r->carry_off, k);
		r->carry_off += k;
		if (r->carry_off == r->carry_len) {
			free(r->carry);
			r->carry = NULL;
		}
		return (long)k;
	}
	struct gos_jrec rec;
	while (!r->done && n < cap) {
		if (!gos_jreader_next(r->rd, &rec, NULL, READ_SHARE)) {
			if (gos_jreader_wants_more(r->rd) && n)
				break;      /* this call's share of the file is read */
			if (gos_jreader_wants_more(r->rd))
				continue;   /* nothing yet: read on */
			if (gos_jreader_error(r->rd))
				return n ? (long)n : -1;
			r->done = true;  /* the end of what is written */
			break;
		}
		if (rec.type != GOS_JREC_EVENT)
			continue;
		if (rec.seq_last > r->last) {
			r->done = true;
			break;
		}
		if (n + rec.len + 1 > cap) {
			if (n) {
				gos_jreader_unread(r->rd);
				break;
			}
			r->carry = malloc(rec.len + 1);
			if (!r->carry)
				abort();
			memcpy(r->carry, rec.payload, rec.len);
			r->carry[rec.len] = '\n';
			r->carry_len = rec.len + 1;
			r->carry_off = 0;
			return gos_jrecording_read(r, buf, cap);
		}
		memcpy(out + n, rec.payload, rec.len);
		out[n + rec.len] = '\n';
		n += rec.len + 1;
	}
	return (long)n;
}

const char *gos_jrecording_error(const struct gos_jrecording *r)
{
	return gos_jreader_error(r->rd);
}

void gos_jrecording_close(struct gos_jrecording *r)
{
	if (!r)
		return;
	gos_jreader_destroy(r->rd);
	free(r->carry);
	free(r);
}
