/* gos_ws: the viewers (ws_internal.h). Their queues of shared messages,
 * with backpressure (a viewer too far behind is resynced), delivery of what
 * publishers sent, writing (large messages in fragments), receiving and the
 * inbound rate limit (control frames counted from the socket's bytes), the
 * ping pass that closes stale viewers, and the gos.v1 protocol's callback. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <linux/sockios.h>
#include <linux/tcp.h>

#include <libwebsockets.h>

#include "gos_time.h"
#include "gos_viewer_proto.h"
#include "ws_internal.h"

#define WRITE_BUDGET     (512 * 1024)      /* bytes per writeable callback per viewer */
#define RATE_CLOSE_AFTER 1000              /* limited messages or frames in a row: close */
#define CTL_MIN_FRAME    6                 /* the smallest client frame: 2 + 4 (mask) */
#define CTL_SLACK        (2 * 4096 + 64)   /* frame bytes lws may hold before we see them */
#define CTL_CHECK_MS     20                /* looks at a viewer's byte count at most this often */
#define CLOSE_TRY_AGAIN  1013              /* RFC 6455 "Try Again Later" */
#define V2_BACKLOG       8                 /* gos.v2 viewers: backpressure x this messages */
#define SEND_FRAMES      32                /* frames per send at most */
#define DEFLATE_SLACK    64                /* what deflate can add to a message of 64 KiB */

/* ---- viewer queues (service thread) ------------------------------------- */

static struct gos_ws_msg *q_at(struct viewer *v, uint32_t i)
{
	return v->q[(v->q_head + i) % v->q_cap];
}

static bool q_push(struct gos_ws *ws, struct viewer *v, struct gos_ws_msg *m)
{
	uint32_t max = ws->opts.max_queued;
	if (v->q_len == v->q_cap) {
		if (v->q_cap >= max)
			return false;
		uint32_t cap = v->q_cap ? v->q_cap * 2 : 8;
		if (cap > max)
			cap = max;
		struct gos_ws_msg **q = malloc(cap * sizeof(*q));
		if (!q)
			abort();
		for (uint32_t i = 0; i < v->q_len; i++)
			q[i] = q_at(v, i);
		free(v->q);
		v->q = q;
		v->q_cap = cap;
		v->q_head = 0;
	}
	v->q[(v->q_head + v->q_len) % v->q_cap] = ws_msg_ref(m);
	v->q_len++;
	st_add(&ws->st.queued, 1);
	if (v->q_len > st_get(&ws->st.max_queue_seen))
		atomic_store_explicit(&ws->st.max_queue_seen, v->q_len, memory_order_relaxed);
	return true;
}

static void q_pop(struct gos_ws *ws, struct viewer *v)
{
	gos_ws_msg_unref(v->q[v->q_head]);
	v->q_head = (v->q_head + 1) % v->q_cap;
	v->q_len--;
	v->off = 0;
	atomic_fetch_sub_explicit(&ws->st.queued, 1, memory_order_relaxed);
}

/* Drops every queued message except one already partly written (a frame
 * cannot be abandoned halfway). Returns how many were dropped. */
static uint32_t q_drop_backlog(struct gos_ws *ws, struct viewer *v)
{
	uint32_t keep = v->off > 0 ? 1 : 0, dropped = 0;
	while (v->q_len > keep) {
		uint32_t last = (v->q_head + v->q_len - 1) % v->q_cap;
		gos_ws_msg_unref(v->q[last]);
		v->q_len--;
		dropped++;
	}
	atomic_fetch_sub_explicit(&ws->st.queued, dropped, memory_order_relaxed);
	return dropped;
}

static void q_free(struct gos_ws *ws, struct viewer *v)
{
	while (v->q_len)
		q_pop(ws, v);
	free(v->q);
	v->q = NULL;
	v->q_cap = 0;
}

static void viewer_want_write(struct viewer *v)
{
	struct gos_ws *ws = lws_context_user(lws_get_context(v->wsi));
	v->write_asked = true;
	if (ws->delivering && v->plain) {
		/* written by ws_viewer_flush once the inbox is delivered */
		if (!v->flush_listed) {
			v->flush_listed = true;
			v->flush_next = ws->flush;
			ws->flush = v;
		}
		return;
	}
	lws_callback_on_writable(v->wsi);
}

/* The viewer fell behind (or the publisher lost track): drop its backlog,
 * tell it, and wait for a snapshot. */
static void viewer_resync(struct gos_ws *ws, struct viewer *v, uint32_t extra_dropped)
{
	st_add(&ws->st.drops, q_drop_backlog(ws, v) + extra_dropped);
	st_add(&ws->st.resyncs, 1);
	q_push(ws, v, ws->resync);
	v->state = V_WAITING;
	v->requested = false;
	viewer_want_write(v);
}

static void viewer_close(struct viewer *v, int code, const char *reason)
{
	if (v->close_code)
		return;
	v->close_code = code;
	snprintf(v->close_reason, sizeof(v->close_reason), "%s", reason);
	viewer_want_write(v);
}

