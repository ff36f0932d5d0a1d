/* The state dir: where it is, its lock, and the sessions --fresh keeps. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gos_log.h"
#include "gos_protocol.h"
#include "gos_state.h"
#include "gos_time.h"

void gos_state_default_dir(char *out, size_t cap)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	if (xdg && xdg[0] == '/')
		snprintf(out, cap, "%s/gos", xdg);
	else
		snprintf(out, cap, "%s/.local/state/gos", home && home[0] ? home : "/tmp");
}

/* mkdir -p, mode 0700 for what it creates. */
static bool make_dirs(const char *path, char *err, size_t errlen)
{
	char p[4096];
	int n = snprintf(p, sizeof(p), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(p)) {
		snprintf(err, errlen, "the state dir path is too long: %s", path);
		return false;
	}
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create the state dir %s: %s", p, strerror(errno));
			return false;
		}
		*s = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "the state dir %s is not a directory", path);
		return false;
	}
	return true;
}

static bool make_subdirs(const char *dir, char *err, size_t errlen)
{
	static const char *const subs[] = {"journal", "checkpoint", "bad", "sessions"};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
		if (!make_dirs(p, err, errlen))
			return false;
	}
	return true;
}

int gos_state_lock(const char *dir, char *err, size_t errlen)
{
	if (!make_dirs(dir, err, errlen) || !make_subdirs(dir, err, errlen))
		return -1;
	char path[4200];
	snprintf(path, sizeof(path), "%s/lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen, "another gos-compositor%s%s%s is using the state dir %s; give "
		         "this one its own with --state-dir DIR, or run it without a journal "
		         "with --no-journal", pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", dir);
		close(fd);
		return -1;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0)
		(void)0;   /* the pid is only for the message above */
	return fd;
}

static bool has_files(const char *dir)
{
	struct gos_journal_files f;
	char err[256];
	if (!gos_journal_list(dir, &f, err, sizeof(err)))
		return false;
	bool any = false;
	for (size_t i = 0; i < f.n_seg && !any; i++)
		any = f.seg[i].bytes > 0;
	any = any || f.n_ckpt > 0;
	gos_journal_files_finish(&f);
	return any;
}

bool gos_state_keep_session(const char *dir, char *err, size_t errlen)
{
	if (!has_files(dir))
		return true;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	char to[4300];
	for (int k = 0;; k++) {
		if (k)
			snprintf(to, sizeof(to), "%s/sessions/%s-%d", dir, stamp, k);
		else
			snprintf(to, sizeof(to), "%s/sessions/%s", dir, stamp);
		if (mkdir(to, 0700) == 0)
			break;
		if (errno != EEXIST || k > 100) {
			snprintf(err, errlen, "cannot create %s: %s", to, strerror(errno));
			return false;
		}
	}
	static const char *const subs[] = {"journal", "checkpoint"};
	for (size_t i = 0; i < 2; i++) {
		char from[4200], dst[4400];
		snprintf(from, sizeof(from), "%s/%s", dir, subs[i]);
		snprintf(dst, sizeof(dst), "%s/%s", to, subs[i]);
		if (rename(from, dst) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot move %s to %s: %s", from, dst, strerror(errno));
			return false;
		}
	}
	gos_log_info("journal", "--fresh: the previous session is kept in %s", to);
	return make_subdirs(dir, err, errlen);
}

struct span {
	double first, last;
	uint64_t events;
};

static bool span_rec(void *ctx, const struct gos_jrec *r)
{
	struct span *s = ctx;
	if (r->type != GOS_JREC_EVENT)
		return true;
	if (!s->events)
		s->first = r->t;
	s->last = r->t;
	s->events++;
	return true;
}

