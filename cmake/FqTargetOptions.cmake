# fq_target_options(<target>): warnings, -Werror, ISO mode, sanitizers and -march=native for
# fakequant's own targets (tests, examples, benchmarks) — never for the exported target.
function(fq_target_options target)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                             -Wsign-conversion -Wnon-virtual-dtor)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # GCC 12 reports its own AVX-512 intrinsics (_mm512_undefined_*) as maybe-uninitialized
      # (GCC bug 105593) where Eigen inlines them, e.g. in maxCoeff(); our headers silence it
      # locally, Eigen's do not.
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
      if(FQ_NATIVE_ARCH)  # the same bug, reported as -Wuninitialized in Eigen's exp()
        target_compile_options(${target} PRIVATE -Wno-uninitialized)
      endif()
    endif()
    if(FQ_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
    if(FQ_NATIVE_ARCH)
      target_compile_options(${target} PRIVATE -march=native)
    endif()
    if(FQ_SANITIZE)
      target_compile_options(${target} PRIVATE -fsanitize=${FQ_SANITIZE} -fno-omit-frame-pointer
                                               -fno-sanitize-recover=all)
      target_link_options(${target} PRIVATE -fsanitize=${FQ_SANITIZE})
    endif()
  elseif(MSVC)
    target_compile_options(${target} PRIVATE /W4 $<$<BOOL:${FQ_WERROR}>:/WX>)
  endif()
endfunction()
