// SPDX-License-Identifier: MIT
// fakequant/base/version.hpp: the library version, parsed by CMake from this file.
#ifndef FQ_BASE_VERSION_HPP_
#define FQ_BASE_VERSION_HPP_

#define FQ_VERSION_MAJOR 0
#define FQ_VERSION_MINOR 1
#define FQ_VERSION_PATCH 0

/// The version as one integer, MAJOR * 10000 + MINOR * 100 + PATCH.
#define FQ_VERSION (FQ_VERSION_MAJOR * 10000 + FQ_VERSION_MINOR * 100 + FQ_VERSION_PATCH)

#endif  // FQ_BASE_VERSION_HPP_
