/* A producer's connection to the compositor's Unix socket (gos-feed,
 * gos-bridge, tests). One thread owns a client; not thread-safe. */
#ifndef GOS_CLIENT_H
#define GOS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called for each line the compositor sends back (error lines, sync
 * replies), without its '\n' (or its frame's length). */
typedef void (*gos_client_line_fn)(void *ctx, const char *line, size_t len);

struct gos_sync_result {
	uint64_t applied, rejected, tokens;
};

/* Default socket path: $XDG_RUNTIME_DIR/gos.sock, else /tmp/gos-$UID.sock. */
void gos_default_socket_path(char *buf, size_t len);

/* Connects; on failure returns NULL and writes one sentence into err. */
struct gos_client *gos_client_connect(const char *path, char *err, size_t errlen);
void gos_client_close(struct gos_client *c);  /* accepts NULL */

/* Replies read while sending or syncing go to on_line (NULL: discarded). */
void gos_client_on_line(struct gos_client *c, gos_client_line_fn fn, void *ctx);

/* Sends len bytes plus '\n' if the line lacks one. Blocks while the
 * compositor pushes back, reading its replies meanwhile (no deadlock).
 * Returns false when the connection is gone. */
bool gos_client_send(struct gos_client *c, const char *line, size_t len);

/* Sends n bytes exactly as given (already framed). Same blocking rules. */
bool gos_client_send_raw(struct gos_client *c, const char *p, size_t n);

/* Length-prefixed framing (u32 little-endian length + JSON) for what this
 * client sends itself (the sync request), and for the replies, which the
 * compositor frames alike. Off by default: newline-delimited JSON. */
void gos_client_set_length_prefixed(struct gos_client *c, bool on);

/* Sends {"type":"sync"} and waits up to timeout_ms (<0: forever) for its
 * reply. Returns false on timeout or a lost connection. */
bool gos_client_sync(struct gos_client *c, int timeout_ms, struct gos_sync_result *out);

/* Reads whatever replies are available within timeout_ms. Returns false
 * when the connection is gone. */
bool gos_client_poll(struct gos_client *c, int timeout_ms);

#endif
