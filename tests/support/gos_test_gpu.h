/* For GPU tests, header-only: what a test does when no Vulkan device exists. */
#ifndef GOS_TEST_GPU_H
#define GOS_TEST_GPU_H

#include <stdio.h>
#include <stdlib.h>

/* A GPU test that found no Vulkan device: 77 (ctest: skipped) locally. In CI
 * (CI set), where tools/setup.sh always installs lavapipe, a skip would hide
 * a broken set-up: a failure that says so. main returns what this returns. */
static inline int gos_test_no_gpu(const char *name)
{
	if (getenv("CI") && getenv("CI")[0]) {
		printf("%s: FAILED: no Vulkan device, and CI is set: in CI every GPU test must "
		       "run (tools/setup.sh installs Mesa lavapipe)\n", name);
		return 1;
	}
	printf("%s: no Vulkan device, skipped\n", name);
	return 77;
}

#endif
