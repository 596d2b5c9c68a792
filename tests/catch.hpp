// SPDX-License-Identifier: MIT
// tests/catch.hpp: Catch2 2.13 or 3.x, whichever is installed.
#ifndef FQ_TESTS_CATCH_HPP_
#define FQ_TESTS_CATCH_HPP_

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#endif  // FQ_TESTS_CATCH_HPP_
