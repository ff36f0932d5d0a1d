/* Journal records and the state dir's files: encode, scan (torn tail vs
 * corrupt middle), list segments and checkpoints, read a file whole. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gos_buf.h"
#include "gos_crc32c.h"
#include "gos_journal.h"

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void wr64(unsigned char *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

size_t gos_journal_begin(struct gos_buf *w)
{
	size_t at = w->len;
	gos_buf_reserve(w, GOS_JREC_HEADER);
	w->len += GOS_JREC_HEADER;
	w->data[w->len] = '\0';
	return at;
}

void gos_journal_end(struct gos_buf *w, size_t at, enum gos_jrec_type type, uint64_t seq_first,
                     uint64_t seq_last, double t)
{
	unsigned char *h = (unsigned char *)w->data + at;
	uint32_t len = (uint32_t)(w->len - at - GOS_JREC_HEADER);
	uint64_t tbits;
	memcpy(&tbits, &t, 8);
	wr32(h, GOS_JREC_MAGIC);
	wr32(h + 4, len);
	h[12] = (unsigned char)type;
	h[13] = h[14] = h[15] = 0;
	wr64(h + 16, seq_first);
	wr64(h + 24, seq_last);
	wr64(h + 32, tbits);
	wr32(h + 8, gos_crc32c(0, h + 12, GOS_JREC_HEADER - 12 + len));
}

void gos_journal_encode(struct gos_buf *w, enum gos_jrec_type type, uint64_t seq_first,
                        uint64_t seq_last, double t, const char *payload, uint32_t len)
{
	size_t at = gos_journal_begin(w);
	if (len)
		gos_buf_append(w, payload, len);
	gos_journal_end(w, at, type, seq_first, seq_last, t);
}

/* 0: a valid record at p (its size in *size); else why it is not. */
static const char *check_at(const unsigned char *p, size_t avail, size_t *size)
{
	if (avail < GOS_JREC_HEADER)
		return "a record header is cut short";
	if (rd32(p) != GOS_JREC_MAGIC)
		return "no record magic";
	uint32_t len = rd32(p + 4);
	if (len > GOS_JREC_MAX)
		return "a record length is impossible";
	if (avail - GOS_JREC_HEADER < len)
		return "a record is cut short";
	if (gos_crc32c(0, p + 12, GOS_JREC_HEADER - 12 + len) != rd32(p + 8))
		return "a record checksum does not match";
	unsigned type = p[12];
	if (type != GOS_JREC_EVENT && type != GOS_JREC_LEASE)
		return "a record has an unknown type";
	*size = GOS_JREC_HEADER + len;
	return NULL;
}

/* Is there any valid record after offset `from`? Then the bad bytes are
 * corruption, not a tail torn by a crash. */
static bool valid_record_after(const unsigned char *b, size_t len, size_t from)
{
	static const unsigned char magic[4] = {'G', 'O', 'S', 'J'};
	size_t i = from;
	while (i + GOS_JREC_HEADER <= len) {
		const unsigned char *m = memmem(b + i, len - i, magic, 4);
		if (!m)
			return false;
		size_t size;
		if (!check_at(m, len - (size_t)(m - b), &size))
			return true;
		i = (size_t)(m - b) + 1;
	}
	return false;
}

void gos_journal_scan(const void *buf, size_t len, gos_jrec_fn fn, void *ctx,
                      struct gos_jscan *out)
{
	const unsigned char *b = buf;
	*out = (struct gos_jscan){.end = GOS_JSCAN_CLEAN};
	size_t off = 0;
	while (off < len) {
		size_t size = 0;
		const char *why = check_at(b + off, len - off, &size);
		if (why) {
			bool corrupt = valid_record_after(b, len, off + 1);
			out->end = corrupt ? GOS_JSCAN_CORRUPT : GOS_JSCAN_TORN;
			snprintf(out->why, sizeof(out->why), "%s at byte %zu", why, off);
			break;
		}
		const unsigned char *p = b + off;
		uint64_t tbits = rd64(p + 32);
		struct gos_jrec r = {
			.type = (enum gos_jrec_type)p[12],
			.seq_first = rd64(p + 16), .seq_last = rd64(p + 24),
			.payload = (const char *)p + GOS_JREC_HEADER, .len = rd32(p + 4),
			.offset = off,
		};
		memcpy(&r.t, &tbits, 8);
		out->records++;
		off += size;
		out->good = off;
		if (fn && !fn(ctx, &r)) {
			out->end = GOS_JSCAN_STOPPED;
			return;
		}
	}
	out->good = off < len ? off : len;
	if (out->end == GOS_JSCAN_CLEAN)
		out->good = len;
}

/* ---- files ---- */

static int by_seq(const void *a, const void *b)
{
	const struct gos_journal_file *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Files named <20 digits><suffix> in dir, sorted by that number. */
static bool list_dir(const char *dir, const char *suffix, struct gos_journal_file **out,
                     size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return true;
		snprintf(err, errlen, "cannot read %s: %s", dir, strerror(errno));
		return false;
	}
	size_t cap = 0, slen = strlen(suffix);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t nl = strlen(e->d_name);
		if (nl != 20 + slen || strcmp(e->d_name + 20, suffix) != 0)
			continue;
		char *end;
		errno = 0;
		unsigned long long seq = strtoull(e->d_name, &end, 10);
		if (errno || end != e->d_name + 20)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			struct gos_journal_file *nf = realloc(*out, cap * sizeof(**out));
			if (!nf)
				abort();
			*out = nf;
		}
		size_t pl = strlen(dir) + 1 + nl + 1;
		char *path = malloc(pl);
		if (!path)
			abort();
		snprintf(path, pl, "%s/%s", dir, e->d_name);
		struct stat st;
		uint64_t bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
		(*out)[(*n)++] = (struct gos_journal_file){.path = path, .seq = seq, .bytes = bytes};
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof(**out), by_seq);
	return true;
}

bool gos_journal_list(const char *dir, struct gos_journal_files *f, char *err, size_t errlen)
{
	*f = (struct gos_journal_files){0};
	char sub[4096];
	snprintf(sub, sizeof(sub), "%s/journal", dir);
	if (!list_dir(sub, ".seg", &f->seg, &f->n_seg, err, errlen))
		return false;
	snprintf(sub, sizeof(sub), "%s/checkpoint", dir);
	if (!list_dir(sub, ".ckpt", &f->ckpt, &f->n_ckpt, err, errlen)) {
		gos_journal_files_finish(f);
		return false;
	}
	return true;
}

void gos_journal_files_finish(struct gos_journal_files *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_seg; i++)
		free(f->seg[i].path);
	for (size_t i = 0; i < f->n_ckpt; i++)
		free(f->ckpt[i].path);
	free(f->seg);
	free(f->ckpt);
	*f = (struct gos_journal_files){0};
}

void *gos_journal_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		close(fd);
		return NULL;
	}
	size_t cap = (size_t)st.st_size, n = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		abort();
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap + 1);
			if (!buf)
				abort();
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
}
