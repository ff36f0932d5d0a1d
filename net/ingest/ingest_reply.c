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
#include <unistd.h>

#include "gos_ingest_internal.h"

#define OUT_KEEP 4096u   /* reply buffer kept once flushed */

struct reply {
	uint64_t conn;
	char *text;
	struct reply *next;
};

/* ---- output ---- */

void ingest_out_append(struct conn *c, const char *s, size_t n)
{
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : OUT_KEEP;
		while (cap < c->out_len + n + 1)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out)
			abort();
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
	c->out[c->out_len++] = '\n';
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
				ingest_out_append(c, r->text, strlen(r->text));
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

void gos_ingest_sync_done(struct gos_ingest *in, uint64_t conn, uint64_t applied,
                          uint64_t rejected, uint64_t tokens)
{
	char *text = gos_protocol_sync_reply(applied, rejected, tokens);
	if (!text)
		abort();
	gos_ingest_reply(in, conn, text);
	free(text);
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
	pthread_mutex_lock(&in->lock);
	*in->replies_tail = r;
	in->replies_tail = &r->next;
	pthread_mutex_unlock(&in->lock);
	ingest_wake(in);
}
