/* libFuzzer target for the map's checkpoint reader (compositor/map/
 * map_image.c). The input is an image file.
 *
 * It is read twice: as it is (max_tokens 65536), and with its checksums
 * made to hold again (tests/support/map_image_fix.h; max_tokens 16), so
 * that mutations reach the checks behind the crcs. Each read must either
 * refuse with one line in err, or give a map that works: it is read whole,
 * takes more events (new tokens that evict, updates, a neural_state, a
 * visualization), and its image must read back into a map whose image is
 * the same bytes. Any failure aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gos_map.h"
#include "map_image_fix.h"

static int mem_fd(void)
{
	int fd = memfd_create("fuzz_map_image", 0);
	if (fd < 0)
		abort();
	return fd;
}

static void put(int fd, const void *p, size_t n)
{
	if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, p, n, 0) != (ssize_t)n) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort();
}

/* The image of m, left at the start of fd; its bytes in *out (malloc'd). */
static size_t image(struct gos_map *m, int fd, unsigned char **out)
{
	put(fd, NULL, 0);
	if (!gos_map_image_write(m, fd))
		abort();
	off_t n = lseek(fd, 0, SEEK_CUR);
	*out = malloc((size_t)n + 1);
	if (pread(fd, *out, (size_t)n, 0) != n || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return (size_t)n;
}

static void use(struct gos_map *m, int fd)
{
	struct gos_map_view v = {0};
	gos_map_read_all(m, 0, 0, &v);
	if (v.live_tokens != v.n_tokens)
		abort();
	static const struct gos_alt alts[2] = {{" a", -0.5f}, {" b", -1.5f}};
	static const struct gos_viz_token viz[2] = {
		{.id = "fz-1", .text = "v", .stream = "", .x = 1, .y = 2, .confidence = 0.5f},
		{.id = "fz-new", .text = "w", .stream = "fz", .x = 3, .y = 4, .confidence = 0.5f}};
	struct gos_event ev[24];
	char ids[20][16];
	for (int i = 0; i < 20; i++) {
		snprintf(ids[i], sizeof(ids[i]), "fz-%d", i % 12);
		ev[i] = (struct gos_event){.type = GOS_EV_TOKEN, .token = {
			.id = ids[i], .text = i % 5 ? " x" : "\n", .stream = i % 3 ? "fz" : "",
			.confidence = 0.5f, .logprob = -1, .n_alts = i % 4 ? 0 : 2, .alts = alts}};
	}
	ev[20] = (struct gos_event){.type = GOS_EV_STATE, .state = {.state = "s", .stream = "fz"}};
	ev[21] = (struct gos_event){.type = GOS_EV_VIZ, .viz = {2, viz}};
	ev[22] = (struct gos_event){.type = GOS_EV_SYNC};
	ev[23] = ev[0];
	gos_map_apply(m, ev, 24);
	gos_map_read_all(m, 0, 0, &v);
	gos_map_view_finish(&v);

	unsigned char *a, *b;
	size_t na = image(m, fd, &a);
	char err[256];
	struct gos_map *m2 = gos_map_image_read(fd, &(struct gos_map_opts){.log_capacity = 256},
	                                        err, sizeof(err));
	if (!m2) {
		fprintf(stderr, "fuzz_map_image: a working map's image was refused: %s\n", err);
		abort();
	}
	size_t nb = image(m2, fd, &b);
	if (na != nb || memcmp(a, b, na) != 0) {
		fprintf(stderr, "fuzz_map_image: a restored map images differently\n");
		abort();
	}
	free(a);
	free(b);
	gos_map_destroy(m2);
}

static void try_read(int fd, const unsigned char *p, size_t n, uint64_t max_tokens)
{
	put(fd, p, n);
	char err[256];
	memset(err, 'x', sizeof(err));
	struct gos_map *m = gos_map_image_read(fd, &(struct gos_map_opts){
		.max_tokens = max_tokens, .log_capacity = 256}, err, sizeof(err));
	if (!m) {
		if (!memchr(err, 0, sizeof(err)) || !err[0] || strchr(err, '\n'))
			abort();
		return;
	}
	use(m, fd);
	gos_map_destroy(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	if (fd < 0)
		fd = mem_fd();
	try_read(fd, data, size, 1u << 16);
	unsigned char *fixed = malloc(size + 1);
	memcpy(fixed, data, size);
	map_image_fix_crcs(fixed, size);
	if (memcmp(fixed, data, size) != 0)
		try_read(fd, fixed, size, 16);
	free(fixed);
	return 0;
}
