# check_isa_symbols.cmake — fails if an object file compiled with ISA flags (arch_<isa>.cpp of
# libckh_kernels) defines any external symbol other than its kernel table.
#
# Why: an inline function or template instantiation emitted out of line in an AVX2/AVX-512 TU is a
# weak symbol; the linker keeps one copy for the whole program, and if it keeps the AVX one, the
# scalar or SSE2 table calls AVX instructions (SIGILL on an older CPU). With everything of impl.hpp in
# an anonymous namespace and inlined, the only external symbol must be the table itself.
#   cmake -DNM=<nm> -DOBJECTS=<obj1|obj2|...> -P check_isa_symbols.cmake
string(REPLACE "|" ";" _objects "${OBJECTS}")
set(_checked 0)
set(_bad "")
foreach(_o IN LISTS _objects)
  get_filename_component(_name "${_o}" NAME)
  if(NOT _name MATCHES "^arch_(sse2|avx2|avx512)\\.cpp\\.o(bj)?$")
    continue()
  endif()
  math(EXPR _checked "${_checked} + 1")
  execute_process(COMMAND "${NM}" -g --defined-only "${_o}" OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${_o}")
  endif()
  string(REPLACE "\n" ";" _lines "${_out}")
  set(_tables 0)
  foreach(_l IN LISTS _lines)
    if(_l STREQUAL "")
      continue()
    endif()
    if(_l MATCHES " [DR] _ZN3ckh7kernels6detail[0-9]+kTable[A-Za-z0-9]+E$")
      math(EXPR _tables "${_tables} + 1")
    elseif(_l MATCHES " V DW\\.ref\\.__gxx_personality_v0$")
      # data: the pointer to the C++ personality routine, identical in every TU
    else()
      string(APPEND _bad "\n  ${_name}: ${_l}")
    endif()
  endforeach()
  if(NOT _tables EQUAL 1)
    string(APPEND _bad "\n  ${_name}: expected exactly one kernel table symbol, found ${_tables}")
  endif()
endforeach()
if(NOT _checked EQUAL 3)
  message(FATAL_ERROR "expected 3 per-ISA object files in OBJECTS, found ${_checked}: ${OBJECTS}")
endif()
if(_bad)
  message(FATAL_ERROR "per-ISA object files export symbols other than their table:${_bad}")
endif()
message(STATUS "per-ISA object files export only their kernel tables")
