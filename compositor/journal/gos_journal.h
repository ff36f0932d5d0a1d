/* The journal (docs/journal.md): every event the core applied, appended in
 * order with the seqs it produced, fsynced in groups before the sync replies
 * that cover it go out; background checkpoints; restore at start.
 *
 * Threads: gos_journal_restore() runs before any other thread touches the
 * map. After gos_journal_start(), the core thread calls gos_journal_lease()
 * and gos_journal_submit(); the journal's own thread writes; any thread may
 * call gos_journal_stats(). The scan and file helpers are reentrant. */
#ifndef GOS_JOURNAL_H
#define GOS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gos_buf.h"
#include "gos_event.h"
#include "gos_map.h"
#include "gos_queue.h"

/* ---- records ---- */

/* On disk, little-endian: u32 magic 'GOSJ', u32 payload length, u32 crc32c
 * of everything after it (type..payload), u8 type, u8 pad[3], u64 seq_first,
 * u64 seq_last, f64 t, then the payload. */
#define GOS_JREC_HEADER  40u
#define GOS_JREC_MAGIC   0x4a534f47u       /* "GOSJ" */
#define GOS_JREC_MAX     (GOS_MAX_LINE + 64u)  /* largest payload accepted */

enum gos_jrec_type {
	GOS_JREC_EVENT = 1,   /* payload: the event as one recording line (JSON with "_t") */
	GOS_JREC_LEASE = 2,   /* seq_last: the map may pass no seq above it; no payload */
};

struct gos_jrec {
	enum gos_jrec_type type;
	uint64_t seq_first;   /* EVENT: first seq it produced (seq_last + 1 when none) */
	uint64_t seq_last;    /* EVENT: the map seq once it was applied; LEASE: the bound */
	double t;             /* CLOCK_REALTIME seconds when the core applied it */
	const char *payload;  /* not NUL-terminated; lives as long as the scanned buffer */
	uint32_t len;
	size_t offset;        /* of the record in the scanned buffer */
};

enum gos_jscan_end {
	GOS_JSCAN_CLEAN = 0,  /* every byte was a whole valid record */
	GOS_JSCAN_TORN,       /* an unfinished record at the end (cut there) */
	GOS_JSCAN_CORRUPT,    /* a bad record with valid records after it */
	GOS_JSCAN_STOPPED,    /* the callback returned false */
};

struct gos_jscan {
	enum gos_jscan_end end;
	size_t good;          /* bytes of whole valid records before the end */
	uint64_t records;     /* records passed to the callback */
	char why[160];        /* TORN/CORRUPT: what was wrong, and where */
};

/* Returns false to stop the scan. */
typedef bool (*gos_jrec_fn)(void *ctx, const struct gos_jrec *rec);

/* Walks the records of one segment's bytes in order. Never reads outside
 * buf; any bytes at all are safe (fuzzed). */
void gos_journal_scan(const void *buf, size_t len, gos_jrec_fn fn, void *ctx,
                      struct gos_jscan *out);

/* Appends one record to w (header + payload). */
struct gos_buf;
void gos_journal_encode(struct gos_buf *w, enum gos_jrec_type type, uint64_t seq_first,
                        uint64_t seq_last, double t, const char *payload, uint32_t len);
/* The same in two steps, for a payload written straight into w: begin
 * leaves room for the header and returns where it is; append the payload;
 * end fills in the header and checksum. */
size_t gos_journal_begin(struct gos_buf *w);
void gos_journal_end(struct gos_buf *w, size_t at, enum gos_jrec_type type, uint64_t seq_first,
                     uint64_t seq_last, double t);

/* ---- the state dir ---- */

/* The files of a state dir, oldest first: segments (DIR/journal/SEQ.seg,
 * named by the first seq they may hold) and checkpoints
 * (DIR/checkpoint/SEQ.ckpt). Caller frees with gos_journal_files_finish. */
