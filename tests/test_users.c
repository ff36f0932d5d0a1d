/* The --users-file parser (net/ws/gos_users): fields, roles, rate= and
 * burst=, comments and blank lines, and every malformed line refused with
 * its line number and nothing of the file kept; token matching; the
 * --auth-token-file user added beside the file's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gos_test.h"
#include "gos_users.h"

static struct gos_users *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return gos_users_parse(text, strlen(text), "--users-file F", err, errlen);
}

static void good_file(void)
{
	char err[512];
	struct gos_users *u = parse("# operators\n"
	                            "\n"
	                            "alice  tok-a1  admin\n"
	                            "   # indented comment\n"
	                            "bob\ttok-b2\tview rate=5\r\n"
	                            "carol tok-c3 export rate=10 burst=3\n"
	                            "dave.x@example-1 t0k_d4~! view   \n"
	                            "erin tok-e5 view", err, sizeof(err));
	CHECK(u && u->n == 5, "five users (%s)", err);
	if (!u)
		return;
	const struct gos_user *a = gos_users_find(u, "alice");
	CHECK(a && a->role == GOS_ROLE_ADMIN && !strcmp(a->token, "tok-a1") && a->token_len == 6 &&
	      a->rate == 0, "alice: admin, no rate");
	const struct gos_user *b = gos_users_find(u, "bob");
	CHECK(b && b->role == GOS_ROLE_VIEW && b->rate == 5 && b->burst == 10 &&
	      !strcmp(b->token, "tok-b2"), "bob: view, rate 5, burst 2x (CR dropped)");
	const struct gos_user *c = gos_users_find(u, "carol");
	CHECK(c && c->role == GOS_ROLE_EXPORT && c->rate == 10 && c->burst == 3, "carol: export");
	CHECK(gos_users_find(u, "dave.x@example-1") != NULL, "names with . @ -");
	CHECK(gos_users_find(u, "erin") != NULL, "a last line without newline");
	CHECK(gos_users_match(u, "tok-b2", 6) == b, "bob's token matches bob");
	CHECK(gos_users_match(u, "tok-b", 5) == NULL, "a prefix matches nobody");
	CHECK(gos_users_match(u, "tok-b22", 7) == NULL, "a longer token matches nobody");
	CHECK(gos_users_match(u, "", 0) == NULL, "the empty token matches nobody");
	CHECK(gos_users_add(u, GOS_USERS_ANONYMOUS, "file-token", GOS_ROLE_ADMIN, err, sizeof(err)),
	      "the token file's user is added (%s)", err);
	CHECK(gos_users_match(u, "file-token", 10) == gos_users_find(u, GOS_USERS_ANONYMOUS),
	      "and matched");
	CHECK(!gos_users_add(u, "zed", "tok-a1", GOS_ROLE_VIEW, err, sizeof(err)) &&
	      strstr(err, "token"), "an added user may not take another's token: %s", err);
	CHECK(!gos_users_add(u, "alice", "other", GOS_ROLE_VIEW, err, sizeof(err)),
	      "nor another's name");
	CHECK(strcmp(gos_role_name(GOS_ROLE_EXPORT), "export") == 0, "role names");
	gos_users_destroy(u);

	u = parse("", err, sizeof(err));
	CHECK(u && u->n == 0, "an empty file is no users");
	gos_users_destroy(u);
	u = parse("# nobody yet\n\n", err, sizeof(err));
	CHECK(u && u->n == 0, "comments only: no users");
	gos_users_destroy(u);
}

static void bad_lines(void)
{
	static const struct { const char *text, *says; } bad[] = {
		{"alice tok admin\nbob tok2\n", "line 2: a user needs three fields"},
		{"alice tok superuser\n", "line 1: alice's role must be view, export or admin"},
		{"al ice tok view\n", "line 1: "},
		{"a/b tok view\n", "line 1: the name must be"},
		{"alice tok view\n\n# x\nalice tok2 view\n", "line 4: alice is already a user (line 1)"},
		{"alice tok view\nbob tok view\n", "line 2: bob's token is already alice's (line 1)"},
		{"anonymous tok view\n", "line 1: the name anonymous is reserved"},
		{"alice to\"k view\n", "line 1: alice's token must be"},
		{"alice to;k view\n", "line 1: alice's token must be"},
		{"alice tok view rate=0\n", "line 1: after the role only rate=N"},
		{"alice tok view rate=100001\n", "line 1: after the role only"},
		{"alice tok view rate=5 rate=6\n", "line 1: after the role only"},
		{"alice tok view rate=x\n", "line 1: after the role only"},
		{"alice tok view burst=4\n", "line 1: burst= needs rate="},
		{"alice tok view rate=1 burst=2 extra\n", "line 1: after the role only"},
		{"alice tok view a b c d\n", "line 1: too many fields"},
		{"ok tok view\nalice\x01 tok view\n", "line 2: the name must be"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[512];
		struct gos_users *u = parse(bad[i].text, err, sizeof(err));
		CHECK(!u && strstr(err, "--users-file F ") && strstr(err, bad[i].says),
		      "%zu: refused naming '%s', got '%s'", i, bad[i].says, err);
		gos_users_destroy(u);
	}
	char err[512];
	static const char nul[] = "alice tok view\nbob t\0k view\n";
	struct gos_users *u = gos_users_parse(nul, sizeof(nul) - 1, "F", err, sizeof(err));
	CHECK(!u && strstr(err, "line 2: a NUL byte"), "a NUL byte: %s", err);
	char longname[100];
	memset(longname, 'n', 65);
	snprintf(longname + 65, sizeof(longname) - 65, " tok view\n");
	u = parse(longname, err, sizeof(err));
	CHECK(!u && strstr(err, "line 1: the name must be 1-64"), "a 65-character name: %s", err);
}

static void from_disk(void)
{
	char dir[] = "/tmp/gos-users-XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	char path[128], err[512];
	snprintf(path, sizeof(path), "%s/users", dir);
	FILE *f = fopen(path, "w");
	fputs("alice tok-a admin\nbob tok-b view rate=2\n", f);
	fclose(f);
	struct gos_users *u = gos_users_load(path, err, sizeof(err));
	CHECK(u && u->n == 2, "loaded from disk (%s)", err);
	gos_users_destroy(u);
	f = fopen(path, "w");
	fputs("alice tok-a admin\nbob tok-b viewer\n", f);
	fclose(f);
	u = gos_users_load(path, err, sizeof(err));
	CHECK(!u && strstr(err, "--users-file ") && strstr(err, path) && strstr(err, "line 2"),
	      "names the file and the line: %s", err);
	unlink(path);
	u = gos_users_load(path, err, sizeof(err));
	CHECK(!u && strstr(err, "cannot read --users-file") && strstr(err, "No such file"),
	      "a missing file: %s", err);
	rmdir(dir);
}

int main(void)
{
	good_file();
	bad_lines();
	from_disk();
	return gos_test_report("test_users");
}
