/* GET /export (see gos_export.h). open lists the selected tokens' slots in
 * arrival order with their stream indexes (the map's places: no strings),
 * read formats BATCH of them at a time from the map as they are then. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_export.h"
#include "gos_protocol.h"

#define BATCH 1024

enum format { F_CSV, F_JSONL, F_TEXT };

struct pick {
	uint32_t slot;
	uint32_t index;            /* in its stream, among the tokens on the map */
	uint32_t stream;
	double arrived;
};

struct export {
	struct gos_map *map;
	enum format format;
	struct pick *picks;
	size_t n, at;
	char **names;              /* stream names by index */
	size_t n_names;
	struct gos_buf out;        /* formatted, not yet handed out */
	size_t out_off;
	struct gos_map_view view;
	bool header_done;
	bool range;                /* only tokens with a confidence in [min_p, max_p] */
	double min_p, max_p;
};

static void export_free(struct export *e)
{
	if (!e)
		return;
	free(e->picks);
	for (size_t i = 0; i < e->n_names; i++)
		free(e->names[i]);
	free(e->names);
	gos_buf_finish(&e->out);
	gos_map_view_finish(&e->view);
	free(e);
}

static int cmp_pick(const void *a, const void *b)
{
	const struct pick *x = a, *y = b;
	if (x->arrived != y->arrived)
		return x->arrived < y->arrived ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* "key=value" of the request; NULL when absent. */
static const char *arg(const char *const *args, int n, const char *key, bool *twice)
{
	size_t k = strlen(key);
	const char *v = NULL;
	for (int i = 0; i < n; i++)
		if (!strncmp(args[i], key, k) && args[i][k] == '=') {
			if (v)
				*twice = true;
			v = args[i] + k + 1;
		}
	return v;
}

static bool prob(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= 0.0 && v <= 1.0))
		return false;
	*out = v;
	return true;
}

static void *fail(struct export *e, struct gos_ws_download *d, int status, char *err,
                  size_t errlen, const char *msg)
{
	snprintf(err, errlen, "gos: export: %s", msg);
	d->status = status;
	export_free(e);
	return NULL;
}