static void print_one(const char *label, const char *dir, FILE *out)
{
	struct gos_journal_files f;
	char err[256];
	if (!gos_journal_list(dir, &f, err, sizeof(err))) {
		fprintf(out, "%-22s  (%s)\n", label, err);
		return;
	}
	struct span s = {0};
	uint64_t bytes = 0;
	for (size_t i = 0; i < f.n_seg; i++) {
		size_t len;
		void *buf = gos_journal_read_file(f.seg[i].path, &len, err, sizeof(err));
		bytes += f.seg[i].bytes;
		if (!buf)
			continue;
		struct gos_jscan sc;
		gos_journal_scan(buf, len, span_rec, &s, &sc);
		free(buf);
	}
	for (size_t i = 0; i < f.n_ckpt; i++)
		bytes += f.ckpt[i].bytes;
	char t0[32] = "-", t1[32] = "-";
	if (s.events) {
		time_t a = (time_t)s.first, b = (time_t)s.last;
		struct tm tm;
		strftime(t0, sizeof(t0), "%Y-%m-%d %H:%M:%S", localtime_r(&a, &tm));
		strftime(t1, sizeof(t1), "%H:%M:%S", localtime_r(&b, &tm));
	}
	fprintf(out, "%-22s  %-19s - %-8s  %10" PRIu64 " events  %8.1f MiB  %s\n", label, t0, t1,
	        s.events, (double)bytes / (1 << 20), dir);
	gos_journal_files_finish(&f);
}

void gos_state_print_sessions(const char *dir, FILE *out)
{
	char sdir[4200];
	snprintf(sdir, sizeof(sdir), "%s/sessions", dir);
	DIR *d = opendir(sdir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		if (!names || !(names[n] = strdup(e->d_name)))
			abort();
		n++;
	}
	if (d)
		closedir(d);
	/* names are timestamps: sort them as text */
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
			char *t = names[k];
			names[k] = names[k - 1];
			names[k - 1] = t;
		}
	fprintf(out, "%-22s  %-30s  %17s  %12s  %s\n", "session", "from - to", "events", "size", "where");
	for (size_t i = 0; i < n; i++) {
		char p[4500];
		snprintf(p, sizeof(p), "%s/%s", sdir, names[i]);
		print_one(names[i], p, out);
		free(names[i]);
	}
	free(names);
	print_one("current", dir, out);
}

/* ---- flags ---- */

static bool parse_count(const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (errno || end == arg || arg[0] == '-')
		return false;
	/* 1G, 512M, 64k */
	uint64_t mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1ull << 10, end++;
	else if (*end == 'M')
		mul = 1ull << 20, end++;
	else if (*end == 'G')
		mul = 1ull << 30, end++;
	if (*end || v > max / mul || v * mul < min)
		return false;
	*out = v * mul;
	return true;
}

bool gos_state_parse_opt(struct gos_state_opts *o, int c, const char *arg, char *err,
                         size_t errlen)
{
	switch (c) {
	case GOS_STATE_OPT_DIR:
		if (!arg[0] || strlen(arg) >= sizeof(o->dir) - 256) {
			snprintf(err, errlen, "--state-dir wants a folder path (under 3800 bytes)");
			return false;
		}
		snprintf(o->dir, sizeof(o->dir), "%s", arg);
		return true;
	case GOS_STATE_OPT_NO_JOURNAL: o->no_journal = true; return true;
	case GOS_STATE_OPT_FRESH: o->fresh = true; return true;
	case GOS_STATE_OPT_SESSIONS: o->list_sessions = true; return true;
	case GOS_STATE_OPT_OPEN: o->open_path = arg; return true;
	case GOS_STATE_OPT_MAX_BYTES:
		if (!parse_count(arg, 1ull << 20, 1ull << 50, &o->max_bytes)) {
			snprintf(err, errlen, "--journal-max-bytes wants bytes from 1M to 1P (k, M, G "
			         "suffixes), not '%s'", arg);
			return false;
		}
		return true;
	case GOS_STATE_OPT_CKPT_EVENTS:
		if (!parse_count(arg, 1, 1ull << 40, &o->checkpoint_events)) {
			snprintf(err, errlen, "--checkpoint-events wants a whole number > 0, not '%s'", arg);
			return false;
		}
		return true;
	case GOS_STATE_OPT_CKPT_S: {
		char *end;
		double v = strtod(arg, &end);
		if (end == arg || *end || !(v >= 0.1 && v <= 86400)) {
			snprintf(err, errlen, "--checkpoint-s wants seconds from 0.1 to 86400, not '%s'", arg);
			return false;
		}
		o->checkpoint_s = v;
		return true;
	}
	}
	snprintf(err, errlen, "not a state dir option");
	return false;
}

