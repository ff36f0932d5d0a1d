/* Host header allow list (see gos_host.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gos_host.h"
#include "gos_time.h"

#define NAME_MAX_LEN     253
#define IF_REFRESH_MS    5000

struct addr {
	int family;                    /* AF_INET or AF_INET6 */
	unsigned char b[16];
};

/* A Host header or an allow-list entry, taken apart. */
struct host {
	char name[NAME_MAX_LEN + 1];   /* lowercase, no trailing dot; "" for a literal */
	bool is_addr;
	struct addr addr;
	int port;                      /* -1: none given */
};

struct entry {
	struct host h;
	bool suffix;                   /* "*.SUFFIX": h.name holds ".suffix" */
};

struct gos_host_allow {
	int port;
	bool any;                      /* "*" in the allow list */
	bool wildcard;                 /* listening on every interface */
	struct addr bound;             /* the address listened on (not a wildcard) */
	bool have_bound;
	char listen_name[NAME_MAX_LEN + 1];  /* the listen host, when a name */
	char hostname[NAME_MAX_LEN + 1];
	struct entry *entries;
	size_t n_entries;
	struct addr *ifs;              /* the machine's addresses (wildcard only) */
	size_t n_ifs;
	uint64_t ifs_ms;               /* when they were read */
};

/* ::ffff:a.b.c.d is a.b.c.d. */
static void addr_normalize(struct addr *a)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (a->family == AF_INET6 && !memcmp(a->b, mapped, 12)) {
		memmove(a->b, a->b + 12, 4);
		memset(a->b + 4, 0, 12);
		a->family = AF_INET;
	}
}

static bool addr_equal(const struct addr *a, const struct addr *b)
{
	return a->family == b->family &&
	       !memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16);
}

static bool addr_loopback(const struct addr *a)
{
	static const unsigned char v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	return a->family == AF_INET ? a->b[0] == 127 : !memcmp(a->b, v6, 16);
}

static bool addr_any(const struct addr *a)
{
	static const unsigned char zero[16];
	return !memcmp(a->b, zero, a->family == AF_INET ? 4 : 16);
}

static bool addr_parse(const char *s, size_t len, bool v6, struct addr *out)
{
	char buf[INET6_ADDRSTRLEN + 1];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (v6) {
		char *zone = strchr(buf, '%');  /* fe80::1%eth0: the zone is not part of the address */
		if (zone)
			*zone = '\0';
	}
	memset(out, 0, sizeof(*out));
	out->family = v6 ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, buf, out->b) != 1)
		return false;
	addr_normalize(out);
	return true;
}

/* "NAME", "NAME:PORT", "[V6]", "[V6]:PORT", "A.B.C.D[:PORT]", with spaces
 * around. An empty port (":" at the end) is no port. */
static bool host_parse(const char *s, struct host *h)
{
	memset(h, 0, sizeof(*h));
	h->port = -1;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	const char *name = s, *port = NULL;
	size_t nlen;
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close || !addr_parse(s + 1, (size_t)(close - s - 1), true, &h->addr))
			return false;
		h->is_addr = true;
		size_t rest = len - (size_t)(close + 1 - s);
		if (rest) {
			if (close[1] != ':')
				return false;
			port = close + 2;
		}
		nlen = 0;
	} else {
		const char *colon = memchr(s, ':', len);
		nlen = colon ? (size_t)(colon - s) : len;
		if (colon) {
			if (memchr(colon + 1, ':', len - nlen - 1))
				return false;  /* a bare IPv6 address: not a valid Host */
			port = colon + 1;
		}
	}
	if (port) {
		size_t plen = len - (size_t)(port - s);
		if (plen > 5)
			return false;
		long p = 0;
		for (size_t i = 0; i < plen; i++) {
			if (!isdigit((unsigned char)port[i]))
				return false;
			p = p * 10 + (port[i] - '0');
		}
		if (plen && (p < 1 || p > 65535))
			return false;
		h->port = plen ? (int)p : -1;
	}
	if (h->is_addr)
		return true;
	if (nlen && name[nlen - 1] == '.')
		nlen--;  /* "localhost." is "localhost" */
	if (nlen == 0 || nlen > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '.' && c != '-' && c != '_')
			return false;
		h->name[i] = (char)tolower(c);
	}
	h->name[nlen] = '\0';
	if (addr_parse(h->name, nlen, false, &h->addr)) {
		h->is_addr = true;
		h->name[0] = '\0';
	}
	return true;
}

static bool name_is_localhost(const char *n)
{
	size_t len = strlen(n);
	return !strcmp(n, "localhost") ||
	       (len > 10 && !strcmp(n + len - 10, ".localhost"));
}

