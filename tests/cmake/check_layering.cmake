# tests/cmake/check_layering.cmake: every include between fakequant's headers points down.
#
#   cmake -DROOT=<dir holding fakequant/> -P check_layering.cmake
#
# Each folder of include/fakequant/ is one floor; a header may include headers of its own
# folder or of a lower floor, never of a higher one. The floors, lowest first, are the list
# below (the umbrella headers fakequant.hpp and all.hpp sit on top). A folder missing from the
# list, or another header at the top level, is an error too: the list is the map of the library.
set(FQ_FLOORS
  base        # config, version, error reporting, checked arithmetic, the Communicator interface
  policy      # plain policy tags (rounding, mapping, granularity, ...)
  scheme      # QScheme, ranges, numerics, QParams, presets
  format      # element formats: small floats (FP8/FP6/FP4), E8M0 scales, codebooks (scalar)
  core        # tensor views, masks, run plans: the scalar reference
  simd        # xsimd kernels over batch<T, Arch>, the instruction-set enum
  kernels     # the public compute entry points (fake quantize, quantize, int8 GEMM, conv)
  quantizer   # the quantizer protocol and FakeQuantizer
  observer    # observers, histogram calibration, scale restriction, FakeQuantize
  learnable   # LSQ, LSQ+, PACT
  schedule    # QAT schedules
  tape        # the reverse-mode tape and its arena
  ops         # differentiable ops on the tape
  optim       # optimizers and learning-rate schedules
  testing     # the testing kit for users' quantizers and ops
  int8        # integer layers and their parameters
  layers      # QAT layers
  convert     # QAT model -> integer model, model files
  distributed # data-parallel training: network checks, state broadcast, gradient all-reduce, MPI
)
set(FQ_TOP_HEADERS fakequant.hpp all.hpp)

if(NOT ROOT)
  message(FATAL_ERROR "check_layering: pass -DROOT=<directory holding fakequant/>")
endif()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)
list(LENGTH FQ_FLOORS _top_floor)

# floor_of(<path relative to fakequant/> <out var>)
function(floor_of rel out)
  if(rel MATCHES "^([^/]+)/")
    list(FIND FQ_FLOORS "${CMAKE_MATCH_1}" _f)
    if(_f EQUAL -1)
      set(${out} "no-floor:${CMAKE_MATCH_1}" PARENT_SCOPE)
    else()
      set(${out} ${_f} PARENT_SCOPE)
    endif()
  else()
    list(FIND FQ_TOP_HEADERS "${rel}" _t)
    if(_t EQUAL -1)
      set(${out} "no-floor:${rel}" PARENT_SCOPE)
    else()
      set(${out} ${_top_floor} PARENT_SCOPE)
    endif()
  endif()
endfunction()

file(GLOB_RECURSE _headers RELATIVE "${ROOT}/fakequant" "${ROOT}/fakequant/*.hpp")
set(_errors "")
set(_edges 0)
foreach(_h IN LISTS _headers)
  floor_of("${_h}" _hf)
  if(_hf MATCHES "^no-floor:(.*)")
    string(APPEND _errors "  ${_h}: '${CMAKE_MATCH_1}' is not a floor (add it to FQ_FLOORS)\n")
    continue()
  endif()
  file(STRINGS "${ROOT}/fakequant/${_h}" _incs REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]fakequant/")
  foreach(_line IN LISTS _incs)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]fakequant/([^>\"]+)[>\"].*" "\\1" _inc
                         "${_line}")
    math(EXPR _edges "${_edges} + 1")
    floor_of("${_inc}" _if)
    if(_if MATCHES "^no-floor:")
      string(APPEND _errors "  ${_h} includes ${_inc}, which is on no floor\n")
    elseif(_if GREATER _hf)
      list(GET FQ_FLOORS ${_hf} _hn)
      if(_if EQUAL _top_floor)
        set(_in "the umbrella headers")
      else()
        list(GET FQ_FLOORS ${_if} _in)
      endif()
      string(APPEND _errors "  ${_h} (floor ${_hf}, ${_hn}) includes ${_inc} (floor ${_if}, ${_in})\n")
    endif()
  endforeach()
endforeach()
list(LENGTH _headers _n)
if(_errors)
  message(FATAL_ERROR "fakequant layering: includes that point up or off the map:\n${_errors}"
                      "(floors, lowest first: ${FQ_FLOORS})")
endif()
if(_n EQUAL 0)
  message(FATAL_ERROR "fakequant layering: no headers under ${ROOT}/fakequant")
endif()
message(STATUS "fakequant layering: ${_n} headers, ${_edges} includes, all pointing down")
