# FqDocSnippets.cmake: the C++ code blocks of README.md, docs/*.md and docs/howto/*.md are
# compiled and run by the test suite, so the documentation cannot drift from the API.
#
#   fq_add_doc_snippets()   (called from tests/CMakeLists.txt)
#
# At configure time every fenced block tagged ```cpp becomes a snippet: all snippets go into one
# generated translation unit, <build>/doc_snippets/doc_snippets.cpp (one compile for the whole
# documentation, to keep the CI budget small), each in its own namespace fq_doc_<page>_<n>, and
# each becomes a test doc_snippet.<page>.<n> (<page>: README, getting_started,
# howto_choose_a_scheme, ...; <n>: the 1-based index of the ```cpp block in that page) that runs
# it. A snippet that stops compiling breaks the build and its tests; one that throws, aborts or
# returns non-zero fails its test. Compiler messages point at the Markdown file and line (#line).
#
# How a block is compiled:
#   * with `int main()`: a complete program. main is renamed and must be the last function of
#     the block (a `return 0;` is added before its closing brace);
#   * without main: the body of a function (statements, local types and aliases);
#   * `#include` lines are hoisted to the top of the generated file; <fakequant/fakequant.hpp>
#     is always included (the training, kernel and convert headers are not: include them);
#   * a block right after `<!-- fq-snippet: skip -->` is a fragment and is not compiled;
#   * a block right after `<!-- fq-snippet: global -->` is namespace-scope code (declarations,
#     functions), compiled and not run;
#   * `<!-- fq-snippet-setup` ... `-->` right before a block (an HTML comment: invisible on the
#     rendered page) is code at namespace scope placed before the block, to give a fragment
#     the functions and variables it refers to; `<!-- fq-snippet-local` ... `-->` is code put
#     at the start of the function a block without main() becomes (local variables, e.g. for
#     lambdas that capture them). A setup may reuse an earlier global block of the page with
#     `using namespace fq_doc_<page>_<n>;`.
# Snippets on one page do not share variables. Markers may be separated from the block by blank
# lines only. Warnings are the project's (-Werror) except unused variables/functions.
# The generated file and the tests are refreshed whenever a page changes (configure dependency);
# the executable is then deleted, so a broken snippet cannot pass on a stale binary.
# Run one: ctest -R doc_snippet.getting_started.4, or <build>/doc_snippets/fq_doc_snippets
# [page [n]].

option(FQ_DOC_SNIPPETS "Compile and run the C++ code blocks of the docs as tests" ON)

# Appends the snippet `code` (a block of page `md`) to the output variables of the caller.
# mode: run | main | global.
macro(_fq_doc_emit_snippet)
  set(_ns "fq_doc_${_page}_${_n}")
  set(_s "namespace ${_ns} {\n")
  if(NOT _setup STREQUAL "")
    string(APPEND _s "#line ${_setup_line} \"${_md}\"\n${_setup}")
  endif()
  if(_mode STREQUAL "global")
    string(APPEND _s "#line ${_block_line} \"${_md}\"\n${_code}int run() { return 0; }\n")
  elseif(_mode STREQUAL "main")
    string(FIND "${_code}" "}" _last REVERSE)
    string(SUBSTRING "${_code}" 0 ${_last} _head)
    string(SUBSTRING "${_code}" ${_last} -1 _tail)
    string(REGEX REPLACE "int main\\(\\)" "int snippet_main()" _head "${_head}")
    string(APPEND _s "#line ${_block_line} \"${_md}\"\n${_head}return 0; ${_tail}"
                     "int run() { return snippet_main(); }\n")
  else()
    string(APPEND _s "int run() {\n")
    if(NOT _local STREQUAL "")
      string(APPEND _s "#line ${_local_line} \"${_md}\"\n${_local}")
    endif()
    string(APPEND _s "#line ${_block_line} \"${_md}\"\n${_code}return 0;\n}\n")
  endif()
  string(APPEND _s "}  // namespace ${_ns}\n")
  string(APPEND _fq_doc_bodies "${_s}")
  string(APPEND _fq_doc_decls "namespace ${_ns} { int run(); }\n")
  string(APPEND _fq_doc_table "    {\"${_page}\", ${_n}, &${_ns}::run},\n")
  list(APPEND _fq_doc_tests "${_page}:${_n}")
endmacro()

# Moves the #include of CMAKE_MATCH_1 to the top of the generated file (once).
macro(_fq_doc_hoist_include)
  set(_inc "#include ${CMAKE_MATCH_1}\n")
  string(FIND "${_fq_doc_includes}" "${_inc}" _seen)
  if(_seen EQUAL -1)
    string(APPEND _fq_doc_includes "${_inc}")
  endif()
