/* Named users of the web server (--users-file): a table of name, token,
 * role and an optional inbound rate, parsed from text as a whole or not at
 * all, so that a reload never applies half a file.
 *
 * The file: one user a line, fields separated by blanks:
 *     NAME TOKEN ROLE [rate=N] [burst=M]
 * NAME    1-64 of A-Z a-z 0-9 _ . @ -, unique; "anonymous" is reserved (the
 *         --auth-token-file user)
 * TOKEN   1-1024 characters without blanks, control characters, quotes,
 *         ';' or ',' (the --auth-token-file rule; what a viewer sends: Authorization: Bearer, ?token= or the
 *         gos_token cookie), unique
 * ROLE    view (the viewer: /, its files, /ws), export (also /recording and
 *         /export) or admin (also /metrics)
 * rate=N  the messages a second all this user's viewers together may send
 *         (1-100000; beyond, dropped and counted); burst=M the bucket's
 *         depth (default 2N)
 * Blank lines and lines whose first non-blank is '#' are skipped.
 *
 * Threads: none of its own; a table is immutable once parsed (and
 * gos_users_add'ed to), so any thread may read one it was handed. */
#ifndef GOS_USERS_H
#define GOS_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOS_USER_NAME_MAX   64
#define GOS_USER_TOKEN_MAX  1024
#define GOS_USERS_MAX       10000          /* users in one file, at most */
#define GOS_USERS_FILE_MAX  (4u << 20)     /* bytes of one file, at most */
#define GOS_USERS_ANONYMOUS "anonymous"    /* the --auth-token-file user */

/* Ordered: a role may everything the ones before it may. */
enum gos_role {
	GOS_ROLE_NONE = 0,
	GOS_ROLE_VIEW,                 /* /, the viewer's files, /ws */
	GOS_ROLE_EXPORT,               /* also /recording, /export */
	GOS_ROLE_ADMIN,                /* also /metrics */
};

struct gos_user {
	char name[GOS_USER_NAME_MAX + 1];
	char token[GOS_USER_TOKEN_MAX + 1];
	size_t token_len;
	enum gos_role role;
	uint32_t rate;                 /* messages a second, all viewers together; 0: none */
	uint32_t burst;                /* bucket depth (with rate) */
};

struct gos_users {
	struct gos_user *user;
	size_t n, cap;
};

/* Parses len bytes of a users file; what names it in errors ("--users-file
 * /etc/gos/users"). NULL with one sentence in err naming the first bad
 * line's number. An empty table (no users) is valid. */
struct gos_users *gos_users_parse(const char *text, size_t len, const char *what,
                                  char *err, size_t errlen);
/* Reads and parses the file at path (errors name it as "--users-file PATH"). */
struct gos_users *gos_users_load(const char *path, char *err, size_t errlen);
/* Accepts NULL. */
void gos_users_destroy(struct gos_users *u);

/* Adds a user (the --auth-token-file one); false with one sentence in err
 * when its name or token is already taken or either is malformed. */
bool gos_users_add(struct gos_users *u, const char *name, const char *token,
                   enum gos_role role, char *err, size_t errlen);

/* The user whose token is cand[0..len), or NULL. Every user's token is
 * compared, each in time that depends only on its own length, so the time
 * taken says nothing of which user (or how much of a token) matched. */
const struct gos_user *gos_users_match(const struct gos_users *u, const char *cand, size_t len);

/* The user called name, or NULL. */
const struct gos_user *gos_users_find(const struct gos_users *u, const char *name);

/* "view", "export", "admin" ("none" for GOS_ROLE_NONE). */
const char *gos_role_name(enum gos_role r);
/* Whether a token is well formed (the same rule for --auth-token-file). */
bool gos_users_token_ok(const char *t, size_t len);

#endif
