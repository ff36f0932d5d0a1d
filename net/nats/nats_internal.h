/* Shared by the files of net/nats/ only. */
#ifndef GOS_NATS_INTERNAL_H
#define GOS_NATS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#define NATS_SUBJECT_MAX 512
#define NATS_CONSUMER "leader"

/* cluster upper case, '-' as '_', then suffix: NAME_INGEST, NAME_LOG... */
void nats_upper_name(const char *cluster, const char *suffix, char *out, size_t len);

/* The replicas of what a cluster creates (streams, the lease bucket): 3
 * when the connection knows 3 or more servers (a NATS cluster: one may
 * die), else 1. */
int nats_replicas(natsConnection *nc);

/* NAME_INGEST, upper case, '-' as '_'. */
void nats_stream_name(const char *cluster, char *out, size_t len);

/* NAME.ingest.<stream> (the default stream "" as "_"; '.', '*', '>', '%',
 * white space and control bytes percent-encoded). */
void nats_ingest_subject(const char *cluster, const char *stream, size_t n, char *out, size_t len);

/* One line in the log (gos_log, subsystem "nats"). */
void nats_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A connection's state as its callbacks see it. */
struct nats_watch {
	atomic_bool connected;
	atomic_uint_fast64_t reconnects;
	atomic_bool closing;     /* nats_close_watched: no "lost" line */
	atomic_bool closed;      /* libnats's closed callback ran: no callback follows */
};

#define NATS_SERVERS_MAX 16

/* o's servers: url is one or a comma-separated list. */
natsStatus nats_set_servers(natsOptions *o, const char *url);

/* Connects to url (one server or a comma-separated list), retrying in the background for ever when the server
 * is away (the call does not wait for it) and reconnecting after a loss;
 * each change is logged once and kept in w. */
natsStatus nats_connect_watched(const char *url, struct nats_watch *w, natsConnection **nc);

/* Closes and destroys nc, waiting (up to 5 s) for libnats's closed
 * callback: the callbacks run on libnats's own thread and take w, which the
 * caller frees next. Accepts NULL. */
void nats_close_watched(natsConnection *nc, struct nats_watch *w);

/* NAME_LOG: the change log (docs/scale-out.md). */
void nats_log_stream_name(const char *cluster, char *out, size_t len);

/* Checkpoints (docs/scale-out.md): the stream NAME_CKPT, subjects
 * NAME.ckpt.data (map images in NATS_CKPT_CHUNK parts, headers Gos-Ckpt-Seq,
 * Gos-Part, Gos-Parts) and NAME.ckpt.index (one JSON object a checkpoint:
 * seq, log_pos, first, parts, bytes, crc32c). */
#define NATS_CKPT_CHUNK (512u * 1024u)
bool nats_ensure_ckpt_stream(natsConnection *nc, jsCtx *js, const char *cluster, char *err,
                             size_t errlen);

/* Creates the cluster's change-log stream unless it exists. */
bool nats_ensure_log_stream(natsConnection *nc, jsCtx *js, const char *cluster, char *err, size_t errlen);

/* Creates the cluster's ingest stream unless it exists (any process may be
 * first). False with one sentence in err. */
bool nats_ensure_stream(natsConnection *nc, jsCtx *js, const char *cluster, char *err, size_t errlen);

#endif
