# Included by the fragments that build libFuzzer targets (bridge.cmake,
# fuzz.cmake): finds clang and checks it can link -fsanitize=fuzzer
# (Debian: clang + libclang-rt-14-dev). Sets GOS_CLANG and GOS_FUZZ_OK, and
# GOS_FUZZ_FLAGS for the compile line of every fuzz target.
include_guard(GLOBAL)
find_program(GOS_CLANG NAMES clang-14 clang)
set(GOS_FUZZ_OK FALSE)
if(GOS_CLANG)
  set(probe_dir ${CMAKE_BINARY_DIR}/fuzz_probe)
  file(MAKE_DIRECTORY ${probe_dir})
  file(WRITE ${probe_dir}/probe.c
    "#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${GOS_CLANG} -fsanitize=fuzzer,address ${probe_dir}/probe.c -o ${probe_dir}/probe
                  RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(GOS_FUZZ_OK TRUE)
  endif()
endif()
set(GOS_FUZZ_FLAGS -std=c11 -g -O1 -D_GNU_SOURCE -Wall -Wextra
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
