// SPDX-License-Identifier: MIT
// fakequant/all.hpp: the whole library in one include — the fake-quant API of
// fakequant/fakequant.hpp plus the training stack (the tape, every tape op, the QAT layers and
// their integer arithmetic, the optimizers), the int8 kernels, the integer layers and model with
// its file (int8/), convert (with the ONNX export), checkpoints, and the testing kit.
// Code that only fake-quantizes includes fakequant/fakequant.hpp and compiles less;
// testing/catch2.hpp (which needs Catch2) is not included.
#ifndef FQ_ALL_HPP_
#define FQ_ALL_HPP_

#include <fakequant/convert/checkpoint.hpp>
#include <fakequant/convert/convert.hpp>
#include <fakequant/convert/int8_model.hpp>
#include <fakequant/convert/onnx.hpp>
#include <fakequant/convert/onnx_graph.hpp>
#include <fakequant/convert/own_kernels.hpp>
#include <fakequant/convert/protobuf.hpp>
#include <fakequant/fakequant.hpp>
#include <fakequant/int8/conv2d.hpp>
#include <fakequant/int8/file_io.hpp>
#include <fakequant/int8/flatten.hpp>
#include <fakequant/int8/float_linear.hpp>
#include <fakequant/int8/layer_checks.hpp>
#include <fakequant/int8/linear.hpp>
#include <fakequant/int8/max_pool.hpp>
#include <fakequant/int8/model.hpp>
#include <fakequant/int8/model_file.hpp>
#include <fakequant/int8/params.hpp>
#include <fakequant/kernels/conv2d.hpp>
#include <fakequant/kernels/dequantize.hpp>
#include <fakequant/kernels/gemm.hpp>
#include <fakequant/kernels/im2col.hpp>
#include <fakequant/kernels/linear.hpp>
#include <fakequant/kernels/max_pool.hpp>
#include <fakequant/kernels/quantize.hpp>
#include <fakequant/layers/act_quant.hpp>
#include <fakequant/layers/integer_eval.hpp>
#include <fakequant/layers/learnable_fake_quant.hpp>
#include <fakequant/layers/parameter.hpp>
#include <fakequant/layers/pool.hpp>
#include <fakequant/layers/qconv2d.hpp>
#include <fakequant/layers/qconv_bn2d.hpp>
#include <fakequant/layers/qlayer_base.hpp>
#include <fakequant/layers/qlayers.hpp>
#include <fakequant/layers/qlinear.hpp>
#include <fakequant/layers/quantizer_slots.hpp>
#include <fakequant/layers/transformer.hpp>
#include <fakequant/ops/ops.hpp>
#include <fakequant/optim/adam.hpp>
#include <fakequant/optim/grad_clip.hpp>
#include <fakequant/optim/lr_schedule.hpp>
#include <fakequant/optim/sgd.hpp>
#include <fakequant/tape/tape.hpp>
#include <fakequant/testing/testing.hpp>

#endif  // FQ_ALL_HPP_
