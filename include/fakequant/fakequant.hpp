// SPDX-License-Identifier: MIT
// fakequant/fakequant.hpp: the light header, the fake-quant API: schemes, fake_quantize_*
// (kernels/fake_quantize.hpp), quantizers, observers, learnable quantizers and schedules. The
// training stack (tape/, ops/ops.hpp, layers/, optim/), the int8 kernels and layers (the rest
// of kernels/, int8/), convert/ and the testing kit (testing/testing.hpp) are included
// separately, so that code that only fake-quantizes does not compile them; fakequant/all.hpp
// includes everything but testing/catch2.hpp (which needs Catch2).
#ifndef FQ_FAKEQUANT_HPP_
#define FQ_FAKEQUANT_HPP_

#include <fakequant/base/config.hpp>
#include <fakequant/base/error.hpp>
#include <fakequant/base/version.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/kernels/fake_quantize.hpp>
#include <fakequant/learnable/learnable.hpp>
#include <fakequant/observer/fake_quantize_module.hpp>
#include <fakequant/observer/fused_qparams.hpp>
#include <fakequant/observer/group_observer.hpp>
#include <fakequant/observer/histogram.hpp>
#include <fakequant/observer/histogram_observer.hpp>
#include <fakequant/observer/histogram_range.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/quantizer/fake_quantizer.hpp>
#include <fakequant/quantizer/formats.hpp>
#include <fakequant/schedule/qat_schedule.hpp>
#include <fakequant/scheme/presets.hpp>
#include <fakequant/scheme/qparams.hpp>
#include <fakequant/scheme/qscheme.hpp>
#include <fakequant/scheme/range.hpp>

#endif  // FQ_FAKEQUANT_HPP_
