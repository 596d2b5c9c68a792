# tests/cmake/consumer.cmake: what the three consumer projects share; each includes it.

# This file's folder, captured now: inside a function CMAKE_CURRENT_LIST_DIR is the caller's.
set(FQ_CONSUMER_DIR "${CMAKE_CURRENT_LIST_DIR}")

# fq_require_not_top_level(): fakequant pulled in as a subproject (add_subdirectory,
# FetchContent) must leave its tests, examples, install rules and -Werror off.
function(fq_require_not_top_level)
  foreach(_opt FQ_BUILD_TESTS FQ_BUILD_EXAMPLES FQ_INSTALL FQ_WERROR)
    if(${_opt})
      message(FATAL_ERROR "fakequant is not top level but ${_opt} is ${${_opt}}")
    endif()
  endforeach()
  foreach(_tgt fq_tests fq_header_check fq_no_exceptions quantize_schemes)
    if(TARGET ${_tgt})
      message(FATAL_ERROR "fakequant is not top level but its target ${_tgt} is built")
    endif()
  endforeach()
endfunction()

# fq_add_consumer(HOW): the consumer program, told how it got fakequant.
function(fq_add_consumer how)
  add_executable(fq_consumer ${FQ_CONSUMER_DIR}/consumer_main.cpp)
  target_compile_definitions(fq_consumer PRIVATE FQ_CONSUMER_HOW="${how}")
  target_link_libraries(fq_consumer PRIVATE fakequant::fakequant)
endfunction()