void ws_viewer_revoke(struct gos_ws *ws)
{
	for (struct viewer *v = ws->viewers; v; v = v->next)
		if (v->account && !v->account->present && !v->close_code)
			viewer_close(v, LWS_CLOSE_STATUS_POLICY_VIOLATION, "user removed");
}

/* A waiting viewer whose queue drained asks for a snapshot. */
static void viewer_maybe_request(struct gos_ws *ws, struct viewer *v)
{
	if (v->state == V_WAITING && !v->requested && v->q_len == 0 && !v->close_code) {
		v->requested = true;
		atomic_fetch_add_explicit(v->v2 ? &ws->snapshot_requests_v2 : &ws->snapshot_requests, 1,
		                          memory_order_release);
	}
}

/* ---- gos.v2 routing ---- */

#define VP_ALL (GOS_VIEWER_VP_X | GOS_VIEWER_VP_Y | GOS_VIEWER_VP_W | GOS_VIEWER_VP_H | \
                GOS_VIEWER_VP_ZOOM)

/* Tells the broadcaster the viewer's viewport, or with forget to forget
 * it. The first one after a snapshot says what the snapshot left it
 * holding (its overview tiles only). */
static void v2_viewport(struct gos_ws *ws, struct viewer *v, bool forget)
{
	if (!ws->opts.viewport || !v->v2)
		return;
	if (forget) {
		ws->opts.viewport(ws->opts.cb_ctx, v->id, v->view_gen, NULL, -1);
		v->told_gen = 0;
	} else if (v->has_viewport && v->state == V_LIVE && v->view_gen) {
		int reset_ov = v->told_gen != v->view_gen ? v->held.overview_level : -1;
		v->told_gen = v->view_gen;
		ws->opts.viewport(ws->opts.cb_ctx, v->id, v->view_gen, &v->viewport, reset_ov);
	}
}

/* A gos.v2 viewer got a live snapshot: it holds the overview tiles only. */
static void v2_snapshot(struct gos_ws *ws, struct viewer *v, int32_t overview_level)
{
	v->view_gen++;
	v->held = (struct gos_ws_region){.view_gen = v->view_gen, .overview_level = overview_level,
	                                 .view_level = -1, .cells = GOS_V2_RECT_NONE,
	                                 .tiles = GOS_V2_RECT_NONE};
	v2_viewport(ws, v, false);
}

static bool v2_wants(const struct viewer *v, const struct inbox_item *it)
{
	switch (it->route) {
	case GOS_WS_V2_ALL:
		return true;
	case GOS_WS_V2_LEVEL:
		return it->a == v->held.overview_level || it->a == v->held.view_level;
	case GOS_WS_V2_CELLS: {
		const struct gos_v2_rect *h = &v->held.cells, *r = &it->rect;
		return !gos_v2_rect_empty(h) && r->x0 <= h->x1 && r->x1 >= h->x0 &&
		       r->y0 <= h->y1 && r->y1 >= h->y0;
	}
	}
	return false;
}

/* The first snapshot of a viewer is followed by the timeline. */
static void viewer_got_snapshot(struct gos_ws *ws, struct viewer *v)
{
	if (!v->had_snapshot && ws->timeline)
		q_push(ws, v, ws->timeline);
	v->had_snapshot = true;
}

/* Back to live deltas: a live snapshot once what is queued is out. What was
 * sent to it alone before (older generations) is dropped on arrival. */
static void viewer_go_live(struct gos_ws *ws, struct viewer *v)
{
	v->gen++;
	v->state = V_WAITING;
	v->requested = false;
	viewer_maybe_request(ws, v);
	viewer_want_write(v);
}

/* The server sent a viewer back to live on its own (backpressure): the
 * request callback hears of it as a `live`. */
static void viewer_tell_live(struct gos_ws *ws, struct viewer *v)
{
	if (ws->opts.request) {
		struct gos_viewer_in in = {.type = GOS_VIEWER_IN_LIVE};
		ws->opts.request(ws->opts.cb_ctx, v->id, v->gen, &in);
	}
}

static void viewer_private(struct gos_ws *ws, struct viewer *v, const struct inbox_item *it)
{
	if (it->gen != v->gen && it->send != GOS_WS_SEND_ANSWER)
		return;  /* from before the viewer went live again */
	switch (it->send) {
	case GOS_WS_SEND_LIVE:
		viewer_go_live(ws, v);
		return;
	case GOS_WS_SEND_SNAPSHOT:
		q_drop_backlog(ws, v);
		q_push(ws, v, it->msg);
		if (v->state == V_LIVE)
			v2_viewport(ws, v, true);
		v->state = V_PRIVATE;
		v->requested = false;
		st_add(&ws->st.snapshots_sent, 1);
		viewer_got_snapshot(ws, v);
		viewer_want_write(v);
		return;
	case GOS_WS_SEND_MESSAGE:
	case GOS_WS_SEND_ANSWER:
		if (v->q_len + 1 > ws->opts.backpressure || !q_push(ws, v, it->msg)) {
			/* a playing viewer that cannot keep up goes back to live */
			v->gen++;
			viewer_resync(ws, v, 1);
			viewer_tell_live(ws, v);
			return;
		}
		viewer_want_write(v);
		return;
	}
}

