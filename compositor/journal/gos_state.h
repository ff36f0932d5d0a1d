/* The state dir (--state-dir): its flags, its lock, the sessions --fresh
 * keeps, restoring the last session and running its journal. What main.c
 * calls; the journal itself is gos_journal.h.
 *
 * Threads: gos_state_open/start/close on the main thread, before and after
 * the other threads run. */
#ifndef GOS_STATE_H
#define GOS_STATE_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gos_journal.h"
#include "gos_map.h"
#include "gos_queue.h"

/* Zero means default for every field. */
struct gos_state_opts {
	char dir[4096];              /* "": gos_state_default_dir() */
	bool no_journal;             /* memory only, as before issue 11 */
	bool fresh;                  /* keep the last session aside, start empty */
	bool list_sessions;          /* --sessions: print them and exit */
	const char *open_path;       /* --open FILE: start from a recording */
	uint64_t max_bytes;          /* --journal-max-bytes */
	uint64_t checkpoint_events;  /* --checkpoint-events */
	double checkpoint_s;         /* --checkpoint-s */
};

/* getopt_long entries; option values start at GOS_STATE_OPT_BASE. */
enum {
	GOS_STATE_OPT_BASE = 0x1100,
	GOS_STATE_OPT_DIR = GOS_STATE_OPT_BASE, GOS_STATE_OPT_NO_JOURNAL, GOS_STATE_OPT_FRESH,
	GOS_STATE_OPT_SESSIONS, GOS_STATE_OPT_OPEN, GOS_STATE_OPT_MAX_BYTES,
	GOS_STATE_OPT_CKPT_EVENTS, GOS_STATE_OPT_CKPT_S, GOS_STATE_OPT_END_,
};

#define GOS_STATE_LONGOPTS                                                          \
	{"state-dir", required_argument, NULL, GOS_STATE_OPT_DIR},                  \
	{"no-journal", no_argument, NULL, GOS_STATE_OPT_NO_JOURNAL},                \
	{"fresh", no_argument, NULL, GOS_STATE_OPT_FRESH},                          \
	{"sessions", no_argument, NULL, GOS_STATE_OPT_SESSIONS},                    \
	{"open", required_argument, NULL, GOS_STATE_OPT_OPEN},                      \
	{"journal-max-bytes", required_argument, NULL, GOS_STATE_OPT_MAX_BYTES},    \
	{"checkpoint-events", required_argument, NULL, GOS_STATE_OPT_CKPT_EVENTS},  \
	{"checkpoint-s", required_argument, NULL, GOS_STATE_OPT_CKPT_S}

static inline bool gos_state_is_opt(int c)
{
	return c >= GOS_STATE_OPT_BASE && c < GOS_STATE_OPT_END_;
}

/* False with one sentence in err for a bad value. */
bool gos_state_parse_opt(struct gos_state_opts *o, int c, const char *arg, char *err,
                         size_t errlen);
/* The flags' lines for --help. */
void gos_state_usage(FILE *f);

/* The default state dir: $XDG_STATE_HOME/gos, else $HOME/.local/state/gos. */
void gos_state_default_dir(char *out, size_t cap);

/* Creates dir (and parents) and takes its lock for the process's life; -1
 * with err when another process holds it (err names --state-dir and
 * --no-journal) or the dir cannot be made. Returns the lock's fd. */
int gos_state_lock(const char *dir, char *err, size_t errlen);

/* Moves the dir's journal and checkpoints into DIR/sessions/DATE/ (a
 * recording kept by --fresh). False with err. */
bool gos_state_keep_session(const char *dir, char *err, size_t errlen);

/* Prints the kept sessions and the current one (time, events, bytes). */
void gos_state_print_sessions(const char *dir, FILE *out);

struct gos_state;

/* Takes the lock, keeps the last session aside for --fresh/--open, and
 * restores the map (an empty one with --no-journal). *map: the map to run
 * with (caller destroys it after gos_state_close). NULL with err. */
struct gos_state *gos_state_open(struct gos_state_opts *o, const struct gos_map_opts *map_opts,
                                 struct gos_map **map, char *err, size_t errlen);

/* Starts the journal (nothing with --no-journal); the returned journal (or
 * NULL) goes to gos_core_opts.journal. False with err. */
bool gos_state_start(struct gos_state *s, struct gos_map *map, struct gos_queue *pool,
                     void (*on_sync)(void *, const struct gos_sync_ev *, uint64_t), void *ctx,
                     struct gos_journal **journal, char *err, size_t errlen);

/* --open FILE: pushes the recording's events into queue (the core applies
 * and journals them like a producer's). False with err naming the line. */
bool gos_state_load_recording(const char *path, struct gos_queue *queue, uint64_t *events,
                              char *err, size_t errlen);

/* The state dir in use ("" with --no-journal). */
const char *gos_state_dir(const struct gos_state *s);

/* Stops the journal (after the core), releases the lock. Accepts NULL. */
void gos_state_close(struct gos_state *s);

#endif