static void ifs_refresh(struct gos_host_allow *a)
{
	struct ifaddrs *list = NULL;
	a->ifs_ms = gos_now_ms();
	a->n_ifs = 0;
	if (getifaddrs(&list))
		return;
	size_t n = 0;
	for (struct ifaddrs *i = list; i; i = i->ifa_next)
		n++;
	struct addr *ifs = realloc(a->ifs, (n ? n : 1) * sizeof(*ifs));
	if (!ifs)
		abort();
	a->ifs = ifs;
	for (struct ifaddrs *i = list; i; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		struct addr *x = &a->ifs[a->n_ifs];
		memset(x, 0, sizeof(*x));
		if (i->ifa_addr->sa_family == AF_INET) {
			x->family = AF_INET;
			memcpy(x->b, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			x->family = AF_INET6;
			memcpy(x->b, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
			addr_normalize(x);
		} else {
			continue;
		}
		a->n_ifs++;
	}
	freeifaddrs(list);
}

static bool ifs_have(const struct gos_host_allow *a, const struct addr *x)
{
	for (size_t i = 0; i < a->n_ifs; i++)
		if (addr_equal(&a->ifs[i], x))
			return true;
	return false;
}

struct gos_host_allow *gos_host_allow_create(const char *listen_host, const char *bound,
                                             int port, const char *allow, char *err,
                                             size_t errlen)
{
	struct gos_host_allow *a = calloc(1, sizeof(*a));
	if (!a)
		abort();
	a->port = port;
	struct host lh;
	if (listen_host && host_parse(listen_host, &lh) && !lh.is_addr)
		memcpy(a->listen_name, lh.name, sizeof(a->listen_name));
	size_t blen = bound ? strlen(bound) : 0;
	a->have_bound = blen && (addr_parse(bound, blen, false, &a->bound) ||
	                         addr_parse(bound, blen, true, &a->bound));
	a->wildcard = !a->have_bound || addr_any(&a->bound);
	if (a->wildcard) {
		a->have_bound = false;
		if (gethostname(a->hostname, sizeof(a->hostname) - 1) == 0) {
			for (char *c = a->hostname; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		} else {
			a->hostname[0] = '\0';
		}
		ifs_refresh(a);
	}
	for (const char *p = allow ? allow : ""; *p;) {
		size_t n = strcspn(p, ",");
		char item[NAME_MAX_LEN + 16];
		size_t s = 0, e = n;
		while (s < e && (p[s] == ' ' || p[s] == '\t'))
			s++;
		while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
			e--;
		if (e - s >= sizeof(item)) {
			snprintf(err, errlen, "--allow-host: '%.*s' is too long", (int)(e - s), p + s);
			goto error;
		}
		memcpy(item, p + s, e - s);
		item[e - s] = '\0';
		p += n;
		if (*p == ',')
			p++;
		if (!item[0])
			continue;
		if (!strcmp(item, "*")) {
			a->any = true;
			continue;
		}
		struct entry en = {0};
		bool suffix = item[0] == '*' && item[1] == '.';
		if (!host_parse(suffix ? item + 1 : item, &en.h) || (suffix && en.h.is_addr)) {
			snprintf(err, errlen, "--allow-host: '%s' is not a host name, NAME:PORT, "
			         "*.SUFFIX, an address or [V6] literal, or '*'", item);
			goto error;
		}
		en.suffix = suffix;
		struct entry *es = realloc(a->entries, (a->n_entries + 1) * sizeof(*es));
		if (!es)
			abort();
		a->entries = es;
		a->entries[a->n_entries++] = en;
	}
	return a;
error:
	gos_host_allow_destroy(a);
	return NULL;
}

void gos_host_allow_destroy(struct gos_host_allow *a)
{
	if (!a)
		return;
	free(a->entries);
	free(a->ifs);
	free(a);
}

static bool same_host(const struct host *a, const struct host *b)
{
	if (a->is_addr != b->is_addr)
		return false;
	return a->is_addr ? addr_equal(&a->addr, &b->addr) : !strcmp(a->name, b->name);
}

static bool entry_match(const struct gos_host_allow *a, const struct entry *e,
                        const struct host *h)
{
	/* An entry's own port, or else the server's; a Host without a port
	 * came through the scheme's default port (a proxy). */
	int want = e->h.port > 0 ? e->h.port : a->port;
	if (h->port >= 0 && h->port != want)
		return false;
	if (e->suffix) {
		size_t hl = strlen(h->name), sl = strlen(e->h.name);
		return !h->is_addr && hl > sl && !strcmp(h->name + hl - sl, e->h.name);
	}
	return same_host(&e->h, h);
}

bool gos_host_check(struct gos_host_allow *a, const char *value)
{
	if (!value || a->any)
		return true;
	struct host h;
	if (!host_parse(value, &h))
		return false;
	for (size_t i = 0; i < a->n_entries; i++)
		if (entry_match(a, &a->entries[i], &h))
			return true;
	if (h.port >= 0 && h.port != a->port)
		return false;
	if (h.is_addr) {
		if (addr_loopback(&h.addr))
			return true;
		if (a->have_bound && addr_equal(&a->bound, &h.addr))
			return true;
		if (!a->wildcard)
			return false;
		if (ifs_have(a, &h.addr))
			return true;
		/* Addresses come and go (DHCP, VPN): look again, now and then. */
		if (gos_now_ms() - a->ifs_ms < IF_REFRESH_MS)
			return false;
		ifs_refresh(a);
		return ifs_have(a, &h.addr);
	}
	if (name_is_localhost(h.name))
		return true;
	if (a->listen_name[0] && !strcmp(a->listen_name, h.name))
		return true;
	return a->wildcard && a->hostname[0] && !strcmp(a->hostname, h.name);
}
