/* gos_users: the --users-file table (see gos_users.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gos_users.h"

static bool name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '@' || c == '-';
}

static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > GOS_USER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char((unsigned char)s[i]))
			return false;
	return true;
}

bool gos_users_token_ok(const char *t, size_t len)
{
	if (len == 0 || len > GOS_USER_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c <= ' ' || c == 0x7f || c == '"' || c == ';' || c == ',')
			return false;
	}
	return true;
}

static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Constant time in the secret's length (b): every byte of it is compared. */
	volatile unsigned char diff = (unsigned char)(alen != blen);
	for (size_t i = 0; i < blen; i++) {
		unsigned char x = i < alen ? (unsigned char)a[i] : 0;
		diff |= x ^ (unsigned char)b[i];
	}
	return diff == 0;
}

const struct gos_user *gos_users_match(const struct gos_users *u, const char *cand, size_t len)
{
	const struct gos_user *hit = NULL;
	if (!u)
		return NULL;
	for (size_t i = 0; i < u->n; i++) {
		bool eq = ct_equal(cand, len, u->user[i].token, u->user[i].token_len);
		/* no early exit: every token costs its time whatever matched */
		hit = eq ? &u->user[i] : hit;
	}
	return hit;
}

const struct gos_user *gos_users_find(const struct gos_users *u, const char *name)
{
	for (size_t i = 0; u && i < u->n; i++)
		if (!strcmp(u->user[i].name, name))
			return &u->user[i];
	return NULL;
}

const char *gos_role_name(enum gos_role r)
{
	switch (r) {
	case GOS_ROLE_VIEW: return "view";
	case GOS_ROLE_EXPORT: return "export";
	case GOS_ROLE_ADMIN: return "admin";
	case GOS_ROLE_NONE: break;
	}
	return "none";
}

static enum gos_role role_parse(const char *s, size_t len)
{
	static const enum gos_role roles[] = {GOS_ROLE_VIEW, GOS_ROLE_EXPORT, GOS_ROLE_ADMIN};
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		const char *n = gos_role_name(roles[i]);
		if (strlen(n) == len && !memcmp(n, s, len))
			return roles[i];
	}
	return GOS_ROLE_NONE;
}

void gos_users_destroy(struct gos_users *u)
{
	if (!u)
		return;
	if (u->user)  /* tokens are secrets: not left in freed memory */
		memset(u->user, 0, u->cap * sizeof(*u->user));
	free(u->user);
	free(u);
}

static struct gos_user *users_push(struct gos_users *u)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 8;
		struct gos_user *n = calloc(cap, sizeof(*n));
		if (!n)
			abort();
		if (u->n)
			memcpy(n, u->user, u->n * sizeof(*n));
		if (u->user)
			memset(u->user, 0, u->cap * sizeof(*u->user));
		free(u->user);
		u->user = n;
		u->cap = cap;
	}
	return &u->user[u->n++];
}

/* Which existing user has this name or token: its index, or -1. */
static long users_clash(const struct gos_users *u, const char *name, const char *token,
                        size_t token_len, bool *by_name)
{
	for (size_t i = 0; i < u->n; i++) {
		*by_name = !strcmp(u->user[i].name, name);
		if (*by_name || (u->user[i].token_len == token_len &&
		                 !memcmp(u->user[i].token, token, token_len)))
			return (long)i;
	}
	return -1;
}

bool gos_users_add(struct gos_users *u, const char *name, const char *token,
                   enum gos_role role, char *err, size_t errlen)
{
	size_t nlen = strlen(name), tlen = strlen(token);
	bool by_name = false;
	if (!name_ok(name, nlen) || !gos_users_token_ok(token, tlen) || role == GOS_ROLE_NONE) {
		snprintf(err, errlen, "user %s: a malformed name, token or role", name);
		return false;
	}
	if (users_clash(u, name, token, tlen, &by_name) >= 0) {
		snprintf(err, errlen, by_name ? "the users file already has a user called %s"
		                              : "the users file gives %s's token to another user", name);
		return false;
	}
	struct gos_user *e = users_push(u);
	memcpy(e->name, name, nlen + 1);
	memcpy(e->token, token, tlen + 1);
	e->token_len = tlen;
	e->role = role;
	return true;
}

/* A whole number from 1 to 100000 in s[0..len). */
static bool parse_count(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	if (len == 0 || len > 6)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v < 1 || v > 100000)
		return false;
	*out = v;
	return true;
}

#define MAX_FIELDS 6

/* One line (no newline): a user added to u, nothing (blank, comment), or
 * false with the reason in why. lines[i]: the line number of user i. */