/* ---- delivery (the inbox, drained) -------------------------------------- */

void ws_viewer_deliver(struct gos_ws *ws, const struct inbox_item *it)
{
	if (it->kind == ITEM_TIMELINE) {
		gos_ws_msg_unref(ws->timeline);
		ws->timeline = ws_msg_ref(it->msg);
	}
	for (struct viewer *v = ws->viewers; v; v = v->next) {
		if (!v->counted || v->close_code)
			continue;
		switch (it->kind) {
		case ITEM_VIEWER:
			if (v->id == it->viewer)
				viewer_private(ws, v, it);
			break;
		case ITEM_TIMELINE:
			if (v->had_snapshot && v->q_len + 1 <= ws->opts.backpressure &&
			    q_push(ws, v, it->msg))
				viewer_want_write(v);
			break;
		case ITEM_V2:
			if (!v->v2 || v->state != V_LIVE || !v2_wants(v, it))
				break;
			/* a gos.v2 tick is several messages: the bound counts more */
			if (v->q_len + 1 > V2_BACKLOG * ws->opts.backpressure || !q_push(ws, v, it->msg)) {
				viewer_resync(ws, v, 1);
				break;
			}
			viewer_want_write(v);
			break;
		case ITEM_REGION:
			if (!v->v2 || v->id != it->viewer || v->state != V_LIVE ||
			    v->view_gen != it->region.view_gen)
				break;
			if (v->q_len + 1 > V2_BACKLOG * ws->opts.backpressure || !q_push(ws, v, it->msg)) {
				viewer_resync(ws, v, 1);
				break;
			}
			v->held = it->region;
			viewer_want_write(v);
			break;
		case ITEM_DELTA:
			if (v->v2 || v->state != V_LIVE)
				break;
			if (v->q_len + 1 > ws->opts.backpressure || !q_push(ws, v, it->msg)) {
				viewer_resync(ws, v, 1);
				break;
			}
			viewer_want_write(v);
			break;
		case ITEM_SNAPSHOT:
		case ITEM_SNAPSHOT_V2:
			if (v->v2 != (it->kind == ITEM_SNAPSHOT_V2) || v->state != V_WAITING ||
			    !v->requested)
				break;
			q_push(ws, v, it->msg);
			v->state = V_LIVE;
			v->requested = false;
			st_add(&ws->st.snapshots_sent, 1);
			viewer_got_snapshot(ws, v);
			if (v->v2)
				v2_snapshot(ws, v, it->a);
			viewer_want_write(v);
			break;
		case ITEM_SNAPSHOT_ALL:
		case ITEM_SNAPSHOT_ALL_V2:
			if (v->v2 != (it->kind == ITEM_SNAPSHOT_ALL_V2))
				break;
			if (v->state == V_PRIVATE) {
				/* the publisher lost track: everyone starts over live */
				v->gen++;
				viewer_tell_live(ws, v);
			}
			if (v->state != V_WAITING || v->q_len > 0) {
				st_add(&ws->st.drops, q_drop_backlog(ws, v));
				st_add(&ws->st.resyncs, 1);
				q_push(ws, v, ws->resync);
			}
			q_push(ws, v, it->msg);
			v->state = V_LIVE;
			v->requested = false;
			st_add(&ws->st.snapshots_sent, 1);
			viewer_got_snapshot(ws, v);
			if (v->v2)
				v2_snapshot(ws, v, it->a);
			viewer_want_write(v);
			break;
		}
	}
}

void ws_viewer_resync_live(struct gos_ws *ws)
{
	for (struct viewer *v = ws->viewers; v; v = v->next) {
		if (!v->counted || v->close_code || v->state == V_WAITING)
			continue;
		if (v->state == V_PRIVATE) {
			/* what was sent to it alone may be lost too */
			v->gen++;
			viewer_tell_live(ws, v);
		}
		viewer_resync(ws, v, 0);
	}
}

/* ---- inbound: rate limits, control frames, messages --------------------- */

/* Takes n tokens from the viewer's inbound bucket (rx_rate a second,
 * rx_burst deep): whole messages, further fragments of a message and
 * control frames all pay. Returns how many were over the limit; after
 * RATE_CLOSE_AFTER over in a row the viewer is closed (1008) and no longer
 * read, so that a flood costs nothing while the close goes out. */