static void *export_open(void *ctx, const char *const *args, int n_args,
                         struct gos_ws_download *d, char *err, size_t errlen)
{
	struct export *e = calloc(1, sizeof(*e));
	if (!e)
		abort();
	e->map = ctx;
	static const char *const known[] = {"format", "stream", "min_p", "max_p", "token"};
	for (int i = 0; i < n_args; i++) {
		bool ok = false;
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]) && !ok; k++)
			ok = !strncmp(args[i], known[k], strlen(known[k])) && args[i][strlen(known[k])] == '=';
		if (!ok) {
			char m[200];
			snprintf(m, sizeof(m), "unknown argument \"%.60s\" (format, stream, min_p, max_p)",
			         args[i]);
			return fail(e, d, 400, err, errlen, m);
		}
	}
	bool twice = false;
	const char *format = arg(args, n_args, "format", &twice);
	const char *stream = arg(args, n_args, "stream", &twice);
	const char *min_s = arg(args, n_args, "min_p", &twice), *max_s = arg(args, n_args, "max_p", &twice);
	if (twice)
		return fail(e, d, 400, err, errlen, "an argument given twice");
	if (!format)
		return fail(e, d, 400, err, errlen, "format=csv, jsonl or text is missing");
	if (!strcmp(format, "csv"))
		e->format = F_CSV;
	else if (!strcmp(format, "jsonl"))
		e->format = F_JSONL;
	else if (!strcmp(format, "text"))
		e->format = F_TEXT;
	else
		return fail(e, d, 400, err, errlen, "format must be csv, jsonl or text");
	if (e->format == F_TEXT && !stream)
		return fail(e, d, 400, err, errlen, "format=text needs stream=NAME");
	double min_p = 0.0, max_p = 1.0;
	bool range = min_s || max_s;
	if ((min_s && !prob(min_s, &min_p)) || (max_s && !prob(max_s, &max_p)) || min_p > max_p)
		return fail(e, d, 400, err, errlen, "min_p and max_p are probabilities, 0 <= min_p <= max_p <= 1");

	/* streams: names by index, and the one asked for */
	gos_map_read_streams(e->map, &e->view);
	e->n_names = e->view.n_streams ? e->view.streams[e->view.n_streams - 1].index + 1 : 0;
	e->names = calloc(e->n_names ? e->n_names : 1, sizeof(*e->names));
	if (!e->names)
		abort();
	int64_t want = -1;
	for (size_t i = 0; i < e->view.n_streams; i++) {
		const struct gos_stream *s = &e->view.streams[i];
		if (s->index < e->n_names && !(e->names[s->index] = strdup(s->name)))
			abort();
		if (stream && !strcmp(s->name, stream))
			want = s->index;
	}
	if (stream && want < 0) {
		char m[200];
		snprintf(m, sizeof(m), "no stream \"%.100s\" on the map", stream);
		return fail(e, d, 404, err, errlen, m);
	}

	/* the tokens: arrival order (each knows its index in its stream), then
	 * the probability range */
	size_t cap = 0;
	struct gos_place pl[4096];
	for (uint32_t at = 0; at != UINT32_MAX;) {
		size_t n = gos_map_read_places(e->map, at, pl, sizeof(pl) / sizeof(pl[0]), &at);
		for (size_t i = 0; i < n; i++) {
			if (want >= 0 && pl[i].stream != (uint32_t)want)
				continue;
			if (e->n == cap) {
				cap = cap ? cap * 2 : 4096;
				e->picks = realloc(e->picks, cap * sizeof(*e->picks));
				if (!e->picks)
					abort();
			}
			e->picks[e->n++] = (struct pick){pl[i].slot, pl[i].index, pl[i].stream,
			                                 pl[i].arrived};
		}
	}
	qsort(e->picks, e->n, sizeof(*e->picks), cmp_pick);
	/* the range is checked as each token is read: its confidence then */
	e->min_p = min_p;
	e->max_p = max_p;
	e->range = range;

	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	static const char *const ext[] = {"csv", "ndjson", "txt"};
	static const char *const mime[] = {"text/csv; charset=utf-8", "application/x-ndjson",
	                                   "text/plain; charset=utf-8"};
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(d->filename, sizeof(d->filename), "gos-%s.%s", stamp, ext[e->format]);
	d->mime = mime[e->format];
	return e;
}

/* ---- formatting ----------------------------------------------------------- */

/* A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
 * break, quotes doubled. */
static void csv_str(struct gos_buf *b, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		gos_buf_puts(b, s);
		return;
	}
	gos_buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"')
			gos_buf_putc(b, '"');
		gos_buf_putc(b, *s);
	}
	gos_buf_putc(b, '"');
}

static void csv_row(struct export *e, const struct gos_token *t, const char *stream, uint32_t index)
{
	struct gos_buf *b = &e->out;
	csv_str(b, t->id);
	gos_buf_putc(b, ',');
	csv_str(b, stream);
	gos_buf_putc(b, ',');
	gos_buf_u64(b, index);
	gos_buf_putc(b, ',');
	csv_str(b, t->text);
	gos_buf_putc(b, ',');
	if (!isnan(t->confidence))
		gos_buf_json_f32(b, t->confidence);
	gos_buf_putc(b, ',');
	if (!isnan(t->logprob))
		gos_buf_json_f32(b, t->logprob);
	gos_buf_putc(b, ',');
	if (t->rank && t->rank != GOS_RANK_BEYOND)
		gos_buf_u64(b, t->rank);
	gos_buf_putc(b, ',');
	gos_buf_json_f64(b, t->timestamp);
	gos_buf_putc(b, ',');
	gos_buf_json_f32(b, t->x);
	gos_buf_putc(b, ',');
	gos_buf_json_f32(b, t->y);
	gos_buf_puts(b, "\r\n");
}

/* A token_activation line (the ingest format, gos_protocol_write) with the
 * export's own fields after the producer's. */
