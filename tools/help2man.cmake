# cmake -DHELP2MAN=... -DPROGRAM=... -DNAME=... -DDESCRIPTION=... -DOUT=... -P help2man.cmake
# A man page from PROGRAM's --help and --version (help2man). Defaults that
# --help prints from the environment are pinned to what they mean for any
# user, not the builder: $XDG_RUNTIME_DIR/gos.sock, ~/.local/state/gos.
# (The web viewer's folder is rewritten to the installed one at install
# time, by tools/install_generated.cmake.)
set(ENV{XDG_RUNTIME_DIR} "$XDG_RUNTIME_DIR")
set(ENV{HOME} "~")
unset(ENV{XDG_STATE_HOME})
unset(ENV{GOS_GPU})
get_filename_component(dir ${OUT} DIRECTORY)
file(MAKE_DIRECTORY ${dir})
execute_process(COMMAND ${HELP2MAN} --no-info --no-discard-stderr
                        --name=${DESCRIPTION} --output=${OUT}.tmp ${PROGRAM}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man ${NAME}: ${err}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