static uint64_t rx_charge(struct gos_ws *ws, struct viewer *v, uint64_t n)
{
	uint64_t now = gos_now_ms();
	double rate = ws->opts.rx_rate, burst = ws->opts.rx_burst;
	v->bucket += (double)(now - v->bucket_ms) * rate / 1000.0;
	if (v->bucket > burst)
		v->bucket = burst;
	v->bucket_ms = now;
	uint64_t ok = v->bucket >= (double)n ? n : (uint64_t)v->bucket;
	v->bucket -= (double)ok;
	uint64_t over = n - ok;
	if (!over) {
		v->limited_in_row = 0;
		return 0;
	}
	st_add(&ws->st.inbound_limited, over);
	v->limited_in_row = over >= RATE_CLOSE_AFTER ? RATE_CLOSE_AFTER
	                                             : v->limited_in_row + (uint32_t)over;
	if (v->limited_in_row >= RATE_CLOSE_AFTER && !v->close_code) {
		st_add(&ws->st.closed_rate, 1);
		viewer_close(v, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit exceeded");
		lws_rx_flow_control(v->wsi, 0);
		lws_set_timeout(v->wsi, PENDING_TIMEOUT_CLOSE_SEND, 1);
	}
	return over;
}

/* Bytes the peer sent that have left the socket for lws (Linux 4.1+). */
static bool wire_bytes(int fd, uint64_t *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int inq = 0;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received) ||
	    ioctl(fd, SIOCINQ, &inq) || inq < 0 || (uint64_t)inq > ti.tcpi_bytes_received)
		return false;
	*out = ti.tcpi_bytes_received - (uint64_t)inq;
	return true;
}

/* The wire size of a client's data frame with this payload. */
static uint64_t frame_wire(uint64_t payload)
{
	return payload + 2 + 4 + (payload >= 65536 ? 8 : payload >= 126 ? 2 : 0);
}

/* The wire bytes of the data in progress that we were given. With deflate
 * lws hands us inflated bytes and the wire size is not known, only bounded
 * (viewer_receive): the inflated size (plus what deflate can add) but no
 * more than lws can have read of the message. */
static uint64_t rx_in_progress(const struct viewer *v)
{
	if (!v->deflate)
		return v->frame_len;
	if (!v->in_msg)
		return 0;
	return v->frame_len + DEFLATE_SLACK < v->msg_wire_max ? v->frame_len + DEFLATE_SLACK
	                                                     : v->msg_wire_max;
}

/* Control frames. lws answers pings (and swallows empty pongs and the
 * close handshake) inside its parser and tells us nothing, so a ping flood
 * would cost no token. But every byte the viewer sent reaches us as data
 * frames or pongs except those: the socket's byte count (TCP_INFO) minus
 * what we were given is control frames, at least CTL_MIN_FRAME bytes each.
 * That many frames (an upper bound) are charged to the bucket, once past
 * CTL_SLACK, the bytes lws may hold of a frame not yet handed to us. */
static void viewer_check_control(struct gos_ws *ws, struct viewer *v)
{
	uint64_t now = gos_now_ms(), wire;
	if (now - v->wire_ms < CTL_CHECK_MS || v->close_code || v->fd < 0)
		return;
	v->wire_ms = now;
	if (!wire_bytes(v->fd, &wire) || wire < v->wire_base)
		return;
	uint64_t got = wire - v->wire_base,
		 known = v->data_wire + rx_in_progress(v) + CTL_SLACK + v->ctl_charged;
	if (got < known + CTL_MIN_FRAME)
		return;
	uint64_t frames = (got - known) / CTL_MIN_FRAME;
	v->ctl_charged += frames * CTL_MIN_FRAME;
	st_add(&ws->st.inbound_control, frames);
	rx_charge(ws, v, frames);
}

void ws_viewer_scan(struct gos_ws *ws, uint64_t now_ms)
{
	for (struct viewer *v = ws->viewers; v; v = v->next) {
		/* an unmasked control frame reaches no callback: found here */
		if (!v->close_code && ws_rxguard_unmasked(v->sock)) {
			st_add(&ws->st.closed_unmasked, 1);
			viewer_close(v, LWS_CLOSE_STATUS_PROTOCOL_ERR, "unmasked client frame");
			lws_set_timeout(v->wsi, PENDING_TIMEOUT_CLOSE_SEND, 1);
			continue;
		}
		uint32_t every = v->wire_every_ms ? v->wire_every_ms : CTL_SCAN_MS;
		if (now_ms - v->wire_ms < every)
			continue;
		viewer_check_control(ws, v);
		/* Nothing came from it since the last look: look less often. */
		uint64_t seen = v->data_wire + v->ctl_charged;
		v->wire_every_ms = seen != v->wire_seen ? CTL_SCAN_MS
		                   : every * 2 < CTL_SCAN_MAX_MS ? every * 2 : CTL_SCAN_MAX_MS;
		v->wire_seen = seen;
	}
}

/* Over its user's rate= (all the user's viewers together): dropped,
 * counted, and the viewer told at most once a second. */
static bool user_limited(struct gos_ws *ws, struct viewer *v)
{
	uint64_t now = gos_now_ms();
	if (ws_account_charge(v->account, now))
		return false;
	st_add(&ws->st.inbound_limited, 1);
	if (now - v->limited_ms >= 1000) {
		v->limited_ms = now;
		struct gos_buf out = {0};
		gos_viewer_error(&out, "rate_limited", "your user's viewers sent more messages than "
		                 "its rate allows; this one was dropped");
		struct gos_ws_msg *m = gos_ws_msg_create(out.data, out.len);
		gos_buf_finish(&out);
		q_push(ws, v, m);
		gos_ws_msg_unref(m);
		viewer_want_write(v);
	}
	return true;
}

