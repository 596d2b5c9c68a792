// SPDX-License-Identifier: MIT
// fakequant/ops/ops.hpp: every tape op (fq::ops::*).
#ifndef FQ_OPS_OPS_HPP_
#define FQ_OPS_OPS_HPP_

#include <fakequant/ops/activation.hpp>
#include <fakequant/ops/batch_norm.hpp>
#include <fakequant/ops/conv2d.hpp>
#include <fakequant/ops/distill.hpp>
#include <fakequant/ops/dropout.hpp>
#include <fakequant/ops/elementwise.hpp>
#include <fakequant/ops/embedding.hpp>
#include <fakequant/ops/fake_quant.hpp>
#include <fakequant/ops/linear.hpp>
#include <fakequant/ops/loss.hpp>
#include <fakequant/ops/matmul.hpp>
#include <fakequant/ops/norm.hpp>
#include <fakequant/ops/pool.hpp>
#include <fakequant/ops/shape.hpp>
#include <fakequant/ops/softmax.hpp>
#include <fakequant/tape/custom_op.hpp>

#endif  // FQ_OPS_OPS_HPP_