struct gos_journal_file {
	char *path;
	uint64_t seq;
	uint64_t bytes;
};

struct gos_journal_files {
	struct gos_journal_file *seg, *ckpt;
	size_t n_seg, n_ckpt;
};

bool gos_journal_list(const char *dir, struct gos_journal_files *out, char *err, size_t errlen);
void gos_journal_files_finish(struct gos_journal_files *f);

/* Reads a whole file into a malloc'd buffer (*len bytes); NULL with err. */
void *gos_journal_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* ---- restore ---- */

struct gos_journal_restore_info {
	uint64_t checkpoint_seq;   /* 0: none was loaded */
	uint64_t events;           /* journal records replayed after it */
	uint64_t seq;              /* where the map's seq continues */
	uint64_t torn_bytes;       /* cut off the last segment */
	bool corrupt;              /* a corrupt record stopped the restore */
	double seconds;
};

/* Builds the map of the state dir's last session: the newest readable
 * checkpoint, then the journal after it through gos_map_apply_seq; cuts a
 * torn tail; on a corrupt record keeps what came before and moves that
 * segment and the later ones to DIR/bad/. Logs progress to stderr every
 * second. An empty dir gives an empty map. NULL only when the dir cannot be
 * used (err says why). */
struct gos_map *gos_journal_restore(const char *dir, const struct gos_map_opts *map_opts,
                                    struct gos_journal_restore_info *info,
                                    char *err, size_t errlen);

/* ---- replay and reading (time travel: the seek worker, GET /recording) ---- */

/* Applies EVENT records to a map the way restore does (gos_protocol_parse,
 * gos_map_apply_seq in batches, gos_map_advance_seq over the gaps that
 * leases leave), skipping records at or below `base` (already in the map)
 * and stopping before the first record above `limit`. One thread at a time
 * (the map's writer). */
struct gos_jreplay;
struct gos_jreplay *gos_jreplay_create(struct gos_map *map, uint64_t base, uint64_t limit);
/* Accepts NULL. Flushes first. */
void gos_jreplay_destroy(struct gos_jreplay *r);
/* A gos_jrec_fn: false once a record is above the limit (not applied) or
 * does not parse (gos_jreplay_error). */
bool gos_jreplay_feed(void *r, const struct gos_jrec *rec);
/* Applies what is batched. */
void gos_jreplay_flush(struct gos_jreplay *r);
/* seq_last and t of the last record fed at or below the limit (applied or
 * skipped as below base); 0 and NAN when none. */
uint64_t gos_jreplay_last_seq(const struct gos_jreplay *r);
double gos_jreplay_last_t(const struct gos_jreplay *r);
/* Moves the limit (play: the next tick's). */
void gos_jreplay_set_limit(struct gos_jreplay *r, uint64_t limit);
/* NULL, or why a record did not parse. */
const char *gos_jreplay_error(const struct gos_jreplay *r);
/* Events applied so far. */
uint64_t gos_jreplay_events(const struct gos_jreplay *r);

/* Where a record starts: its segment (by name) and byte offset. */
struct gos_jpos {
	uint64_t seg;
	uint64_t off;
};

/* Reads a state dir's records in order across its segments through a
 * window (at most a few MiB in memory, never whole files), from any
 * record's position; sees segments and records written after it was
 * created. One thread at a time. */
struct gos_jreader;
struct gos_jreader *gos_jreader_create(const char *dir);
void gos_jreader_destroy(struct gos_jreader *r);  /* accepts NULL */
/* Goes to pos (the start of a record), or with NULL to the first record of
 * the oldest segment. */
void gos_jreader_at(struct gos_jreader *r, const struct gos_jpos *pos);
/* The next record (its payload valid until the next call) and where it
 * starts; false at the end of what is written so far (a record still
 * being written counts as not there), or on a corrupt record or a segment
 * that vanished (gos_jreader_error). Reads at most max_read bytes of file
 * per call (0: no bound; a false then may only mean "call again"). */
