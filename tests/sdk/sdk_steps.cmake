# The steps of the SDK tests, one per CTest test, run as
#
#   cmake -DSTEP=<step> -DWORK=<dir> ... -P sdk_steps.cmake
#
# Steps (each fails with a message naming what went wrong):
#   install          wipe WORK, `cmake --install BUILD_DIR --prefix WORK/prefix`, check the files
#   build_cmake      build EXAMPLE out of tree with find_package(Cparallel) against that prefix
#                    alone, install it into WORK/plugins-cmake, check its exported symbols
#   build_pkgconfig  build EXAMPLE with the README's one-line `cc ... $(pkg-config ...)` into
#                    WORK/plugins-pc, check its exported symbols
#   list             run the installed cpcontroller --list-plugins with CPAR_PLUGIN_PATH=PLUGIN_DIR
#                    and check that it loads scheduler/tagged from there, with and without tags
#   cleanup          remove WORK (kept when CPAR_KEEP_TMP=1)
#
# Variables: STEP, WORK, and per step BUILD_DIR, LIBDIR, BINDIR, INCLUDEDIR (the build's
# GNUInstallDirs), EXAMPLE (the example's source dir), GENERATOR, CC, NM, PKG_CONFIG, PLUGIN_DIR.
cmake_minimum_required(VERSION 3.18)

set(prefix "${WORK}/prefix")
set(plugin_file "cpar_scheduler_tagged.so")
set(plugin_symbol "cpar_scheduler_tagged_plugin")
# What the example build must compile cleanly with: the SDK headers are C11 and warning-free.
set(strict_flags "-Wall -Wextra -Wpedantic -Werror")

# run(<what> COMMAND ...): run a command, echo its output, fail the step when it fails.
function(run what)
  cmake_parse_arguments(R "" "OUTPUT_VARIABLE;WORKING_DIRECTORY" "COMMAND" ${ARGN})
  if(NOT R_WORKING_DIRECTORY)
    set(R_WORKING_DIRECTORY "${WORK}")
  endif()
  execute_process(COMMAND ${R_COMMAND}
    WORKING_DIRECTORY "${R_WORKING_DIRECTORY}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ ${R_COMMAND}\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (exit status ${rc})")
  endif()
  if(R_OUTPUT_VARIABLE)
    set(${R_OUTPUT_VARIABLE} "${out}${err}" PARENT_SCOPE)
  endif()
endfunction()

# check_exports(<so>): the plugin exports exactly the descriptor and nothing else.
function(check_exports so)
  if(NOT EXISTS "${so}")
    message(FATAL_ERROR "the build made no ${so}")
  endif()
  run("nm -D --defined-only ${so}" COMMAND "${NM}" -D --defined-only "${so}" OUTPUT_VARIABLE out)
  string(REGEX MATCHALL "[^\n]+" lines "${out}")
  set(symbols)
  foreach(line IN LISTS lines)
    # "<address> <type> <name>"
    if(line MATCHES "^[0-9a-fA-F]+ [A-Za-z] ([^ ]+)$")
      list(APPEND symbols "${CMAKE_MATCH_1}")
    else()
      message(FATAL_ERROR "unexpected nm output line: '${line}'")
    endif()
  endforeach()
  if(NOT symbols STREQUAL plugin_symbol)
    message(FATAL_ERROR "${so} must export exactly '${plugin_symbol}'; it exports: '${symbols}'")
  endif()
  message("${so} exports exactly ${plugin_symbol}")
endfunction()

# expect(<text> <regex> <what>): fail unless <text> matches <regex>.
function(expect text regex what)
  if(NOT text MATCHES "${regex}")
    message(FATAL_ERROR "${what}: expected a match for '${regex}' in:\n${text}")
  endif()
endfunction()