void gos_state_usage(FILE *f)
{
	char def[4096];
	gos_state_default_dir(def, sizeof(def));
	fprintf(f,
	        "journal (docs/journal.md): a sync is answered once the events before it are on\n"
	        "disk, and a restart restores the last session\n"
	        "  --state-dir DIR      journal, checkpoints and kept sessions (default %s);\n"
	        "                       one compositor per dir\n"
	        "  --no-journal         keep the map in memory only (nothing survives a restart)\n"
	        "  --fresh              start with an empty map; the last session is kept in\n"
	        "                       DIR/sessions/ (see --sessions)\n"
	        "  --sessions           list the kept sessions and the current one, then exit\n"
	        "  --open FILE          start from a recording (docs/recording.md: GET /recording,\n"
	        "                       gos-feed input); the last session is kept as with --fresh\n"
	        "  --journal-max-bytes N  disk for journal + checkpoints (default 1G; k/M/G); the\n"
	        "                       oldest segments before the newest checkpoint go first\n"
	        "  --checkpoint-events N  write a checkpoint every N events (default 1000000)\n"
	        "  --checkpoint-s SEC   ... or every SEC seconds when something changed (default 60)\n",
	        def);
}

/* ---- a session ---- */

struct gos_state {
	struct gos_state_opts o;
	int lock_fd;
	uint64_t seq;                /* the restored map's seq */
	struct gos_journal *journal;
};

static bool check_recording(const char *path, char *err, size_t errlen);

struct gos_state *gos_state_open(struct gos_state_opts *o, const struct gos_map_opts *mo,
                                 struct gos_map **map, char *err, size_t errlen)
{
	*map = NULL;
	struct gos_state *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->lock_fd = -1;
	if (!o->dir[0])
		gos_state_default_dir(o->dir, sizeof(o->dir));
	s->o = *o;
	if (o->no_journal) {
		*map = gos_map_create(mo);
		return s;
	}
	s->lock_fd = gos_state_lock(o->dir, err, errlen);
	if (s->lock_fd < 0)
		goto error;
	if (o->open_path && !check_recording(o->open_path, err, errlen))
		goto error;   /* a bad file changes nothing: the last session stays */
	if ((o->fresh || o->open_path) && !gos_state_keep_session(o->dir, err, errlen))
		goto error;
	struct gos_journal_restore_info info;
	*map = gos_journal_restore(o->dir, mo, &info, err, errlen);
	if (!*map)
		goto error;
	s->seq = info.seq;
	if (info.events || info.checkpoint_seq) {
		struct gos_map_stats st;
		gos_map_stats(*map, &st);
		gos_log_info("journal", "restored the last session from %s: %" PRIu64 " tokens, %" PRIu64
		             " streams (checkpoint at seq %" PRIu64 " + %" PRIu64 " journal events) in "
		             "%.2f s; seq continues after %" PRIu64, o->dir, st.live_tokens, st.streams,
		             info.checkpoint_seq, info.events, info.seconds, info.seq);
	}
	return s;
error:
	gos_state_close(s);
	return NULL;
}

