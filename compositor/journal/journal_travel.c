/* gos_travel (gos_journal.h): what the native window's time travel asks
 * of the journal, on the window's thread: the session's span, the map as
 * it was at a time (gos_jseek, carrying the last map forward), and saving
 * the session as a recording (gos_jrecording). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gos_journal.h"

struct gos_travel {
	char *dir;
	struct gos_journal *journal;
	struct gos_jseek *js;
	uint64_t prev_seq;           /* the seq the map handed out last was built at */
};

struct gos_travel *gos_travel_create(const char *dir, struct gos_journal *journal,
                                     const struct gos_map_opts *map_opts)
{
	struct gos_travel *t = calloc(1, sizeof(*t));
	if (!t || !(t->dir = strdup(dir)))
		abort();
	t->journal = journal;
	t->js = gos_jseek_create(dir, map_opts);
	return t;
}

void gos_travel_destroy(struct gos_travel *t)
{
	if (!t)
		return;
	gos_jseek_destroy(t->js);
	free(t->dir);
	free(t);
}

static void refresh(struct gos_travel *t, struct gos_jseek_range *g)
{
	struct gos_journal_stats st;
	gos_journal_stats(t->journal, &st);
	gos_jseek_refresh(t->js, st.durable_seq);
	gos_jseek_range(t->js, g);
}

bool gos_travel_span(void *ctx, double *t0, double *t1)
{
	struct gos_travel *t = ctx;
	struct gos_jseek_range g;
	refresh(t, &g);
	if (isnan(g.first_t))
		return false;
	*t0 = g.first_t;
	*t1 = g.last_t;
	return true;
}

struct gos_map *gos_travel_at(void *ctx, struct gos_map *prev, double when, uint64_t *seq,
                              double *at, char *err, size_t errlen)
{
	struct gos_travel *t = ctx;
	if (prev)
		gos_jseek_keep(t->js, prev, t->prev_seq);   /* built on again if it can be */
	struct gos_jseek_range g;
	refresh(t, &g);
	if (isnan(g.first_t)) {
		snprintf(err, errlen, "nothing is recorded yet");
		return NULL;
	}
	struct gos_jreader *rd = gos_jreader_create(t->dir);
	uint64_t s;
	if (!gos_jseek_time_to_seq(t->js, rd, when, &s))
		s = when < g.first_t ? g.first : g.last_event_seq;
	struct gos_map *m = gos_jseek_build(t->js, s, rd, at, err, errlen);
	gos_jreader_destroy(rd);
	if (m) {
		t->prev_seq = s;
		*seq = s;
	}
	return m;
}

void gos_travel_release(void *ctx, struct gos_map *prev)
{
	struct gos_travel *t = ctx;
	gos_jseek_keep(t->js, prev, t->prev_seq);
}

bool gos_travel_save(void *ctx, const char *dir, char *msg, size_t msglen)
{
	struct gos_travel *t = ctx;
	struct gos_journal_stats st;
	gos_journal_stats(t->journal, &st);
	char path[4200], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(path, sizeof(path), "%s/gos-%s.ndjson", dir, stamp);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot save the recording to %s: %s", path, strerror(errno));
		return false;
	}
	struct gos_jrecording *r = gos_jrecording_open(t->dir, st.durable_seq);
	enum { CHUNK = 256 * 1024 };
	char *buf = malloc(CHUNK);
	if (!buf)
		abort();
	long n;
	uint64_t total = 0;
	bool ok = true;
	while (ok && (n = gos_jrecording_read(r, buf, CHUNK)) != 0) {
		if (n < 0) {
			snprintf(msg, msglen, "cannot save the recording: %s", gos_jrecording_error(r));
			ok = false;
			break;
		}
		for (long off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				snprintf(msg, msglen, "cannot write %s: %s", path, strerror(errno));
				ok = false;
				break;
			}
			off += w;
		}
		total += (uint64_t)n;
	}
	free(buf);
	gos_jrecording_close(r);
	if (close(fd) != 0 && ok) {
		snprintf(msg, msglen, "cannot write %s: %s", path, strerror(errno));
		ok = false;
	}
	if (!ok) {
		unlink(path);
		return false;
	}
	snprintf(msg, msglen, "recording saved to %s (%llu bytes)", path, (unsigned long long)total);
	return true;
}
