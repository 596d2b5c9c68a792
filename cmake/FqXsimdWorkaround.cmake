# Debian 12's xsimd 8.1 package exports `xsimd` with INTERFACE_LINK_LIBRARIES "xtl" although
# xsimd does not need xtl and no xtl package is installed with it, so linking `xsimd` would
# add -lxtl. Define an empty global `xtl` target in that case (xsimd is header-only).
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_fq_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if("xtl" IN_LIST _fq_xsimd_links)
    add_library(xtl INTERFACE IMPORTED GLOBAL)
  endif()
endif()
