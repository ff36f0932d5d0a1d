# Runs at install time (cmake --install, and cpack through it): the files
# that name where gos is installed, which only the install knows
# (CMAKE_INSTALL_PREFIX: --prefix, or /usr in the .deb; DESTDIR is applied
# by file(INSTALL), which also records each file in the install manifest).
# The top-level CMakeLists.txt sets GOS_SOURCE_DIR, GOS_BINARY_DIR,
# GOS_MAN_PAGES and GOS_UNIT_DIR before including this.
set(gen ${GOS_BINARY_DIR}/install-generated)
file(MAKE_DIRECTORY ${gen})

# The systemd units (the compositor's, and the relays' template), with the
# installed programs' path.
set(GOS_BINDIR ${CMAKE_INSTALL_PREFIX}/bin)
set(GOS_DOCDIR ${CMAKE_INSTALL_PREFIX}/share/doc/gos)
set(units gos-compositor.service gos-relay@.service)
set(unit_files)
foreach(u ${units})
  configure_file(${GOS_SOURCE_DIR}/assets/systemd/${u}.in ${gen}/${u} @ONLY)
  list(APPEND unit_files ${gen}/${u})
endforeach()
if(IS_ABSOLUTE "${GOS_UNIT_DIR}")
  set(unit_dir ${GOS_UNIT_DIR})
else()
  set(unit_dir ${CMAKE_INSTALL_PREFIX}/${GOS_UNIT_DIR})
endif()
file(INSTALL DESTINATION ${unit_dir} TYPE FILE FILES ${unit_files})

# Man pages: the build's pages name the source tree's viewer folder as
# --web-dir's default (a build-tree program serves it); an installed one
# serves PREFIX/share/gos/web. help2man writes '-' as '\-'.
set(src_web ${GOS_SOURCE_DIR}/assets/web)
set(inst_web ${CMAKE_INSTALL_PREFIX}/share/gos/web)
string(REPLACE "-" "\\-" src_web_esc "${src_web}")
string(REPLACE "-" "\\-" inst_web_esc "${inst_web}")
foreach(page ${GOS_MAN_PAGES})
  get_filename_component(name ${page} NAME)
  file(READ ${page} text)
  string(REPLACE "${src_web_esc}" "${inst_web_esc}" text "${text}")
  string(REPLACE "${src_web}" "${inst_web}" text "${text}")
  file(WRITE ${gen}/${name} "${text}")
  file(INSTALL DESTINATION ${CMAKE_INSTALL_PREFIX}/share/man/man1 TYPE FILE FILES ${gen}/${name})
endforeach()
