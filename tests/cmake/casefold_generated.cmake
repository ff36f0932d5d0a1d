# cmake -DPYTHON=python3 -DSRC=source-dir -DOUT=scratch-file -P casefold_generated.cmake
# Fails when compositor/base/gos_casefold_table.h differs from what
# tools/gen_casefold.py writes. A Python with another Unicode version than
# the one the file was made from (and no CaseFolding.txt) cannot tell:
# the test says so and is skipped ("SKIP:").
if(NOT PYTHON OR NOT EXISTS "${PYTHON}")
  message(FATAL_ERROR "python3 not found: it is needed to check gos_casefold_table.h")
endif()
set(TABLE ${SRC}/compositor/base/gos_casefold_table.h)
file(STRINGS ${TABLE} have REGEX "^#define GOS_CASEFOLD_UNICODE")
string(REGEX REPLACE ".*\"(.*)\".*" "\\1" have "${have}")
execute_process(COMMAND ${PYTHON} -c "import unicodedata; print(unicodedata.unidata_version)"
                OUTPUT_VARIABLE py OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT EXISTS /usr/share/unicode/CaseFolding.txt AND NOT py STREQUAL have)
  message(STATUS "SKIP: the table is from Unicode ${have}, this python3 knows ${py}")
  return()
endif()
execute_process(COMMAND ${PYTHON} ${SRC}/tools/gen_casefold.py OUTPUT_FILE ${OUT}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tools/gen_casefold.py failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT} ${TABLE} RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "compositor/base/gos_casefold_table.h is stale: run python3 "
          "tools/gen_casefold.py > compositor/base/gos_casefold_table.h")
endif()
message(STATUS "compositor/base/gos_casefold_table.h matches tools/gen_casefold.py")
