# compute/ and shaders/: the Vulkan context, the token compute pipeline, its
# CPU reference, and the shaders themselves.
gos_add_test(vk_context SOURCES ${CMAKE_SOURCE_DIR}/tests/test_vk_context.c
             LIBS gos_compute GPU LABELS compute gpu)
