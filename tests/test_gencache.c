/* test_gencache: gos-bridge's response cache files (net/llm/gos_gencache):
 * encode -> parse keeps every number to the bit, each kind of damage is a
 * parse failure with a reason, and the directory side: store, load (hit,
 * miss, another request under the same key, corrupt entries removed), the
 * LRU bound, and the temp files of dead processes. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gos_gencache.h"
#include "gos_test.h"

static struct gos_alt alts[2] = {{" Avenue", -10.140000343322754f}, {"\xe5\xbd\x93", -10.16f}};
static struct gos_gencache_token toks[3] = {
	{0.0, " cres", -10.201212882995605, 2, alts},
	{12.345678901234567, "\xe7\x8e\x8b", -0.1 - 1e-16, 1, alts},
	{30.25, "\n\t\"q\" \\", NAN, 0, NULL},
};

static struct gos_gencache_entry entry(const char *request)
{
	return (struct gos_gencache_entry){request, "length", 12, 4.5, 1.0 / 3.0, 3, toks};
}

static bool parses(const char *s, size_t n, char *why)
{
	struct gos_arena a = {0};
	struct gos_gencache_entry e;
	bool ok = gos_gencache_parse(s, n, &e, &a, why, 200);
	gos_arena_finish(&a);
	return ok;
}

static void test_round_trip(void)
{
	struct gos_gencache_entry e = entry("{\"prompt\":\"hi\"}");
	size_t len;
	char *s = gos_gencache_encode(&e, &len);
	CHECK(s && len > 0 && s[len - 1] == '\n', "encoded");
	struct gos_arena a = {0};
	struct gos_gencache_entry f;
	char why[200] = "";
	CHECK(gos_gencache_parse(s, len, &f, &a, why, sizeof why), "parses: %s", why);
	CHECK(!strcmp(f.request, e.request) && !strcmp(f.finish_reason, "length") && f.completion_tokens == 12 &&
	      f.ttft_ms == 4.5 && f.elapsed_ms == 1.0 / 3.0 && f.n_tokens == 3, "header read back");
	bool same = true;
	for (uint32_t i = 0; i < 3 && f.n_tokens == 3; i++) {
		same &= !strcmp(f.tokens[i].text, toks[i].text) && f.tokens[i].t_ms == toks[i].t_ms &&
		        (f.tokens[i].logprob == toks[i].logprob || (isnan(f.tokens[i].logprob) && isnan(toks[i].logprob))) &&
		        f.tokens[i].n_alts == toks[i].n_alts;
		for (uint32_t k = 0; same && k < toks[i].n_alts; k++)
			same &= !strcmp(f.tokens[i].alts[k].token, alts[k].token) && f.tokens[i].alts[k].logprob == alts[k].logprob;
	}
	CHECK(same, "every token, logprob, alternative and time to the bit");
	gos_arena_finish(&a);

	/* damage: every one is a failure with a reason */
	char *d = malloc(len);
	memcpy(d, s, len);
	d[len / 3] ^= 0x01;
	CHECK(!parses(d, len, why) && strstr(why, "checksum"), "a flipped bit: %s", why);
	CHECK(!parses(s, len - 1, why) && strstr(why, "cut short"), "no final newline: %s", why);
	CHECK(!parses(s, len / 2, why), "half a file: %s", why);
	CHECK(!parses(s, 0, why), "empty: %s", why);
	free(d);
	free(s);

	/* what cannot be written is refused */
	struct gos_gencache_token bad = {0, "", -1, 0, NULL};
	struct gos_gencache_entry b = {"r", NULL, -1, NAN, NAN, 1, &bad};
	CHECK(!gos_gencache_encode(&b, &len), "an empty token text is not encoded");
}

static char dir[128];

static int count_files(const char *suffix)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name), sl = strlen(suffix);
		n += l >= sl && !strcmp(de->d_name + l - sl, suffix) && de->d_name[0] != '.';
		n += !strcmp(suffix, "tmp") && !strncmp(de->d_name, ".tmp-", 5);
	}
	if (d)
		closedir(d);
	return n;
}

