// SPDX-License-Identifier: MIT
// fakequant/learnable/learnable.hpp: the learnable quantizers — LSQ / LSQ+ (lsq.hpp), PACT
// (pact.hpp), their snapshots as fixed quantizers (freeze.hpp), their policies (grad_scale.hpp,
// scale_param.hpp, lsq_numerics.hpp) and the power-of-two scale restriction
// (observer/scale_restriction.hpp). See docs/learnable.md.
#ifndef FQ_LEARNABLE_LEARNABLE_HPP_
#define FQ_LEARNABLE_LEARNABLE_HPP_

#include <fakequant/learnable/freeze.hpp>
#include <fakequant/learnable/grad_scale.hpp>
#include <fakequant/learnable/lsq.hpp>
#include <fakequant/learnable/lsq_fused.hpp>
#include <fakequant/learnable/lsq_group.hpp>
#include <fakequant/learnable/lsq_numerics.hpp>
#include <fakequant/learnable/pact.hpp>
#include <fakequant/learnable/scale_param.hpp>
#include <fakequant/observer/scale_restriction.hpp>

#endif  // FQ_LEARNABLE_LEARNABLE_HPP_