endmacro()

# Scans one Markdown page for ```cpp blocks and the markers above.
function(_fq_doc_scan_page _md)
  file(RELATIVE_PATH _rel "${PROJECT_SOURCE_DIR}" "${_md}")
  string(REGEX REPLACE "\\.md$" "" _page "${_rel}")
  string(REGEX REPLACE "^docs/" "" _page "${_page}")
  string(MAKE_C_IDENTIFIER "${_page}" _page)
  if(_page IN_LIST _fq_doc_skip_pages)
    return()
  endif()
  file(READ "${_md}" _rest)
  string(REPLACE "\r" "" _rest "${_rest}")
  set(_line_no 0)
  set(_fence "")        # "", cpp or other
  set(_indent 0)        # indentation of the opening ```cpp
  set(_pending "")      # skip | global, from a marker
  set(_in_setup OFF)
  set(_setup "")
  set(_setup_line 0)
  set(_local "")
  set(_local_line 0)
  set(_n 0)
  set(_done OFF)
  while(NOT _done)
    string(FIND "${_rest}" "\n" _nl)
    if(_nl EQUAL -1)
      set(_line "${_rest}")
      set(_done ON)
    else()
      string(SUBSTRING "${_rest}" 0 ${_nl} _line)
      math(EXPR _nl "${_nl} + 1")
      string(SUBSTRING "${_rest}" ${_nl} -1 _rest)
    endif()
    math(EXPR _line_no "${_line_no} + 1")
    if(_in_setup)
      if(_line MATCHES "^(.*)-->[ \t]*$")
        string(APPEND _${_in_setup} "${CMAKE_MATCH_1}\n")
        set(_in_setup OFF)
      elseif(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*([<\"][^>\"]+[>\"])")
        _fq_doc_hoist_include()
        string(APPEND _${_in_setup} "\n")
      else()
        string(APPEND _${_in_setup} "${_line}\n")
      endif()
    elseif(_fence STREQUAL "cpp")
      if(_line MATCHES "^[ \t]*```[ \t]*$")
        set(_fence "")
        if(_pending STREQUAL "skip")
          # A fragment: not compiled.
        else()
          if(_pending STREQUAL "global")
            set(_mode global)
          elseif(_code MATCHES "int main\\(")
            if(NOT _code MATCHES "int main\\(\\)")
              message(SEND_ERROR "${_rel}:${_block_line}: a snippet's main() takes no arguments")
            endif()
            set(_mode main)
          else()
            set(_mode run)
          endif()
          _fq_doc_emit_snippet()
        endif()
        set(_pending "")
        set(_setup "")
        set(_local "")
      else()
        if(_indent GREATER 0 AND _line MATCHES "^[ \t]")
          string(LENGTH "${_line}" _len)
          if(_len GREATER_EQUAL _indent)
            string(SUBSTRING "${_line}" ${_indent} -1 _line)
          endif()
        endif()
        if(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*([<\"][^>\"]+[>\"])")
          _fq_doc_hoist_include()
          string(APPEND _code "\n")  # keeps the line numbers
        else()
          string(APPEND _code "${_line}\n")
        endif()
      endif()
    elseif(_fence STREQUAL "other")
      if(_line MATCHES "^[ \t]*```[ \t]*$")
        set(_fence "")
      endif()
    elseif(_line MATCHES "^([ \t]*)```cpp[ \t]*$")
      set(_fence cpp)
      string(LENGTH "${CMAKE_MATCH_1}" _indent)
      math(EXPR _n "${_n} + 1")
      math(EXPR _block_line "${_line_no} + 1")
      set(_code "")
    elseif(_line MATCHES "^[ \t]*```")
      set(_fence other)
      set(_pending "")
      set(_setup "")
      set(_local "")
    elseif(_line MATCHES "^[ \t]*<!-- fq-snippet: (skip|global) -->[ \t]*$")
      set(_pending "${CMAKE_MATCH_1}")
    elseif(_line MATCHES "^[ \t]*<!-- fq-snippet-(setup|local)[ \t]*$")
      set(_in_setup ${CMAKE_MATCH_1})
      set(_${_in_setup} "")
      math(EXPR _${_in_setup}_line "${_line_no} + 1")
    elseif(NOT _line MATCHES "^[ \t]*$")
      set(_pending "")
      set(_setup "")
      set(_local "")
    endif()
  endwhile()
  if(NOT _fence STREQUAL "" OR _in_setup)
    message(SEND_ERROR "${_rel}: unterminated code block or fq-snippet-setup comment")
  endif()
  foreach(_v _fq_doc_includes _fq_doc_bodies _fq_doc_decls _fq_doc_table _fq_doc_tests)
    set(${_v} "${${_v}}" PARENT_SCOPE)
  endforeach()
endfunction()

function(fq_add_doc_snippets)
  if(NOT FQ_DOC_SNIPPETS)
    return()
  endif()
  file(GLOB _pages CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/*.md"
       "${PROJECT_SOURCE_DIR}/docs/howto/*.md")
  list(INSERT _pages 0 "${PROJECT_SOURCE_DIR}/README.md")
  # Whole pages not compiled (none today; a fragment is marked in the page itself).
  set(_fq_doc_skip_pages "")
  set(_fq_doc_includes "#include <fakequant/fakequant.hpp>\n")
  set(_fq_doc_bodies "")
  set(_fq_doc_decls "")
  set(_fq_doc_table "")
  set(_fq_doc_tests "")
  foreach(_md IN LISTS _pages)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_md}")
    _fq_doc_scan_page("${_md}")
  endforeach()
  if(_fq_doc_tests STREQUAL "")
    return()
  endif()
  set(_dir "${PROJECT_BINARY_DIR}/doc_snippets")
  set(_src "${_dir}/doc_snippets.cpp")
  file(WRITE "${_src}.tmp"
    "// Generated by cmake/FqDocSnippets.cmake from the ```cpp blocks of README.md and docs/.\n"
    "// Do not edit: edit the Markdown page (compiler messages point at it).\n"
    "${_fq_doc_includes}#include <cstdio>\n#include <cstring>\n#include <cstdlib>\n\n"
    "${_fq_doc_decls}\n"
    "namespace {\nstruct FqDocSnippet {\n  const char* page;\n  int n;\n  int (*run)();\n};\n"
    "const FqDocSnippet kFqDocSnippets[] = {\n${_fq_doc_table}};\n}  // namespace\n\n"
    "// fq_doc_snippets [page [n]]: runs one snippet, a page's or all of them.\n"
    "int main(int argc, char** argv) {\n"
    "  int ran = 0, failed = 0;\n"
    "  for (const FqDocSnippet& s : kFqDocSnippets) {\n"
    "    if (argc > 1 && std::strcmp(argv[1], s.page) != 0) continue;\n"
    "    if (argc > 2 && std::atoi(argv[2]) != s.n) continue;\n"
    "    std::printf(\"--- doc snippet %s #%d\\n\", s.page, s.n);\n"
    "    std::fflush(stdout);\n"
    "    const int rc = s.run();\n"
    "    std::printf(\"--- doc snippet %s #%d: %s\\n\", s.page, s.n, rc == 0 ? \"ok\" : \"FAILED\");\n"
    "    ++ran;\n"
    "    if (rc != 0) ++failed;\n"
    "  }\n"
    "  if (ran == 0) {\n"
    "    std::printf(\"no such doc snippet\\n\");\n"
    "    return 2;\n"
    "  }\n"
    "  return failed == 0 ? 0 : 1;\n"
    "}\n\n"
    "${_fq_doc_bodies}")
  # Rewritten only when it changes. When it does, the old executable is deleted, so that a
  # snippet that no longer compiles cannot leave a stale binary for its test to pass with.
  file(READ "${_src}.tmp" _new)
  set(_old "")
  if(EXISTS "${_src}")
    file(READ "${_src}" _old)
  endif()
  if(NOT _old STREQUAL _new)
    foreach(_cfg "" ${CMAKE_CONFIGURATION_TYPES})
      file(REMOVE "${_dir}/${_cfg}/fq_doc_snippets${CMAKE_EXECUTABLE_SUFFIX}")
    endforeach()
  endif()
  configure_file("${_src}.tmp" "${_src}" COPYONLY)
  add_executable(fq_doc_snippets "${_src}")
  set_target_properties(fq_doc_snippets PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${_dir}")
  target_link_libraries(fq_doc_snippets PRIVATE fakequant::fakequant)
  fq_target_options(fq_doc_snippets)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(fq_doc_snippets PRIVATE -Wno-unused-variable -Wno-unused-function
                                                   -Wno-unused-parameter)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(fq_doc_snippets PRIVATE -Wno-unused-but-set-variable)
    endif()
  endif()
  foreach(_t IN LISTS _fq_doc_tests)
    string(REPLACE ":" ";" _pn "${_t}")
    list(GET _pn 0 _p)
    list(GET _pn 1 _k)
    add_test(NAME doc_snippet.${_p}.${_k} COMMAND fq_doc_snippets ${_p} ${_k}
             WORKING_DIRECTORY "${_dir}")
  endforeach()
endfunction()