if(STEP STREQUAL "install")
  file(REMOVE_RECURSE "${WORK}")
  file(MAKE_DIRECTORY "${WORK}")
  run("installing the build tree"
      COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")
  # What a plugin author and a site get from an installation.
  foreach(f
      "${BINDIR}/cpcontroller"
      "${INCLUDEDIR}/cparallel/plugin.h"
      "${INCLUDEDIR}/cparallel/errors.h"
      "${INCLUDEDIR}/cparallel/scheduler.h"
      "${LIBDIR}/pkgconfig/cparallel-plugin.pc"
      "${LIBDIR}/cmake/Cparallel/CparallelConfig.cmake"
      "${LIBDIR}/cmake/Cparallel/CparallelConfigVersion.cmake"
      "${LIBDIR}/cparallel/cpar_scheduler_leastload.so")
    if(NOT EXISTS "${prefix}/${f}")
      message(FATAL_ERROR "the installation has no ${f}")
    endif()
  endforeach()
  message("installed into ${prefix}")

elseif(STEP STREQUAL "build_cmake")
  set(bdir "${WORK}/build-cmake")
  set(idir "${WORK}/plugins-cmake")
  file(REMOVE_RECURSE "${bdir}" "${idir}")
  # Only the installed prefix is on the search path: the source tree's SDK is not reachable.
  run("configuring the example with CMake"
      COMMAND "${CMAKE_COMMAND}" -S "${EXAMPLE}" -B "${bdir}" -G "${GENERATOR}"
              "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_INSTALL_PREFIX=${idir}"
              -DCMAKE_INSTALL_LIBDIR=lib "-DCMAKE_C_FLAGS=${strict_flags}")
  file(STRINGS "${bdir}/CMakeCache.txt" found REGEX "^Cparallel_DIR:")
  if(NOT found STREQUAL "Cparallel_DIR:PATH=${prefix}/${LIBDIR}/cmake/Cparallel")
    message(FATAL_ERROR "find_package(Cparallel) did not use the installed prefix: ${found}")
  endif()
  run("building the example with CMake" COMMAND "${CMAKE_COMMAND}" --build "${bdir}")
  run("installing the example" COMMAND "${CMAKE_COMMAND}" --install "${bdir}")
  check_exports("${idir}/lib/cparallel/${plugin_file}")

elseif(STEP STREQUAL "build_pkgconfig")
  set(odir "${WORK}/plugins-pc")
  file(REMOVE_RECURSE "${odir}")
  file(MAKE_DIRECTORY "${odir}")
  set(ENV{PKG_CONFIG_PATH} "${prefix}/${LIBDIR}/pkgconfig")
  # The flags must point into the installed prefix, nowhere else of this project.
  run("pkg-config --cflags cparallel-plugin"
      COMMAND "${PKG_CONFIG}" --cflags cparallel-plugin OUTPUT_VARIABLE cflags)
  get_filename_component(want_inc "${prefix}/${INCLUDEDIR}" REALPATH)
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  set(found_inc FALSE)
  foreach(flag IN LISTS cflags)
    if(flag MATCHES "^-I(.+)$")
      get_filename_component(inc "${CMAKE_MATCH_1}" REALPATH)
      if(inc STREQUAL want_inc)
        set(found_inc TRUE)
      endif()
    endif()
  endforeach()
  if(NOT found_inc)
    message(FATAL_ERROR "pkg-config cparallel-plugin gives '${cflags}', without -I${want_inc}")
  endif()
  # The README's command line, as a user types it into a shell.
  run("building the example with cc and pkg-config"
      WORKING_DIRECTORY "${EXAMPLE}"
      COMMAND sh -c "${CC} ${strict_flags} -shared -fPIC -fvisibility=hidden -Wl,-z,defs \
-o '${odir}/${plugin_file}' tagged.c $(pkg-config --cflags --libs cparallel-plugin jansson)")
  check_exports("${odir}/${plugin_file}")

elseif(STEP STREQUAL "list")
  set(cp "${prefix}/${BINDIR}/cpcontroller")
  # A profile of our own, so that no user config of this account is read.
  set(ENV{IPYTHONDIR} "${WORK}/ipython-list")
  set(ENV{CPAR_PLUGIN_PATH} "${PLUGIN_DIR}")
  string(REGEX REPLACE "([][+.*()^$?|\\\\])" "\\\\\\1" dir_re "${PLUGIN_DIR}")

  run("cpcontroller --list-plugins" COMMAND "${cp}" --list-plugins OUTPUT_VARIABLE out)
  expect("${out}" "(^|\n)scheduler/tagged [^ \n]+ loaded ${dir_re}/${plugin_file} - "
         "scheduler/tagged loaded from ${PLUGIN_DIR}")
  # The installed schedulers are still there beside it.
  expect("${out}" "(^|\n)scheduler/leastload [^ \n]+ loaded " "scheduler/leastload listed")

  # The plugin reads c.TaggedScheduler.tags through the host in init.
  run("cpcontroller --list-plugins with tags"
      COMMAND "${cp}" --list-plugins "--TaggedScheduler.tags={\"0\": \"cpu\", \"1\": \"gpu\"}"
      OUTPUT_VARIABLE out)
  expect("${out}" "(^|\n)scheduler/tagged [^ \n]+ loaded ${dir_re}/${plugin_file} - "
         "scheduler/tagged loaded with tags")
  expect("${out}" "scheduler/tagged: engine 1 has tag 'gpu'" "the tags were read")
  expect("${out}" "scheduler/tagged: engine 0 has tag 'cpu'" "the tags were read")

  # A malformed setting rejects the plugin with the plugin's own reason.
  execute_process(COMMAND "${cp}" --list-plugins "--TaggedScheduler.tags={\"gpu\": \"0\"}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("$ cpcontroller --list-plugins with bad tags (exit status ${rc})\n${out}${err}")
  set(why "key 'gpu' is not an engine id")
  expect("${out}${err}" "(^|\n)scheduler/tagged rejected ${dir_re}/${plugin_file}: [^\n]*${why}"
         "scheduler/tagged rejected for a bad tags setting")

elseif(STEP STREQUAL "cleanup")
  if("$ENV{CPAR_KEEP_TMP}" STREQUAL "1")
    message("keeping ${WORK}")
  else()
    file(REMOVE_RECURSE "${WORK}")
  endif()

else()
  message(FATAL_ERROR "sdk_steps.cmake: unknown STEP '${STEP}'")
endif()