static bool parse_line(struct gos_users *u, const char *s, size_t len, const unsigned *lines,
                       char *why, size_t whylen)
{
	const char *f[MAX_FIELDS];
	size_t fl[MAX_FIELDS], n = 0, i = 0;
	while (i < len) {
		while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
			i++;
		if (i == len || (n == 0 && s[i] == '#'))
			break;
		if (n == MAX_FIELDS) {
			snprintf(why, whylen, "too many fields (NAME TOKEN ROLE [rate=N] [burst=M])");
			return false;
		}
		f[n] = s + i;
		while (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			i++;
		fl[n] = (size_t)(s + i - f[n]);
		n++;
	}
	if (n == 0)
		return true;
	if (n < 3) {
		snprintf(why, whylen, "a user needs three fields: NAME TOKEN ROLE");
		return false;
	}
	if (!name_ok(f[0], fl[0])) {
		snprintf(why, whylen, "the name must be 1-%d characters of A-Z a-z 0-9 _ . @ -",
		         GOS_USER_NAME_MAX);
		return false;
	}
	char name[GOS_USER_NAME_MAX + 1];
	memcpy(name, f[0], fl[0]);
	name[fl[0]] = '\0';
	if (!strcmp(name, GOS_USERS_ANONYMOUS)) {
		snprintf(why, whylen, "the name " GOS_USERS_ANONYMOUS " is reserved (the "
		         "--auth-token-file user)");
		return false;
	}
	if (!gos_users_token_ok(f[1], fl[1])) {
		snprintf(why, whylen, "%s's token must be 1-%d characters without blanks, "
		         "control characters, quotes, ';' or ','", name, GOS_USER_TOKEN_MAX);
		return false;
	}
	enum gos_role role = role_parse(f[2], fl[2]);
	if (role == GOS_ROLE_NONE) {
		snprintf(why, whylen, "%s's role must be view, export or admin", name);
		return false;
	}
	uint32_t rate = 0, burst = 0;
	for (size_t k = 3; k < n; k++) {
		if (fl[k] > 5 && !memcmp(f[k], "rate=", 5) && !rate &&
		    parse_count(f[k] + 5, fl[k] - 5, &rate))
			continue;
		if (fl[k] > 6 && !memcmp(f[k], "burst=", 6) && !burst &&
		    parse_count(f[k] + 6, fl[k] - 6, &burst))
			continue;
		snprintf(why, whylen, "after the role only rate=N and burst=M (each once, 1-100000)");
		return false;
	}
	if (burst && !rate) {
		snprintf(why, whylen, "burst= needs rate=");
		return false;
	}
	bool by_name = false;
	long other = users_clash(u, name, f[1], fl[1], &by_name);
	if (other >= 0) {
		if (by_name)
			snprintf(why, whylen, "%s is already a user (line %u)", name, lines[other]);
		else
			snprintf(why, whylen, "%s's token is already %s's (line %u)", name,
			         u->user[other].name, lines[other]);
		return false;
	}
	if (u->n >= GOS_USERS_MAX) {
		snprintf(why, whylen, "more than %d users", GOS_USERS_MAX);
		return false;
	}
	struct gos_user *e = users_push(u);
	memcpy(e->name, name, fl[0] + 1);
	memcpy(e->token, f[1], fl[1]);
	e->token[fl[1]] = '\0';
	e->token_len = fl[1];
	e->role = role;
	e->rate = rate;
	e->burst = rate ? (burst ? burst : (rate > 50000 ? 100000 : 2 * rate)) : 0;
	return true;
}

struct gos_users *gos_users_parse(const char *text, size_t len, const char *what,
                                  char *err, size_t errlen)
{
	struct gos_users *u = calloc(1, sizeof(*u));
	unsigned *lines = NULL;
	size_t lines_cap = 0;
	if (!u)
		abort();
	unsigned line = 0;
	size_t i = 0;
	while (i < len) {
		line++;
		const char *s = text + i;
		const char *nl = memchr(s, '\n', len - i);
		size_t n = nl ? (size_t)(nl - s) : len - i;
		i += n + (nl ? 1 : 0);
		char why[256];
		if (memchr(s, '\0', n)) {
			snprintf(err, errlen, "%s line %u: a NUL byte (not a text file?)", what, line);
			goto error;
		}
		if (lines_cap < u->n + 1) {
			lines_cap = lines_cap ? lines_cap * 2 : 16;
			unsigned *l = realloc(lines, lines_cap * sizeof(*l));
			if (!l)
				abort();
			lines = l;
		}
		size_t before = u->n;
		if (!parse_line(u, s, n, lines, why, sizeof(why))) {
			snprintf(err, errlen, "%s line %u: %s", what, line, why);
			goto error;
		}
		if (u->n > before)
			lines[before] = line;
	}
	free(lines);
	return u;
error:
	free(lines);
	gos_users_destroy(u);
	return NULL;
}

struct gos_users *gos_users_load(const char *path, char *err, size_t errlen)
{
	char what[300];
	snprintf(what, sizeof(what), "--users-file %s", path);
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", what, strerror(errno));
		return NULL;
	}
	char *buf = malloc(GOS_USERS_FILE_MAX + 1);
	if (!buf)
		abort();
	size_t n = fread(buf, 1, GOS_USERS_FILE_MAX + 1, f);
	bool bad = ferror(f);
	int e = errno;
	fclose(f);
	struct gos_users *u = NULL;
	if (bad)
		snprintf(err, errlen, "cannot read %s: %s", what, strerror(e));
	else if (n > GOS_USERS_FILE_MAX)
		snprintf(err, errlen, "%s is over %u MiB", what, GOS_USERS_FILE_MAX >> 20);
	else
		u = gos_users_parse(buf, n, what, err, errlen);
	memset(buf, 0, n);
	free(buf);
	return u;
}