static void viewer_handle(struct gos_ws *ws, struct viewer *v, const char *msg, size_t len)
{
	if (v->account)
		v->account->inbound++;
	if (rx_charge(ws, v, 1))
		return;  /* over the limit: dropped */
	if (user_limited(ws, v))
		return;

	struct gos_viewer_in in;
	switch (gos_viewer_parse(msg, len, &in)) {
	case GOS_VIEWER_IN_VIEWPORT:
		gos_viewer_viewport_update(&v->viewport, &in);
		v->vp_bits |= in.viewport_has;
		v->has_viewport = (v->vp_bits & VP_ALL) == VP_ALL;
		v2_viewport(ws, v, false);
		break;
	case GOS_VIEWER_IN_PING: {
		/* Lets a viewer measure its round trip: the reply echoes `t`. */
		struct gos_buf out = {0};
		gos_viewer_pong(&out, in.ping_t);
		gos_ws_msg_unref(v->reply);
		v->reply = gos_ws_msg_create(out.data, out.len);
		gos_buf_finish(&out);
		viewer_want_write(v);
		break;
	}
	case GOS_VIEWER_IN_BAD: {
		struct gos_buf out = {0};
		gos_viewer_error(&out, "bad_request", in.bad);
		struct gos_ws_msg *m = gos_ws_msg_create(out.data, out.len);
		gos_buf_finish(&out);
		q_push(ws, v, m);
		gos_ws_msg_unref(m);
		viewer_want_write(v);
		break;
	}
	case GOS_VIEWER_IN_LIVE:
		viewer_go_live(ws, v);
		/* the worker stops what it plays for the viewer */
		__attribute__((fallthrough));
	case GOS_VIEWER_IN_SEEK:
	case GOS_VIEWER_IN_PLAY:
	case GOS_VIEWER_IN_PAUSE:
	case GOS_VIEWER_IN_SEARCH:
		if (ws->opts.request)
			ws->opts.request(ws->opts.cb_ctx, v->id, v->gen, &in);
		else
			st_add(&ws->st.inbound_ignored, 1);
		break;
	case GOS_VIEWER_IN_IGNORED:
		st_add(&ws->st.inbound_ignored, 1);
		break;
	}
}

/* With deflate, lws inflates a message into pieces of 1 KiB and calls us
 * for each, the last ones after the whole frame is read: frames cannot be
 * told apart, so a message is accounted for as a whole (and its further
 * frames, if any, pay through the bytes they take on the wire). Its wire
 * size is bounded by what lws had left to read of it when it first called
 * us plus the one buffer it had read: exact for a frame over WS_RX_BUF, at
 * most WS_RX_BUF too generous for a smaller one. */
static bool rx_deflate(struct viewer *v, struct lws *wsi, size_t len)
{
	if (!v->in_msg) {
		v->in_msg = true;
		v->msg_wire_max = lws_remaining_packet_payload(wsi) + WS_RX_BUF;
	}
	v->frame_len += len;
	if (!lws_is_final_fragment(wsi))
		return false;
	v->data_wire += frame_wire(rx_in_progress(v));
	v->frame_len = 0;
	v->in_msg = false;
	return true;
}

/* RFC 6455 §5.1: a client frame without the mask bit closes with 1002
 * before anything of it is used. */
static bool viewer_unmasked(struct gos_ws *ws, struct viewer *v, struct lws *wsi)
{
	if (!ws_rxguard_unmasked(v->sock))
		return false;
	st_add(&ws->st.closed_unmasked, 1);
	static const char r[] = "unmasked client frame";
	lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)r, sizeof(r) - 1);
	return true;
}

static int viewer_receive(struct gos_ws *ws, struct viewer *v, struct lws *wsi,
                          const void *in, size_t len)
{
	v->alive_ms = gos_now_ms();
	bool frame_done;
	if (v->deflate) {
		frame_done = rx_deflate(v, wsi, len);
	} else {
		v->frame_len += len;
		frame_done = !lws_remaining_packet_payload(wsi);
		if (frame_done) {
			v->data_wire += frame_wire(v->frame_len);
			v->frame_len = 0;
		}
	}
	if (v->close_code)
		return 0;
	if (v->rx_len + len > GOS_WS_MAX_INBOUND) {
		st_add(&ws->st.closed_oversize, 1);
		free(v->rx);
		v->rx = NULL;
		v->rx_len = 0;
		static const char r[] = "message over 64 KiB";
		if (v->deflate) {
			/* lws calls us for inflated pieces from a path that ignores
			 * what we return: the close goes out from the writeable
			 * callback, and nothing more is read (or inflated) meanwhile. */
			viewer_close(v, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, r);
			lws_rx_flow_control(wsi, 0);
			lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, 1);
			return 0;
		}
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
		                 (unsigned char *)r, sizeof(r) - 1);
		return -1;
	}
	if (!v->rx) {
		v->rx = malloc(GOS_WS_MAX_INBOUND);
		if (!v->rx)
			abort();
	}
	memcpy(v->rx + v->rx_len, in, len);
	v->rx_len += len;
	v->bytes_in += len;
	viewer_check_control(ws, v);
	if (!frame_done)
		return 0;
	if (!v->deflate && !lws_is_final_fragment(wsi)) {
		rx_charge(ws, v, 1);  /* a fragment is a frame to pay for too */
		return 0;
	}
	st_add(&ws->st.inbound, 1);
	viewer_handle(ws, v, (const char *)v->rx, v->rx_len);
	v->rx_len = 0;
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