static void jsonl_row(struct export *e, const struct gos_token *t, const char *stream, uint32_t index)
{
	struct gos_event ev = {.type = GOS_EV_TOKEN};
	ev.token = (struct gos_token_ev){
		.id = t->id, .text = t->text, .stream = stream, .timestamp = t->timestamp,
		.has_position = true, .x = t->x, .y = t->y, .confidence = t->confidence,
		.logprob = t->logprob, .n_alts = t->n_alts, .alts = t->alts,
	};
	struct gos_buf *b = &e->out;
	size_t start = b->len;
	if (!gos_protocol_write(b, &ev) || b->len == start || b->data[b->len - 1] != '}')
		return;
	b->len--;  /* reopen the object */
	gos_buf_puts(b, ",\"index\":");
	gos_buf_u64(b, index);
	if (t->rank && t->rank != GOS_RANK_BEYOND) {
		gos_buf_puts(b, ",\"rank\":");
		gos_buf_u64(b, t->rank);
	}
	gos_buf_puts(b, "}\n");
}

/* Formats the next batch of picks into e->out; false when none are left. */
static bool fill(struct export *e)
{
	if (!e->header_done) {
		e->header_done = true;
		if (e->format == F_CSV) {
			gos_buf_puts(&e->out, "id,stream,index,text,probability,logprob,rank,timestamp,x,y\r\n");
			return true;
		}
	}
	if (e->at >= e->n)
		return false;
	size_t n = e->n - e->at < BATCH ? e->n - e->at : BATCH;
	uint32_t slots[BATCH];
	for (size_t i = 0; i < n; i++)
		slots[i] = e->picks[e->at + i].slot;
	gos_map_read_slots(e->map, slots, n, &e->view);
	/* the view holds the tokens still there, in the order asked */
	size_t k = 0;
	for (size_t i = 0; i < n && k < e->view.n_tokens; i++) {
		const struct pick *p = &e->picks[e->at + i];
		const struct gos_token *t = &e->view.tokens[k];
		if (t->slot != p->slot)
			continue;  /* evicted since the open */
		k++;
		if (t->stream != p->stream)
			continue;  /* the slot holds another token now */
		if (e->range && !(t->confidence >= e->min_p && t->confidence <= e->max_p))
			continue;
		const char *stream = p->stream < e->n_names && e->names[p->stream] ? e->names[p->stream] : "";
		if (e->format == F_CSV)
			csv_row(e, t, stream, p->index);
		else if (e->format == F_JSONL)
			jsonl_row(e, t, stream, p->index);
		else
			gos_buf_puts(&e->out, t->text);
	}
	e->at += n;
	return true;
}

static long export_read(void *h, void *buf, size_t cap)
{
	struct export *e = h;
	while (e->out_off >= e->out.len) {
		gos_buf_clear(&e->out);
		e->out_off = 0;
		if (!fill(e))
			return 0;
	}
	size_t n = e->out.len - e->out_off < cap ? e->out.len - e->out_off : cap;
	memcpy(buf, e->out.data + e->out_off, n);
	e->out_off += n;
	return (long)n;
}

static void export_close(void *h)
{
	export_free(h);
}

void gos_export_stream(struct gos_ws_stream *st, struct gos_map *map)
{
	*st = (struct gos_ws_stream){export_open, export_read, export_close, map};
}

bool gos_export_save(struct gos_map *map, const char *format, const char *dir, char *msg,
                     size_t msglen)
{
	char arg[32], err[256];
	snprintf(arg, sizeof(arg), "format=%s", format);
	const char *args[] = {arg};
	struct gos_ws_download d = {0};
	struct export *e = export_open(map, args, 1, &d, err, sizeof(err));
	if (!e) {
		snprintf(msg, msglen, "%s", err);
		return false;
	}
	char path[4400];
	snprintf(path, sizeof(path), "%s/%s", dir, d.filename);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot save the export to %s: %s", path, strerror(errno));
		export_free(e);
		return false;
	}
	char buf[64 * 1024];
	uint64_t total = 0;
	long n;
	bool ok = true;
	while (ok && (n = export_read(e, buf, sizeof(buf))) > 0) {
		for (long off = 0; ok && off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			ok = w > 0;
			off += w > 0 ? w : 0;
		}
		total += (uint64_t)n;
	}
	int werr = ok ? 0 : errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		werr = errno;
	}
	export_free(e);
	if (!ok) {
		snprintf(msg, msglen, "cannot write the export %s: %s", path, strerror(werr));
		return false;
	}
	snprintf(msg, msglen, "export saved to %s (%llu bytes)", path, (unsigned long long)total);
	return true;
}