static enum gos_gencache_result load(const char *req)
{
	struct gos_arena a = {0};
	struct gos_gencache_entry e;
	char why[200];
	enum gos_gencache_result r = gos_gencache_load(dir, req, &e, &a, why, sizeof why);
	gos_arena_finish(&a);
	return r;
}

static void test_files(void)
{
	snprintf(dir, sizeof dir, "/tmp/gos-test-gencache-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "a temp dir");
	size_t dl = strlen(dir);   /* + "/cache": store creates it */
	memcpy(dir + dl, "/cache", sizeof "/cache");
	char why[300];
	struct gos_gencache_entry e = entry("a");
	CHECK(load("a") == GOS_GENCACHE_MISS, "nothing stored: a miss");
	CHECK(gos_gencache_store(dir, &e, NULL, why, sizeof why), "stored: %s", why);
	CHECK(load("a") == GOS_GENCACHE_HIT && load("b") == GOS_GENCACHE_MISS, "a hit for its request only");

	/* another request whose key file is a's: a miss, a's entry kept */
	char key[GOS_GENCACHE_KEY_LEN + 1], path[256], other[256];
	gos_gencache_key("a", 1, key);
	snprintf(path, sizeof path, "%s/%s.gen", dir, key);
	gos_gencache_key("z", 1, key);
	snprintf(other, sizeof other, "%s/%s.gen", dir, key);
	CHECK(rename(path, other) == 0 && load("z") == GOS_GENCACHE_MISS && count_files(".gen") == 1,
	      "an entry for another request under the key: a miss");
	unlink(other);

	/* corrupt: reported, removed */
	FILE *f = fopen(path, "wb");
	fputs("{\"gos_gencache\":1}\n", f);
	fclose(f);
	CHECK(load("a") == GOS_GENCACHE_CORRUPT && access(path, F_OK) != 0, "a corrupt entry is removed");

	/* LRU: three entries under a bound that holds two and a half */
	struct gos_gencache_entry x = entry("x"), y = entry("y"), z = entry("z");
	size_t one;
	free(gos_gencache_encode(&x, &one));
	struct gos_gencache_opts o = {.max_bytes = one * 5 / 2};
	struct timespec ms = {0, 20 * 1000 * 1000};
	CHECK(gos_gencache_store(dir, &x, &o, why, sizeof why), "x stored");
	nanosleep(&ms, NULL);
	CHECK(gos_gencache_store(dir, &y, &o, why, sizeof why), "y stored");
	nanosleep(&ms, NULL);
	CHECK(load("x") == GOS_GENCACHE_HIT, "x used again");
	nanosleep(&ms, NULL);
	CHECK(gos_gencache_store(dir, &z, &o, why, sizeof why), "z stored");
	CHECK(load("x") == GOS_GENCACHE_HIT && load("y") == GOS_GENCACHE_MISS && load("z") == GOS_GENCACHE_HIT,
	      "y, the least recently used, went");
	o.max_bytes = 100;
	CHECK(!gos_gencache_store(dir, &x, &o, why, sizeof why) && strstr(why, "larger"), "an entry over the bound: %s",
	      why);

	/* a dead process's temp file goes at the next store; a live one's stays */
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);
	char dead[300], live[300];
	snprintf(dead, sizeof dead, "%s/.tmp-%ld-%s", dir, (long)child, key);
	snprintf(live, sizeof live, "%s/.tmp-%ld-%s", dir, (long)getpid(), "0123");
	fclose(fopen(dead, "wb"));
	fclose(fopen(live, "wb"));
	CHECK(gos_gencache_store(dir, &y, NULL, why, sizeof why), "y stored again");
	CHECK(access(dead, F_OK) != 0 && access(live, F_OK) == 0, "the dead writer's temp file is removed, not ours");
	unlink(live);

	/* clean up */
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
	*strrchr(dir, '/') = '\0';
	rmdir(dir);
}

int main(void)
{
	test_round_trip();
	test_files();
	return gos_test_report("test_gencache");
}