bool gos_state_start(struct gos_state *s, struct gos_map *map, struct gos_queue *pool,
                     void (*on_sync)(void *, const struct gos_sync_ev *, uint64_t), void *ctx,
                     struct gos_journal **journal, char *err, size_t errlen)
{
	*journal = NULL;
	if (s->o.no_journal)
		return true;
	s->journal = gos_journal_start(&(struct gos_journal_opts){
		.dir = s->o.dir, .map = map, .pool = pool, .seq = s->seq,
		.max_bytes = s->o.max_bytes, .checkpoint_events = s->o.checkpoint_events,
		.checkpoint_s = s->o.checkpoint_s, .on_sync = on_sync, .ctx = ctx}, err, errlen);
	*journal = s->journal;
	return s->journal != NULL;
}

const char *gos_state_dir(const struct gos_state *s)
{
	return s->o.no_journal ? "" : s->o.dir;
}

void gos_state_close(struct gos_state *s)
{
	if (!s)
		return;
	gos_journal_stop(s->journal);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s);
}

/* Calls fn for each non-blank line of a recording; false at the first line
 * it rejects (err names the line). */
static bool each_line(const char *path, char *buf, size_t len, struct gos_arena **arena,
                      bool (*fn)(void *, struct gos_event *), void *ctx, char *err, size_t errlen)
{
	uint64_t line_no = 0;
	for (size_t off = 0; off < len;) {
		char *nl = memchr(buf + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - buf) : len;
		size_t n = end - off;
		line_no++;
		if (n && buf[off + n - 1] == '\r')
			n--;
		bool blank = true;
		for (size_t i = 0; i < n && blank; i++)
			blank = buf[off + i] == ' ' || buf[off + i] == '\t';
		if (!blank) {
			struct gos_parse_error perr;
			struct gos_event ev;
			if (!gos_protocol_parse(buf + off, n, &ev, *arena, &perr)) {
				snprintf(err, errlen, "%s line %" PRIu64 ": %s", path, line_no, perr.message);
				return false;
			}
			if (ev.type != GOS_EV_SYNC && ev.type != GOS_EV_SCREENSHOT && !fn(ctx, &ev))
				return false;
		}
		off = end + 1;
	}
	return true;
}

static bool check_only(void *ctx, struct gos_event *ev)
{
	(void)ev;
	gos_arena_reset(ctx);
	return true;
}

static bool check_recording(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *buf = gos_journal_read_file(path, &len, err, errlen);
	if (!buf)
		return false;
	struct gos_arena scratch = {0}, *sp = &scratch;
	bool ok = each_line(path, buf, len, &sp, check_only, &scratch, err, errlen);
	gos_arena_finish(&scratch);
	free(buf);
	return ok;
}

struct loader {
	struct gos_queue *queue;
	struct gos_batch *b;
	struct gos_arena *arena;     /* the current batch's: lines parse into it */
	uint64_t events;
};

static bool push_event(void *ctx, struct gos_event *ev)
{
	struct loader *l = ctx;
	*gos_batch_push(l->b) = *ev;
	l->events++;
	if (l->b->n < 4096)
		return true;
	if (!gos_queue_push(l->queue, l->b))
		return false;
	l->b = gos_queue_get_batch(l->queue);
	l->arena = &l->b->arena;
	return true;
}

bool gos_state_load_recording(const char *path, struct gos_queue *queue, uint64_t *events,
                              char *err, size_t errlen)
{
	*events = 0;
	size_t len;
	char *buf = gos_journal_read_file(path, &len, err, errlen);
	if (!buf)
		return false;
	/* gos_state_open checked the whole file: a bad line loaded nothing */
	bool ok = true;
	struct loader l = {.queue = queue};
	if (ok) {
		l.b = gos_queue_get_batch(queue);
		l.arena = &l.b->arena;
		ok = each_line(path, buf, len, &l.arena, push_event, &l, err, errlen);
	}
	if (ok && l.b && l.b->n && gos_queue_push(queue, l.b))
		l.b = NULL;
	if (l.b)
		gos_queue_put_batch(queue, l.b);
	*events = l.events;
	free(buf);
	return ok;
}
