# ckhost_add_plugin(<name> SOURCES <src>... [LINK <libs>...])
#
# Builds a ckhost plugin as a MODULE library named ckh-<name>.so that exports only ckh_plugin_entry
# (hidden visibility + version script), refuses unresolved symbols at link time (-z defs) and refuses
# -ffast-math (it would change subnormal handling for the whole process). Used in-tree and, through
# find_package(ckhost), by third-party plugins.
include_guard(GLOBAL)
set(_CKH_PLUGIN_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(ckhost_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LINK" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "ckh-${name}"
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  if(TARGET ckhost::sdk)
    target_link_libraries(${name} PRIVATE ckhost::sdk)
  else()
    target_link_libraries(${name} PRIVATE ckh_sdk)
  endif()
  target_link_libraries(${name} PRIVATE ${ARG_LINK})
  target_link_options(${name} PRIVATE
    "-Wl,--version-script=${_CKH_PLUGIN_CMAKE_DIR}/ckh_plugin.map" "-Wl,-z,defs")
  get_target_property(_opts ${name} COMPILE_OPTIONS)
  if(_opts MATCHES "fast-math" OR CMAKE_CXX_FLAGS MATCHES "fast-math" OR CMAKE_C_FLAGS MATCHES "fast-math")
    message(FATAL_ERROR "ckhost plugin ${name}: -ffast-math is not allowed in plugins")
  endif()
endfunction()

# In-tree convenience: ckh_plugin(<name> ...) = ckhost_add_plugin into the build tree's plugin dir,
# installed into <libdir>/ckhost/plugins.
function(ckh_plugin name)
  ckhost_add_plugin(${name} ${ARGN} OUTPUT_DIRECTORY "${CKH_PLUGIN_OUTPUT_DIR}")
  install(TARGETS ${name} LIBRARY DESTINATION "${CKH_PLUGIN_SUBDIR}")
endfunction()