bool gos_jreader_next(struct gos_jreader *r, struct gos_jrec *rec, struct gos_jpos *pos,
                      size_t max_read);
/* Steps back over the record the last gos_jreader_next returned. */
void gos_jreader_unread(struct gos_jreader *r);
/* NULL, or what stopped the reader for good. */
const char *gos_jreader_error(const struct gos_jreader *r);
/* True when the last false of gos_jreader_next came from max_read. */
bool gos_jreader_wants_more(const struct gos_jreader *r);

/* ---- a session as a recording (journal_recording.c) ---- */

/* The dir's EVENT payloads up to seq `upto` (the journal's durable_seq), one
 * a line (docs/recording.md), handed out in pieces. One thread at a time. */
struct gos_jrecording;
struct gos_jrecording *gos_jrecording_open(const char *dir, uint64_t upto);
/* Up to cap bytes of the recording into buf, reading about 256 KiB of file
 * per call once it has bytes to give (a server's thread is not held long):
 * the bytes given (> 0), 0 at the end, -1 on an unreadable journal
 * (gos_jrecording_error). */
long gos_jrecording_read(struct gos_jrecording *r, void *buf, size_t cap);
const char *gos_jrecording_error(const struct gos_jrecording *r);
void gos_jrecording_close(struct gos_jrecording *r);   /* accepts NULL */

/* ---- the map as it was (journal_seek.c): time travel's building block ---- */

/* An index of a state dir's durable records (one entry per 64 events, with
 * where each starts), its files, and one cached map. One thread at a time
 * (the seek worker; gos-bench seek). */
struct gos_jseek;

/* Built maps get map_opts (max_tokens, layout) with a small change log. */
struct gos_jseek *gos_jseek_create(const char *dir, const struct gos_map_opts *map_opts);
void gos_jseek_destroy(struct gos_jseek *s);  /* accepts NULL; frees the cache */

/* Lists the files again and indexes the records up to `durable` (the
 * journal's durable_seq): call before each request. */
void gos_jseek_refresh(struct gos_jseek *s, uint64_t durable);

struct gos_jseek_range {
	uint64_t first;            /* the oldest seq a build can reach (0: the session's start) */
	uint64_t last;             /* the durable seq of the last refresh */
	double first_t, last_t;    /* times of the first and last durable events (NAN: none) */
	uint64_t last_event_seq;   /* seq_last of the last durable event */
};
void gos_jseek_range(const struct gos_jseek *s, struct gos_jseek_range *out);

/* Up to max (>= 2) samples (time, seq) across the session, the last one
 * being the last event: what a timeline maps time and seq with. */
size_t gos_jseek_points(const struct gos_jseek *s, double *t, uint64_t *seq, size_t max);

/* The seq of the state at time t (after the last event with its t <= t);
 * false when t lies outside the durable events' times. rd: any reader of
 * the dir (moved). */
bool gos_jseek_time_to_seq(struct gos_jseek *s, struct gos_jreader *rd, double t, uint64_t *seq);

/* A new map after every event with seq_last <= seq, from the cache when it
 * is at or before seq and no nearer checkpoint exists, else the nearest
 * usable checkpoint (or the session's start), replaying the journal from
 * the index entry there; rd is left just after the last event applied (a
 * play goes on from it). *t: that event's time (NAN: none). The caller owns
 * the map (give it back with gos_jseek_keep to cache it). NULL with err. */
struct gos_map *gos_jseek_build(struct gos_jseek *s, uint64_t seq, struct gos_jreader *rd,
                                double *t, char *err, size_t errlen);

/* Caches map (built at seq), replacing the cached one. */
void gos_jseek_keep(struct gos_jseek *s, struct gos_map *map, uint64_t seq);

/* ---- the native window's time travel (journal_travel.c) ---- */