/* The header of a server frame (unmasked) into h; returns its length. */
static size_t frame_header(unsigned char *h, bool first, bool fin, bool binary, size_t len)
{
	unsigned op = first ? (binary ? 0x2 : 0x1) : 0x0;  /* binary, text, continuation */
	h[0] = (unsigned char)((fin ? 0x80 : 0) | op);
	if (len < 126) {
		h[1] = (unsigned char)len;
		return 2;
	}
	if (len < 65536) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	return 10;
}

/* A frame of a send being built: where its bytes end in the send, and the
 * queue once it is out (whole messages done, bytes of the next framed). */
struct frame_mark {
	size_t end;
	uint32_t popped;
	size_t off;
	struct gos_ws_msg *first;      /* the queued message this frame begins */
};

/* Writes a plain viewer's reply and queue from the shared bytes: up to
 * SEND_FRAMES frames and about WRITE_BUDGET bytes (messages over WS_CHUNK
 * in fragments), headers and payloads in one sendmsg, nothing copied. A
 * frame the socket took only part of is finished by lws: its remainder is
 * handed over raw, and lws sends what it holds before anything of its own
 * (pongs, the close), so lws always sees the stream at a frame boundary.
 * Frames the socket took nothing of stay queued. Returns -1 when the
 * connection is broken. */
static int viewer_send(struct gos_ws *ws, struct viewer *v, struct lws *wsi)
{
	struct iovec iov[2 * SEND_FRAMES];
	unsigned char hdr[SEND_FRAMES][10];
	struct frame_mark mark[SEND_FRAMES];
	int n_iov = 0, n = 0;
	size_t total = 0, off = v->off;
	uint32_t popped = 0;
	bool reply = v->reply && v->off == 0;
	if (reply) {
		struct gos_ws_msg *m = v->reply;
		size_t hl = frame_header(hdr[0], true, true, m->binary, m->len);
		iov[n_iov++] = (struct iovec){hdr[0], hl};
		iov[n_iov++] = (struct iovec){m->data, m->len};
		total = hl + m->len;
		mark[n++] = (struct frame_mark){total, 0, 0, NULL};
	}
	while (popped < v->q_len && n < SEND_FRAMES && total < WRITE_BUDGET) {
		struct gos_ws_msg *m = q_at(v, popped);
		struct gos_ws_msg *frame_first = off == 0 ? m : NULL;
		size_t len = m->len - off < WS_CHUNK ? m->len - off : WS_CHUNK;
		bool fin = off + len == m->len;
		size_t hl = frame_header(hdr[n], off == 0, fin, m->binary, len);
		iov[n_iov++] = (struct iovec){hdr[n], hl};
		if (len)
			iov[n_iov++] = (struct iovec){m->data + off, len};
		total += hl + len;
		off = fin ? 0 : off + len;
		popped += fin;
		mark[n++] = (struct frame_mark){total, popped, off, frame_first};
	}
	if (!n)
		return 0;
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
	ssize_t w = sendmsg(lws_get_socket_fd(wsi), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return -1;
	if (w <= 0)
		return 0;
	/* The last frame the socket took any of: lws sends the rest of it. */
	int last = 0;
	while (mark[last].end < (size_t)w)
		last++;
	for (size_t pos = 0, i = 0; pos < mark[last].end; pos += iov[i++].iov_len) {
		size_t from = (size_t)w > pos ? (size_t)w - pos : 0;
		if (from >= iov[i].iov_len)
			continue;
		if (lws_write(wsi, (unsigned char *)iov[i].iov_base + from, iov[i].iov_len - from,
		              LWS_WRITE_RAW) < 0)
			return -1;
	}
	for (int i = 0; i <= last; i++)
		if (mark[i].first)
			ws_msg_written(ws, mark[i].first);
	if (reply) {
		gos_ws_msg_unref(v->reply);
		v->reply = NULL;
	}
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < mark[last].popped; i++) {
		bytes += v->q[v->q_head]->len;
		q_pop(ws, v);
	}
	v->off = mark[last].off;
	if (mark[last].popped) {
		st_add(&ws->st.messages_sent, mark[last].popped);
		st_add(&ws->st.bytes_sent, bytes);
		v->bytes_out += bytes;
		if (v->account)
			v->account->bytes_sent += bytes;
	}
	return 0;
}

void ws_viewer_flush(struct gos_ws *ws)
{
	struct viewer *next;
	for (struct viewer *v = ws->flush; v; v = next) {
		next = v->flush_next;
		v->flush_next = NULL;
		v->flush_listed = false;
		bool broken = false;
		if (!v->close_code && !lws_partial_buffered(v->wsi))
			broken = viewer_send(ws, v, v->wsi) < 0;  /* the callback finds out again */
		viewer_maybe_request(ws, v);
		if (broken || v->close_code || v->q_len || v->ping_due || v->reply)
			lws_callback_on_writable(v->wsi);
		else
			v->write_asked = false;
	}
	ws->flush = NULL;
}

