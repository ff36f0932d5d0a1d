/* gos_host: is an HTTP request's Host header one of the names this server
 * is really reachable by? The defence against DNS rebinding: a web page at
 * http://rebind.evil.example:PORT/ whose name the attacker re-points at
 * 127.0.0.1 reaches a loopback server with the attacker's name in Host (and
 * in Origin), so only the Host header tells the two apart.
 *
 * Allowed, compared case-insensitively, with or without one trailing dot:
 *  - localhost and every *.localhost name (RFC 6761: browsers resolve them
 *    to loopback themselves, no DNS can re-point them);
 *  - 127.0.0.0/8 and ::1 (IPv6 in brackets; ::ffff:a.b.c.d counts as a.b.c.d);
 *  - the listen address as given (a name, or an address literal);
 *  - with a wildcard listen address (0.0.0.0, ::, or none): the machine's
 *    own addresses (getifaddrs, looked up again at most every 5 s when an
 *    unknown address literal arrives) and its host name (gethostname);
 *  - the entries of the allow list: "NAME", "NAME:PORT", "*.SUFFIX",
 *    address literals ("[V6]" or "[V6]:PORT"), or "*" for any Host at all.
 * A port in the Host must be the server's own (or, for an allow-list entry
 * with a port, that port). A request without Host is allowed (HTTP/1.0 and
 * other non-browser clients: browsers always send one).
 *
 * Threads: create/destroy on the owning thread; gos_host_check from one
 * thread at a time (it may refresh the address cache). */
#ifndef GOS_HOST_H
#define GOS_HOST_H

#include <stdbool.h>
#include <stddef.h>

struct gos_host_allow;

/* listen_host: the listen host as given (a name is allowed as such);
 * bound: the numeric address listened on, without brackets ("" or NULL,
 * 0.0.0.0 or ::: every interface); port: the port actually bound; allow:
 * comma-separated entries (see above) or NULL. NULL with one sentence in
 * err when an allow-list entry is malformed. */
struct gos_host_allow *gos_host_allow_create(const char *listen_host, const char *bound,
                                             int port, const char *allow, char *err,
                                             size_t errlen);
/* Accepts NULL. */
void gos_host_allow_destroy(struct gos_host_allow *a);

/* host: the Host header's value, NULL when the request had none. */
bool gos_host_check(struct gos_host_allow *a, const char *host);

#endif
