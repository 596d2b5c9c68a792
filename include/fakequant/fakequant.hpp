// SPDX-License-Identifier: MIT
// fakequant/fakequant.hpp: includes the fake-quant API: quantizers, observers, learnable
// quantizers, schedules and the testing kit. The training stack (tape/, ops/ops.hpp, layers/,
// optim/), the int8 kernels (kernels/) and convert/ are included separately, so that code that
// only fake-quantizes does not compile them (fakequant/all.hpp includes everything);
// testing/catch2.hpp needs Catch2.
#ifndef FQ_FAKEQUANT_HPP_
#define FQ_FAKEQUANT_HPP_

#include <fakequant/config.hpp>
#include <fakequant/core/fake_quantize.hpp>
#include <fakequant/core/mask.hpp>
#include <fakequant/core/range.hpp>
#include <fakequant/core/tensor_view.hpp>
#include <fakequant/error.hpp>
#include <fakequant/fake_quantize_module.hpp>
#include <fakequant/learnable/learnable.hpp>
#include <fakequant/observer/fused_qparams.hpp>
#include <fakequant/observer/histogram.hpp>
#include <fakequant/observer/histogram_observer.hpp>
#include <fakequant/observer/histogram_range.hpp>
#include <fakequant/observer/minmax_observer.hpp>
#include <fakequant/observer/qparams.hpp>
#include <fakequant/presets.hpp>
#include <fakequant/quantizer.hpp>
#include <fakequant/schedule/qat_schedule.hpp>
#include <fakequant/testing/testing.hpp>
#include <fakequant/version.hpp>

#endif  // FQ_FAKEQUANT_HPP_
