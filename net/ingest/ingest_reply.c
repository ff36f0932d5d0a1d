/* What the ingest sends back (gos_ingest_internal.h): each connection's
 * output buffer (error lines, replies), and the inbox through which other
 * threads hand in replies to barriers (gos_ingest_reply()): the only
 * ingest state they touch, under gos_ingest.lock, with wake_fd to wake the
 * thread. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gos_ingest_internal.h"

#define OUT_KEEP 4096u   /* reply buffer kept once flushed */

/* A reply handed in: text, or (text NULL) a sync's counts, written in
 * the shape of the barrier it answers. */
struct reply {
	uint64_t conn;
	char *text;
	uint64_t applied, rejected, tokens;
	struct reply *next;
};

/* ---- output ---- */

uint64_t ingest_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ingest_out_append(struct conn *c, const char *s, size_t n)
{
	if (c->fr)
		c->framing = gos_frame_framing(c->fr);
	bool framed = c->framing == GOS_FRAMING_LE || c->framing == GOS_FRAMING_BE;
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n + 4 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : OUT_KEEP;
		while (cap < c->out_len + n + 4)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out)
			abort();
		c->out_cap = cap;
	}
	if (framed) {
		uint32_t len = (uint32_t)n;
		unsigned char h[4];
		for (int i = 0; i < 4; i++)
			h[c->framing == GOS_FRAMING_LE ? i : 3 - i] = (unsigned char)(len >> (8 * i));
		memcpy(c->out + c->out_len, h, 4);
		c->out_len += 4;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
	if (!framed)
		c->out[c->out_len++] = '\n';
}

/* The text of a sync reply, in the shape its barrier was asked in. */
static char *sync_text(struct conn *c, const struct reply *r)
{
	struct pending_sync *p = c->syncs;
	if (!p || p->dialect == GOS_GEO_NONE) {
		char *t = gos_protocol_sync_reply(r->applied, r->rejected, r->tokens);
		if (p) {
			c->syncs = p->next;
			free(p);
		}
		if (!c->syncs)
			c->syncs_tail = &c->syncs;
		return t;
	}
	char *t = gos_geo_sync_reply(p->dialect, p->sequence, r->applied, r->rejected, r->tokens,
	                             p->ignored, ingest_now_ms());
	c->syncs = p->next;
	if (!c->syncs)
		c->syncs_tail = &c->syncs;
	free(p);
	return t;
}

void ingest_out_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* The peer is gone: nothing more can be said to it. */
		c->out_off = c->out_len = 0;
		c->eof = true;
		break;
	}
	c->out_off = c->out_len = 0;
	if (c->out_cap > OUT_KEEP) {
		/* A burst of replies is over: give its memory back. */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}

/* ---- the reply inbox ---- */

void ingest_wake(struct gos_ingest *in)
{
	uint64_t one = 1;
	if (write(in->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread is awake anyway */
	}
}

void ingest_drain_replies(struct gos_ingest *in)
{
	pthread_mutex_lock(&in->lock);
	struct reply *r = in->replies;
	in->replies = NULL;
	in->replies_tail = &in->replies;
	pthread_mutex_unlock(&in->lock);
	while (r) {
		struct reply *next = r->next;
		for (struct conn *c = in->conns; c; c = c->next) {
			if (c->id == r->conn && !c->closing) {
				if (r->text) {
					ingest_out_append(c, r->text, strlen(r->text));
				} else {
					char *t = sync_text(c, r);
					if (!t)
						abort();
					ingest_out_append(c, t, strlen(t));
					free(t);
				}
				if (c->pending_replies)
					c->pending_replies--;
				ingest_out_flush(c);
				ingest_maybe_close(in, c);
				break;
			}
		}
		free(r->text);
		free(r);
		r = next;
	}
}

void ingest_free_replies(struct gos_ingest *in)
{
	struct reply *r = in->replies;
	while (r) {
		struct reply *next = r->next;
		free(r->text);
		free(r);
		r = next;
	}
	in->replies = NULL;
	in->replies_tail = &in->replies;
}

static void hand_in(struct gos_ingest *in, struct reply *r)
{
	pthread_mutex_lock(&in->lock);
	*in->replies_tail = r;
	in->replies_tail = &r->next;
	pthread_mutex_unlock(&in->lock);
	ingest_wake(in);
}

void gos_ingest_sync_done(struct gos_ingest *in, uint64_t conn, uint64_t applied,
                          uint64_t rejected, uint64_t tokens)
{
	/* Written on the ingest thread, which knows the shape it was asked in. */
	struct reply *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->conn = conn;
	r->applied = applied;
	r->rejected = rejected;
	r->tokens = tokens;
	hand_in(in, r);
}

void gos_ingest_reply(struct gos_ingest *in, uint64_t conn, const char *json_line)
{
	struct reply *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->conn = conn;
	size_t n = strlen(json_line);
	while (n && (json_line[n - 1] == '\n' || json_line[n - 1] == '\r'))
		n--;   /* ingest_out_append adds the one newline */
	r->text = malloc(n + 1);
	if (!r->text)
		abort();
	memcpy(r->text, json_line, n);
	r->text[n] = '\0';
	hand_in(in, r);
}
