/* A WebSocket frame-header tracker over a client's byte stream (RFC 6455
 * §5.2), fed in pieces of any size: where each frame's header and payload
 * end, and whether a frame came without the mask bit. No allocation, no
 * state beyond the struct; ws_rxguard.c runs it over what libwebsockets
 * reads. Any thread, one stream per struct. */
#ifndef WS_FRAMES_H
#define WS_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ws_frames {
	uint8_t hdr[14];
	uint8_t have, need;        /* header bytes held / needed (0: not known yet) */
	uint64_t left;             /* payload bytes of the current frame still to come */
	uint64_t frames;           /* headers read whole */
	bool unmasked;             /* a frame without the mask bit was seen */
};

/* Zero-initialized is a stream at a frame boundary. */
void ws_frames_feed(struct ws_frames *f, const uint8_t *p, size_t n);

#endif