/* The end of a writeable callback: the ping, a snapshot request once the
 * queue drained, and another callback while anything is left. */
static int viewer_written(struct gos_ws *ws, struct viewer *v, struct lws *wsi)
{
	if (v->ping_due && v->off == 0 && !lws_partial_buffered(wsi)) {
		/* lws swallows empty pongs without telling us: the ping carries
		 * a payload, which the pong echoes. */
		unsigned char ping[LWS_PRE + 8];
		memcpy(ping + LWS_PRE, "gos-ping", 8);
		if (lws_write(wsi, ping + LWS_PRE, 8, LWS_WRITE_PING) < 8)
			return -1;
		v->ping_due = false;
	}
	viewer_maybe_request(ws, v);
	if (v->q_len || v->ping_due || v->reply)
		viewer_want_write(v);
	return 0;
}

static int viewer_writeable(struct gos_ws *ws, struct viewer *v, struct lws *wsi)
{
	/* Unasked, lws calls here after it sent a pong of its own: look at
	 * what the viewer sends. */
	if (!v->write_asked)
		viewer_check_control(ws, v);
	v->write_asked = false;
	if (v->close_code) {
		lws_close_reason(wsi, (enum lws_close_status)v->close_code,
		                 (unsigned char *)v->close_reason, strlen(v->close_reason));
		return -1;
	}
	if (v->plain) {
		/* Frames straight to the socket; the others' go through lws_write
		 * (extensions may rewrite them). */
		if (!lws_partial_buffered(wsi) && viewer_send(ws, v, wsi) < 0)
			return -1;
		return viewer_written(ws, v, wsi);
	}

	size_t budget = WRITE_BUDGET;
	/* With deflate the compressor takes small pieces (WS_DEFLATE_CHUNK, see
	 * ws_internal.h); lws then sends each message as one or more frames. */
	size_t chunk = v->deflate ? WS_DEFLATE_CHUNK : WS_CHUNK;
	if (v->reply && v->off == 0 && !lws_partial_buffered(wsi)) {
		struct gos_ws_msg *m = v->reply;
		if (lws_write(wsi, m->data, m->len, LWS_WRITE_TEXT) < (int)m->len)
			return -1;
		v->reply = NULL;
		gos_ws_msg_unref(m);
	}
	/* lws only calls us once what it buffered is out; after a write it
	 * could not finish, stop (lws_partial_buffered costs no syscall, unlike
	 * lws_send_pipe_choked). */
	while (v->q_len && budget && !lws_partial_buffered(wsi)) {
		struct gos_ws_msg *m = v->q[v->q_head];
		if (v->off == 0 && m->len <= chunk) {
			/* Whole message in one frame, straight from the shared bytes:
			 * lws writes the frame header into the headroom, identical for
			 * every viewer, and copies aside what the socket does not take.
			 * (With deflate it compresses into a buffer of its own and
			 * leaves the shared bytes alone.) */
			if (lws_write(wsi, m->data, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
			    (int)m->len)
				return -1;
			ws_msg_written(ws, m);
			v->off = m->len;
		} else {
			size_t n = m->len - v->off;
			if (n > chunk)
				n = chunk;
			memcpy(ws->scratch + LWS_PRE, m->data + v->off, n);
			int flags = lws_write_ws_flags(m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, v->off == 0,
			                               v->off + n == m->len);
			if (lws_write(wsi, ws->scratch + LWS_PRE, n, (enum lws_write_protocol)flags) < (int)n)
				return -1;
			if (v->off == 0)
				ws_msg_written(ws, m);
			v->off += n;
		}
		budget = budget > chunk ? budget - chunk : 0;
		if (v->off == m->len) {
			st_add(&ws->st.messages_sent, 1);
			st_add(&ws->st.bytes_sent, m->len);
			v->bytes_out += m->len;
			if (v->account)
				v->account->bytes_sent += m->len;
			q_pop(ws, v);
		}
	}
	return viewer_written(ws, v, wsi);
}

static void ping_pass(lws_sorted_usec_list_t *sul)
{
	struct gos_ws *ws = lws_container_of(sul, struct gos_ws, sul_ping);
	uint64_t now = gos_now_ms();
	for (struct viewer *v = ws->viewers; v; v = v->next) {
		if (v->close_code)
			continue;
		if (now - v->alive_ms > ws->opts.stale_timeout_ms) {
			st_add(&ws->st.closed_stale, 1);
			viewer_close(v, LWS_CLOSE_STATUS_GOINGAWAY, "stale: no pong");
			/* A viewer that reads nothing never becomes writeable, so the
			 * close cannot wait for it: a timeout of 1 s hangs it up. */
			lws_set_timeout(v->wsi, PENDING_TIMEOUT_CLOSE_SEND, 1);
			continue;
		}
		v->ping_due = true;
		viewer_want_write(v);
	}
	lws_sul_schedule(ws->ctx, 0, &ws->sul_ping, ping_pass,
	                 (lws_usec_t)ws->opts.ping_interval_ms * LWS_US_PER_MS);
}

int ws_viewer_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                       void *in, size_t len)
{
	struct gos_ws *ws = lws_context_user(lws_get_context(wsi));
	struct viewer *v = user;
	const struct lws_protocols *proto = lws_get_protocol(wsi);
	bool v2 = proto && proto->id == 1;
	if (v2 && (reason == LWS_CALLBACK_PROTOCOL_INIT || reason == LWS_CALLBACK_PROTOCOL_DESTROY ||
	           reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED))
		return 0;  /* the server's own business: gos.v1's callback does it once */
	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		lws_sul_schedule(lws_get_context(wsi), 0, &ws->sul_ping, ping_pass,
		                 (lws_usec_t)ws->opts.ping_interval_ms * LWS_US_PER_MS);
		break;
	case LWS_CALLBACK_PROTOCOL_DESTROY:
		lws_sul_cancel(&ws->sul_ping);
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		ws_drain_inbox(ws);
		break;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ws_upgrade_filter(ws, wsi);
	case LWS_CALLBACK_ESTABLISHED: {
		memset(v, 0, sizeof(*v));
		v->wsi = wsi;
		struct conn *c = lws_get_opaque_user_data(wsi);
		v->account = c ? c->account : NULL;
		v->start_ms = gos_now_ms();
		v->start_wall = gos_now_realtime_s();
		lws_get_peer_simple(wsi, v->addr, sizeof(v->addr));
		v->deflate = ws_deflate_active(wsi);
		v->sock = lws_get_socket_fd(wsi);
		if (!ws_rxguard_watch(v->sock))
			v->sock = -1;
		v->fd = lws_get_socket_fd(wsi);
		if (v->fd < 0 || !wire_bytes(v->fd, &v->wire_base))
			v->fd = -1;  /* no byte counts here: messages are limited all the same */
		v->alive_ms = v->bucket_ms = gos_now_ms();
		v->bucket = ws->opts.rx_burst;
		/* no extension on (none offered, or deflate declined) and no TLS:
		 * only then are the frames ours to write */
		v->plain = !v->deflate && !lws_is_ssl(wsi);
		v->next = ws->viewers;
		if (ws->viewers)
			ws->viewers->prev = v;
		ws->viewers = v;
		if (st_get(&ws->st.viewers) >= ws->opts.max_viewers) {
			char r[96];
			snprintf(r, sizeof(r), "too many viewers (max %u)", ws->opts.max_viewers);
			st_add(&ws->st.refused[GOS_WS_REFUSED_FULL], 1);
			ws_viewers_full(ws);
			viewer_close(v, CLOSE_TRY_AGAIN, r);
			break;
		}
		v->counted = true;
		v->v2 = v2;
		v->id = ++ws->next_viewer_id;
		if (v->account)
			v->account->viewers++;
		st_add(&ws->st.viewers, 1);
		if (v2)
			st_add(&ws->st.viewers_v2, 1);
		if (v->deflate)
			st_add(&ws->st.viewers_deflate, 1);
		ws_conn_upgraded(ws, wsi);
		st_add(&ws->st.viewers_total, 1);
		v->state = V_WAITING;
		q_push(ws, v, v2 ? ws->hello_v2 : ws->hello);
		viewer_want_write(v);
		break;
	}
	case LWS_CALLBACK_RECEIVE:
		if (viewer_unmasked(ws, v, wsi))
			return -1;
		return viewer_receive(ws, v, wsi, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		v->alive_ms = gos_now_ms();
		v->data_wire += CTL_MIN_FRAME + len;  /* seen: not charged twice */
		rx_charge(ws, v, 1);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return viewer_writeable(ws, v, wsi);
	case LWS_CALLBACK_CLOSED:
		if (!v || !v->wsi)
			break;
		if (v->prev)
			v->prev->next = v->next;
		else
			ws->viewers = v->next;
		if (v->next)
			v->next->prev = v->prev;
		ws_access_log(ws, v->start_wall, v->account, v->addr, "/ws", v->counted ? v->id : 0,
		              101, v->close_code, v->bytes_out, (int64_t)v->bytes_in,
		              gos_now_ms() - v->start_ms);
		if (v->counted && v->account)
			v->account->viewers--;
		if (v->counted) {
			atomic_fetch_sub_explicit(&ws->st.viewers, 1, memory_order_relaxed);
			if (v->v2)
				atomic_fetch_sub_explicit(&ws->st.viewers_v2, 1, memory_order_relaxed);
			if (v->deflate)
				atomic_fetch_sub_explicit(&ws->st.viewers_deflate, 1, memory_order_relaxed);
		}
		/* Once stopped (gos_ws_destroy closing everyone) the callbacks'
		 * owners may be gone: nobody needs to hear of leaving viewers. */
		if (v->counted && !atomic_load(&ws->stop)) {
			v2_viewport(ws, v, true);
			if (ws->opts.request)
				ws->opts.request(ws->opts.cb_ctx, v->id, v->gen, NULL);
		}
		ws_rxguard_unwatch(v->sock);
		q_free(ws, v);
		free(v->rx);
		gos_ws_msg_unref(v->reply);
		v->wsi = NULL;
		break;
	default:
		break;
	}
	return 0;
}