/* The functions a gos_window_travel takes (ctx: the gos_travel), on the
 * window's thread: the session's span in CLOCK_REALTIME seconds, the map
 * at a time (the last one carried forward when it can be), giving it
 * back, and saving the session as DIR/gos-DATE.ndjson. */
struct gos_journal;
struct gos_travel;
struct gos_travel *gos_travel_create(const char *dir, struct gos_journal *journal,
                                     const struct gos_map_opts *map_opts);
void gos_travel_destroy(struct gos_travel *t);   /* accepts NULL */
bool gos_travel_span(void *t, double *t0, double *t1);
struct gos_map *gos_travel_at(void *t, struct gos_map *prev, double when, uint64_t *seq,
                              double *at, char *err, size_t errlen);
void gos_travel_release(void *t, struct gos_map *prev);
bool gos_travel_save(void *t, const char *dir, char *msg, size_t msglen);

/* ---- the writer ---- */

/* Zero means default for every field. */
struct gos_journal_opts {
	const char *dir;               /* required: the state dir */
	struct gos_map *map;           /* required: forked for checkpoints */
	struct gos_queue *pool;        /* required: written batches go back here */
	uint64_t segment_bytes;        /* 0: 64 MiB */
	uint64_t max_bytes;            /* 0: 1 GiB of segments + checkpoints */
	uint64_t checkpoint_events;    /* 0: 1,000,000 events */
	double checkpoint_s;           /* 0: 60 s (only when something changed) */
	uint32_t max_batches;          /* batches waiting to be written; 0: 64 */
	uint64_t seq;                  /* where the restored map's seq is */
	/* Called on the journal thread for each sync barrier once everything
	 * before it is on disk; tokens: the live tokens at the barrier. Must
	 * not block. */
	void (*on_sync)(void *ctx, const struct gos_sync_ev *sync, uint64_t tokens);
	void *ctx;
};

struct gos_journal;

struct gos_journal *gos_journal_start(const struct gos_journal_opts *opts, char *err,
                                      size_t errlen);

/* Writes what was submitted, answers its barriers, waits for a running
 * checkpoint, joins. Accepts NULL. */
void gos_journal_stop(struct gos_journal *j);

/* Core thread. Blocks until the map may reach seq `need` (a SEQ_LEASE
 * covering it is on disk); asks for the next lease early so that this
 * rarely waits. False once the journal is stopping. */
bool gos_journal_lease(struct gos_journal *j, uint64_t need);

/* The most seqs applying b can produce (what the core leases for it). */
uint64_t gos_journal_lease_bound(const struct gos_batch *b);

/* Core thread. Takes the applied batch (its seq_end and t filled in); it
 * goes back to the pool once written. Blocks while max_batches wait. */
void gos_journal_submit(struct gos_journal *j, struct gos_batch *b);

struct gos_journal_stats {
	uint64_t records, bytes, fsyncs, batches;
	uint64_t durable_seq;          /* every event up to it is on disk */
	uint64_t first_seq;            /* oldest seq a seek can reach */
	uint64_t checkpoints, checkpoint_failures;
	uint64_t checkpoint_seq;       /* newest checkpoint */
	uint64_t write_errors;
	uint64_t disk_bytes;           /* segments + checkpoints */
	uint64_t queued;               /* batches waiting to be written */
	bool stalled;                  /* writing fails (disk full, I/O error) */
	char reason[96];               /* why, when stalled */
};

/* Any thread. */
void gos_journal_stats(struct gos_journal *j, struct gos_journal_stats *out);

/* Any thread: appends the journal's histograms (gos_journal_write_seconds,
 * gos_journal_fsync_seconds: each write(2) and fdatasync of a segment) and
 * the state dir's file system (gos_journal_filesystem_avail_bytes,
 * gos_journal_filesystem_size_bytes: statvfs now, for "disk nearly full"). */
void gos_journal_metrics(struct gos_journal *j, struct gos_buf *out);

#endif
