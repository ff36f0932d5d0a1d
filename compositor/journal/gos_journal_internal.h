/* What the journal's files share: the writer's state (gos_journal.c), its
 * checkpoints and retention (journal_checkpoint.c). */
#ifndef GOS_JOURNAL_INTERNAL_H
#define GOS_JOURNAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "gos_buf.h"
#include "gos_journal.h"
#include "gos_metrics.h"

struct gos_journal {
	struct gos_journal_opts o;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;            /* guards the ring, leases and st */
	pthread_cond_t wake;             /* the thread: batches or a lease wanted */
	pthread_cond_t room;             /* the core: the ring has room */
	pthread_cond_t granted_cv;       /* the core: a lease is on disk */
	_Atomic bool stopping;
	struct gos_batch **ring;         /* max_batches */
	size_t head, count;
	uint64_t lease_requested, lease_written;
	_Atomic uint64_t lease_granted;
	struct gos_journal_stats st;
	/* each write(2) and fdatasync of a segment: the journal thread
	 * observes, /metrics reads (gos_journal_metrics) */
	struct gos_hist write_hist, fsync_hist;

	/* journal thread only */
	int seg_fd;
	uint64_t seg_bytes;
	uint64_t last_seq;               /* seq_last of the last event encoded */
	struct gos_buf wbuf, tkey;
	size_t wbuf_off;                 /* bytes of wbuf already written */
	bool unsynced;                   /* written since the last fdatasync */
	double last_sync;                /* gos_now_s() of the last one */
	pid_t child;                     /* a checkpoint being written, or 0 */
	uint64_t child_seq;
	uint64_t events_since_ckpt;
	double last_ckpt;                /* gos_now_s() of the last one started */
	/* paths made before fork(): the child formats nothing */
	char ckpt_dir[4096], ckpt_tmp[4160], ckpt_final[4160];
	size_t ckpt_name_at;             /* where the 20 digits go in ckpt_final */
};

void gos_journal_fsync_dir(const char *dir);

/* journal_checkpoint.c, journal thread only (init/finish: start and stop). */
bool gos_journal_checkpoint_init(struct gos_journal *j, char *err, size_t errlen);
void gos_journal_checkpoint_tick(struct gos_journal *j, uint64_t events);
void gos_journal_checkpoint_finish(struct gos_journal *j);

#endif
