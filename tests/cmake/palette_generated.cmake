# cmake -DPYTHON=python3 -DSRC=source-dir -DOUT=scratch-file -P palette_generated.cmake
# Fails when shaders/gos_palette.h differs from what tools/gen_palette.py writes.
if(NOT PYTHON OR NOT EXISTS "${PYTHON}")
  message(FATAL_ERROR "python3 not found: it is needed to check shaders/gos_palette.h")
endif()
execute_process(COMMAND ${PYTHON} ${SRC}/tools/gen_palette.py OUTPUT_FILE ${OUT}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tools/gen_palette.py failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT} ${SRC}/shaders/gos_palette.h
                RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "shaders/gos_palette.h is stale: run python3 tools/gen_palette.py > shaders/gos_palette.h")
endif()
message(STATUS "shaders/gos_palette.h matches tools/gen_palette.py")
