/* gos_jseek (gos_journal.h): the map as it was at a seq, built from the
 * nearest checkpoint and the journal, with an index of the durable records
 * so a build reads only from its starting point, and a one-map cache so
 * scrubbing forward replays only the difference. One thread at a time. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_log.h"
#include "gos_journal.h"

#define IDX_EVERY   64         /* one index entry per this many events */
#define PRIVATE_LOG (1u << 16) /* change-log entries of a built map */

struct idx {
	uint64_t seq_last;
	double t;
	struct gos_jpos pos;
};

struct gos_jseek {
	char *dir;
	struct gos_map_opts mo;
	struct gos_jreader *ird;   /* the index's reader, at its end */
	struct idx *ix;
	size_t n_ix, cap_ix;
	uint64_t ix_events;
	uint64_t ix_last_seq;
	double ix_last_t;
	struct gos_journal_files files;
	uint64_t first;            /* the oldest seq a build can reach */
	/* Where a replica's session adopted a checkpoint (a SEQ_LEASE record
	 * with seq_first; docs/scale-out.md): the session's start is then no
	 * base to build from. */
	uint64_t adopted;
	uint64_t durable;          /* the last refresh's bound */
	struct gos_map *cache;
	uint64_t cache_seq;
};

struct gos_jseek *gos_jseek_create(const char *dir, const struct gos_map_opts *mo)
{
	struct gos_jseek *s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir)))
		abort();
	s->mo = mo ? *mo : (struct gos_map_opts){0};
	s->mo.log_capacity = PRIVATE_LOG;
	s->ird = gos_jreader_create(s->dir);
	s->ix_last_t = NAN;
	return s;
}

void gos_jseek_destroy(struct gos_jseek *s)
{
	if (!s)
		return;
	gos_map_destroy(s->cache);
	gos_jreader_destroy(s->ird);
	gos_journal_files_finish(&s->files);
	free(s->ix);
	free(s->dir);
	free(s);
}

static void index_reset(struct gos_jseek *s)
{
	s->n_ix = 0;
	s->ix_events = 0;
	s->ix_last_seq = 0;
	s->ix_last_t = NAN;
	gos_jreader_at(s->ird, NULL);
}

void gos_jseek_refresh(struct gos_jseek *s, uint64_t durable)
{
	char err[256];
	struct gos_journal_files f;
	if (gos_journal_list(s->dir, &f, err, sizeof(err))) {
		gos_journal_files_finish(&s->files);
		s->files = f;
	}
	f = s->files;
	if (!f.n_seg || f.seg[0].seq <= 1)
		s->first = s->adopted;  /* the journal holds the whole session */
	else
		s->first = f.n_ckpt ? f.ckpt[0].seq : f.seg[0].seq - 1;
	if (s->n_ix && f.n_seg && s->ix[0].pos.seg < f.seg[0].seq)
		index_reset(s);  /* the oldest segments were removed */
	s->durable = durable;
	struct gos_jrec rec;
	struct gos_jpos pos;
	while (gos_jreader_next(s->ird, &rec, &pos, 0)) {
		/* the session's map was replaced at seq_first (a replica's
		 * checkpoint, docs/scale-out.md): nothing before it can be built */
		if (rec.type == GOS_JREC_LEASE && rec.seq_first && f.n_seg && f.seg[0].seq <= 1 &&
		    rec.seq_first > s->adopted)
			s->adopted = s->first = rec.seq_first;
		if (rec.type != GOS_JREC_EVENT)
			continue;
		if (rec.seq_last > durable) {
			gos_jreader_unread(s->ird);
			break;
		}
		if (s->ix_events++ % IDX_EVERY == 0) {
			if (s->n_ix == s->cap_ix) {
				s->cap_ix = s->cap_ix ? s->cap_ix * 2 : 256;
				s->ix = realloc(s->ix, s->cap_ix * sizeof(*s->ix));
				if (!s->ix)
					abort();
			}
			s->ix[s->n_ix++] = (struct idx){rec.seq_last, rec.t, pos};
		}
		s->ix_last_seq = rec.seq_last;
		s->ix_last_t = rec.t;
	}
	if (gos_jreader_error(s->ird)) {
		gos_log_warn("seek", "%s; reading the journal again", gos_jreader_error(s->ird));
		index_reset(s);
	}
}

void gos_jseek_range(const struct gos_jseek *s, struct gos_jseek_range *out)
{
	*out = (struct gos_jseek_range){
		.first = s->first, .last = s->durable,
		.first_t = s->n_ix ? s->ix[0].t : NAN, .last_t = s->n_ix ? s->ix_last_t : NAN,
		.last_event_seq = s->ix_last_seq,
	};
}

