/* Checkpoints (a fork()ed child writes the map's image, Redis's way) and
 * retention (--journal-max-bytes): journal thread only. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gos_log.h"
#include "gos_journal_internal.h"
#include "gos_time.h"

/* 20 decimal digits, without stdio (the fork child may not take locks). */
static void put_seq(char *p, uint64_t v)
{
	for (int i = 19; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* In the child: write the image, make it durable, rename it into place. */
static _Noreturn void child_write(struct gos_journal *j, uint64_t seq)
{
	char *tmp = j->ckpt_tmp, *fin = j->ckpt_final;
	put_seq(fin + j->ckpt_name_at, seq);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(2);
	bool ok = gos_map_image_write(j->o.map, fd) && fdatasync(fd) == 0;
	close(fd);
	if (!ok || rename(tmp, fin) != 0) {
		unlink(tmp);
		_exit(1);
	}
	int dfd = open(j->ckpt_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	_exit(0);
}

static void start_checkpoint(struct gos_journal *j)
{
	uint64_t seq = 0;
	pid_t pid = gos_map_fork(j->o.map, &seq);
	if (pid == 0)
		child_write(j, seq);
	j->last_ckpt = gos_now_s();
	if (pid < 0) {
		gos_log_warn("journal", "cannot fork for a checkpoint: %s; retrying later",
		             strerror(errno));
		pthread_mutex_lock(&j->lock);
		j->st.checkpoint_failures++;
		pthread_mutex_unlock(&j->lock);
		return;
	}
	j->child = pid;
	j->child_seq = seq;
	j->events_since_ckpt = 0;
}

/* Removes what --journal-max-bytes has no room for: segments wholly below
 * the newest checkpoint, oldest first, and the checkpoints that no longer
 * have the journal after them; never the newest checkpoint or anything
 * after it. */
static void retain(struct gos_journal *j)
{
	struct gos_journal_files f;
	char err[256];
	if (!gos_journal_list(j->o.dir, &f, err, sizeof(err)))
		return;
	uint64_t total = 0;
	for (size_t i = 0; i < f.n_seg; i++)
		total += f.seg[i].bytes;
	for (size_t i = 0; i < f.n_ckpt; i++)
		total += f.ckpt[i].bytes;
	uint64_t newest = f.n_ckpt ? f.ckpt[f.n_ckpt - 1].seq : 0;
	size_t first_seg = 0, first_ckpt = 0, removed = 0;
	while (total > j->o.max_bytes && f.n_ckpt) {
		/* segment i ends where segment i+1 starts */
		if (first_seg + 1 < f.n_seg && f.seg[first_seg + 1].seq <= newest + 1) {
			if (unlink(f.seg[first_seg].path) == 0) {
				total -= f.seg[first_seg].bytes;
				removed++;
			}
			first_seg++;
			continue;
		}
		if (first_ckpt + 1 < f.n_ckpt) {
			if (unlink(f.ckpt[first_ckpt].path) == 0) {
				total -= f.ckpt[first_ckpt].bytes;
				removed++;
			}
			first_ckpt++;
			continue;
		}
		break;
	}
	/* a checkpoint older than the journal's start can no longer be replayed from */
	uint64_t start = first_seg < f.n_seg ? f.seg[first_seg].seq : UINT64_MAX;
	while (first_ckpt + 1 < f.n_ckpt && f.ckpt[first_ckpt].seq + 1 < start) {
		if (unlink(f.ckpt[first_ckpt].path) == 0) {
			total -= f.ckpt[first_ckpt].bytes;
			removed++;
		}
		first_ckpt++;
	}
	pthread_mutex_lock(&j->lock);
	j->st.disk_bytes = total;
	if (start != UINT64_MAX)
		j->st.first_seq = start;
	pthread_mutex_unlock(&j->lock);
	if (removed && total > j->o.max_bytes)
		gos_log_warn("journal", "%" PRIu64 " bytes on disk, over --journal-max-bytes %" PRIu64
		             ": the newest checkpoint and the journal after it are kept",
		             total, j->o.max_bytes);
	gos_journal_files_finish(&f);
}

static void reap(struct gos_journal *j, bool wait)
{
	if (!j->child)
		return;
	int status = 0;
	pid_t r;
	do
		r = waitpid(j->child, &status, wait ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return;
	bool ok = r == j->child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	j->child = 0;
	pthread_mutex_lock(&j->lock);
	if (ok) {
		j->st.checkpoints++;
		j->st.checkpoint_seq = j->child_seq;
	} else {
		j->st.checkpoint_failures++;
	}
	pthread_mutex_unlock(&j->lock);
	if (!ok) {
		gos_log_warn("journal", "the checkpoint at seq %" PRIu64 " failed (%s); the journal "
		             "keeps everything, retrying later", j->child_seq,
		             WIFEXITED(status) && WEXITSTATUS(status) == 2 ? "cannot create its file"
		                                                          : "cannot write it");
		return;
	}
	retain(j);
}

bool gos_journal_checkpoint_init(struct gos_journal *j, char *err, size_t errlen)
{
	int n = snprintf(j->ckpt_dir, sizeof(j->ckpt_dir), "%s/checkpoint", j->o.dir);
	if (n < 0 || (size_t)n + 64 >= sizeof(j->ckpt_dir)) {
		snprintf(err, errlen, "the state dir path is too long: %s", j->o.dir);
		return false;
	}
	snprintf(j->ckpt_tmp, sizeof(j->ckpt_tmp), "%s/checkpoint.tmp", j->ckpt_dir);
	snprintf(j->ckpt_final, sizeof(j->ckpt_final), "%s/00000000000000000000.ckpt", j->ckpt_dir);
	j->ckpt_name_at = strlen(j->ckpt_dir) + 1;
	struct gos_journal_files f;
	if (!gos_journal_list(j->o.dir, &f, err, errlen))
		return false;
	uint64_t total = 0;
	for (size_t i = 0; i < f.n_seg; i++)
		total += f.seg[i].bytes;
	for (size_t i = 0; i < f.n_ckpt; i++)
		total += f.ckpt[i].bytes;
	j->st.disk_bytes = total;
	j->st.checkpoint_seq = f.n_ckpt ? f.ckpt[f.n_ckpt - 1].seq : 0;
	j->st.first_seq = f.n_seg ? f.seg[0].seq : j->o.seq + 1;
	gos_journal_files_finish(&f);
	return true;
}

void gos_journal_checkpoint_tick(struct gos_journal *j, uint64_t events)
{
	j->events_since_ckpt += events;
	reap(j, false);
	if (j->child || !j->events_since_ckpt || atomic_load(&j->stopping))
		return;
	if (j->events_since_ckpt >= j->o.checkpoint_events ||
	    gos_now_s() - j->last_ckpt >= j->o.checkpoint_s)
		start_checkpoint(j);
}

void gos_journal_checkpoint_finish(struct gos_journal *j)
{
	reap(j, true);
}
