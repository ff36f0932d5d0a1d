/* gos_ws: RFC 6455 §5.1 for libwebsockets 4.1 (ws_internal.h). "A server
 * MUST close the connection upon receiving a frame that is not masked";
 * lws 4.1 reads such frames as if masked with zeros and gives its callers
 * no way to see the bit. Every byte it reads from a socket comes through
 * recv() (lws_ssl_capable_read_no_ssl), so this file defines recv() for the
 * program: the real system call, then, for the viewers' sockets being
 * watched, a frame-header tracker over the bytes as they go to lws (whose
 * stream starts at a frame boundary at the upgrade: a client sends nothing
 * before the 101). A frame without the mask bit marks the socket; the
 * viewer code closes it with 1002 before the frame reaches a callback.
 * Sockets not watched (and every other thread's recv) pay one array load.
 * TLS connections do not read through recv(): not checked. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ws_frames.h"
#include "ws_internal.h"

#define MAX_TABLE (1u << 22)   /* descriptors watched, at most (8 bytes each, lazily mapped) */

struct rxg {
	struct ws_frames f;        /* the service thread's only (lws reads there) */
	_Atomic bool unmasked;
	_Atomic bool watched;      /* kept when unwatched (never freed: another thread's
	                            * recv may hold it if the number is reused) */
};

/* Published once (release) and never freed: every thread's recv reads it. */
struct table {
	size_t n;
	_Atomic(struct rxg *) e[];
};

static _Atomic(struct table *) tab;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	struct rlimit rl;
	size_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
	           ? (size_t)rl.rlim_cur : 65536;
	if (n > MAX_TABLE)
		n = MAX_TABLE;
	struct table *t = calloc(1, sizeof(*t) + n * sizeof(t->e[0]));
	if (!t)
		return;  /* nothing is watched */
	t->n = n;
	atomic_store_explicit(&tab, t, memory_order_release);
}

/* The entry for fd, or NULL when fd is beyond the table (or none yet). */
static _Atomic(struct rxg *) *slot_of(int fd)
{
	struct table *t = atomic_load_explicit(&tab, memory_order_acquire);
	return t && fd >= 0 && (size_t)fd < t->n ? &t->e[fd] : NULL;
}

static void feed(struct rxg *g, const uint8_t *p, size_t n)
{
	ws_frames_feed(&g->f, p, n);
	if (g->f.unmasked)
		atomic_store_explicit(&g->unmasked, true, memory_order_relaxed);
}

/* The program's recv(): libwebsockets (and anyone else) gets the system
 * call's answer unchanged. */
ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	ssize_t n = syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
	_Atomic(struct rxg *) *e;
	if (n > 0 && !(flags & MSG_PEEK) && (e = slot_of(fd))) {
		struct rxg *g = atomic_load_explicit(e, memory_order_acquire);
		if (g && atomic_load_explicit(&g->watched, memory_order_acquire))
			feed(g, buf, (size_t)n);
	}
	return n;
}

bool ws_rxguard_watch(int fd)
{
	pthread_once(&once, table_init);
	_Atomic(struct rxg *) *e = slot_of(fd);
	if (!e)
		return false;
	struct rxg *g = atomic_load_explicit(e, memory_order_acquire);
	if (!g) {
		if (!(g = calloc(1, sizeof(*g))))
			abort();
		atomic_store_explicit(e, g, memory_order_release);
	}
	g->f = (struct ws_frames){0};
	atomic_store_explicit(&g->unmasked, false, memory_order_relaxed);
	atomic_store_explicit(&g->watched, true, memory_order_release);
	return true;
}

void ws_rxguard_unwatch(int fd)
{
	_Atomic(struct rxg *) *e = slot_of(fd);
	struct rxg *g = e ? atomic_load_explicit(e, memory_order_acquire) : NULL;
	if (g)
		atomic_store_explicit(&g->watched, false, memory_order_release);
}

bool ws_rxguard_unmasked(int fd)
{
	_Atomic(struct rxg *) *e = slot_of(fd);
	struct rxg *g = e ? atomic_load_explicit(e, memory_order_acquire) : NULL;
	return g && atomic_load_explicit(&g->watched, memory_order_acquire) &&
	       atomic_load_explicit(&g->unmasked, memory_order_relaxed);
}
