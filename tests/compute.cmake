# compute/ and shaders/: the Vulkan context, the token compute pipeline, its
# CPU reference, and the shaders themselves.
gos_add_test(compute_ref SOURCES ${CMAKE_SOURCE_DIR}/tests/test_compute_ref.c
             LIBS gos_compute_ref SAN LABELS compute)
gos_add_test(vk_context SOURCES ${CMAKE_SOURCE_DIR}/tests/test_vk_context.c
             LIBS gos_compute GPU LABELS compute gpu)
gos_add_test(compute_gpu SOURCES ${CMAKE_SOURCE_DIR}/tests/test_compute_gpu.c
             LIBS gos_compute GPU TIMEOUT 300 LABELS compute gpu)

# spirv-val over every compiled shader (fails when spirv-val is missing).
add_test(NAME shaders_spirv_val
         COMMAND ${CMAKE_COMMAND} -DSPIRV_VAL=${SPIRV_VAL} -DSPV_DIR=${GOS_SHADER_OUT}
                 -P ${CMAKE_SOURCE_DIR}/tests/cmake/spirv_val.cmake)
set_tests_properties(shaders_spirv_val PROPERTIES LABELS "compute;shaders" TIMEOUT 60)

# shaders/gos_palette.h is what tools/gen_palette.py generates.
find_program(GOS_PYTHON3 python3)
add_test(NAME palette_generated
         COMMAND ${CMAKE_COMMAND} -DPYTHON=${GOS_PYTHON3} -DSRC=${CMAKE_SOURCE_DIR}
                 -DOUT=${CMAKE_BINARY_DIR}/gos_palette.generated.h
                 -P ${CMAKE_SOURCE_DIR}/tests/cmake/palette_generated.cmake)
set_tests_properties(palette_generated PROPERTIES LABELS "compute;shaders" TIMEOUT 60)
# gos_compute's CPU mode (--cpu-compute) and the logged fallback to it when
# the GPU token pipeline fails (forced by GOS_FORCE_COMPUTE_FAIL=1).
gos_add_test(compute_cpu SOURCES ${CMAKE_SOURCE_DIR}/tests/test_compute_cpu.c
             LIBS gos_compute GPU TIMEOUT 120 LABELS compute gpu)
