# cpar_add_plugin(<kind> <name> SOURCES ... [LIBRARIES ...])
#
# Builds cpar_<kind>_<name>.so as a MODULE with hidden visibility and -z defs, against the SDK
# headers only, into the shared plugin directory of the build tree, and installs it.
function(cpar_add_plugin kind name)
  cmake_parse_arguments(P "NO_INSTALL" "OUTPUT_DIR" "SOURCES;LIBRARIES" ${ARGN})
  set(target cpar_${kind}_${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX "" C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY "${CPAR_PLUGIN_OUTPUT_DIR}"
    INSTALL_RPATH "$ORIGIN/..")
  if(P_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${P_OUTPUT_DIR}")
  endif()
  target_link_libraries(${target} PRIVATE cparallel_sdk ${P_LIBRARIES})
  if(NOT CPAR_SANITIZE)
    target_link_options(${target} PRIVATE "LINKER:-z,defs")
  endif()
  if(NOT P_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION "${CPAR_PLUGIN_SUBDIR}")
  endif()
endfunction()