size_t gos_jseek_points(const struct gos_jseek *s, double *t, uint64_t *seq, size_t max)
{
	if (!s->n_ix || max < 2)
		return 0;
	size_t n = 0, step = (s->n_ix + max - 2) / (max - 1);
	if (!step)
		step = 1;
	for (size_t i = 0; i < s->n_ix && n < max - 1; i += step) {
		t[n] = s->ix[i].t;
		seq[n++] = s->ix[i].seq_last;
	}
	if (seq[n - 1] != s->ix_last_seq) {
		t[n] = s->ix_last_t;
		seq[n++] = s->ix_last_seq;
	}
	return n;
}

/* The last index entry at or before seq (by seq_last), or NULL. */
static const struct idx *index_at_seq(const struct gos_jseek *s, uint64_t seq)
{
	size_t lo = 0, hi = s->n_ix;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->ix[mid].seq_last <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? &s->ix[lo - 1] : NULL;
}

static const struct idx *index_at_time(const struct gos_jseek *s, double t)
{
	size_t lo = 0, hi = s->n_ix;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->ix[mid].t <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? &s->ix[lo - 1] : NULL;
}

bool gos_jseek_time_to_seq(struct gos_jseek *s, struct gos_jreader *rd, double t, uint64_t *seq)
{
	if (!s->n_ix || !(t >= s->ix[0].t) || !(t <= s->ix_last_t))
		return false;
	const struct idx *e = index_at_time(s, t);
	*seq = e->seq_last;
	gos_jreader_at(rd, &e->pos);
	struct gos_jrec rec;
	while (gos_jreader_next(rd, &rec, NULL, 0)) {
		if (rec.type != GOS_JREC_EVENT)
			continue;
		if (rec.t > t || rec.seq_last > s->durable)
			break;
		*seq = rec.seq_last;
	}
	return true;
}

struct gos_map *gos_jseek_build(struct gos_jseek *s, uint64_t seq, struct gos_jreader *rd,
                                double *t, char *err, size_t errlen)
{
	const struct gos_journal_file *ck = NULL;
	for (size_t i = 0; i < s->files.n_ckpt; i++)
		if (s->files.ckpt[i].seq <= seq && s->files.ckpt[i].seq >= s->first)
			ck = &s->files.ckpt[i];
	struct gos_map *map = NULL;
	uint64_t base = s->first;
	if (s->cache && s->cache_seq <= seq && (!ck || s->cache_seq >= ck->seq)) {
		map = s->cache;
		base = s->cache_seq;
		s->cache = NULL;
	}
	while (!map && ck) {
		int fd = open(ck->path, O_RDONLY | O_CLOEXEC);
		char ierr[256] = "cannot open it";
		map = fd >= 0 ? gos_map_image_read(fd, &s->mo, ierr, sizeof(ierr)) : NULL;
		if (fd >= 0)
			close(fd);
		if (map) {
			base = ck->seq;
			break;
		}
		gos_log_warn("seek", "checkpoint %s is unusable (%s)", ck->path, ierr);
		ck = ck > s->files.ckpt && (ck - 1)->seq >= s->first ? ck - 1 : NULL;
	}
	if (!map) {
		if (s->first) {
			snprintf(err, errlen, "no usable checkpoint at or before seq %llu",
			         (unsigned long long)seq);
			return NULL;
		}
		map = gos_map_create(&s->mo);
		base = 0;
	}
	struct gos_jreplay *rp = gos_jreplay_create(map, base, seq);
	const struct idx *e = index_at_seq(s, base);
	gos_jreader_at(rd, e ? &e->pos : NULL);
	struct gos_jrec rec;
	while (gos_jreader_next(rd, &rec, NULL, 0)) {
		if (!gos_jreplay_feed(rp, &rec)) {
			gos_jreader_unread(rd);
			break;
		}
	}
	gos_jreplay_flush(rp);
	*t = gos_jreplay_last_t(rp);
	const char *bad = gos_jreplay_error(rp);
	if (bad || gos_jreader_error(rd)) {
		snprintf(err, errlen, "the journal cannot be replayed to seq %llu: %s",
		         (unsigned long long)seq, bad ? bad : gos_jreader_error(rd));
		gos_jreplay_destroy(rp);
		gos_map_destroy(map);
		return NULL;
	}
	gos_jreplay_destroy(rp);
	return map;
}

void gos_jseek_keep(struct gos_jseek *s, struct gos_map *map, uint64_t seq)
{
	if (s->cache != map)
		gos_map_destroy(s->cache);
	s->cache = map;
	s->cache_seq = seq;
}
