// SPDX-License-Identifier: MIT
// fakequant/scheme/presets.hpp: named quantization schemes,
// <Int|Uint><bits><Weight|Act><PerTensor|PerChannel><Symmetric|Affine>[Variant].
//
// All use PyTorch 1.13's numerics (ties to even, x * f32(1/s), overflow to quant_min) and a
// masked STE unless the name says otherwise. Weights are per output channel (axis 0).
#ifndef FQ_SCHEME_PRESETS_HPP_
#define FQ_SCHEME_PRESETS_HPP_

#include <fakequant/scheme/qscheme.hpp>

namespace fq {

/// int8 [-128, 127], z = 0, one scale per output channel: PyTorch's default QAT weights.
using Int8WeightPerChannelSymmetric = QScheme<Int8, Symmetric, PerChannel<0>>;
/// int8 [-128, 127], z = 0, one scale for the tensor (PyTorch's qnnpack weights).
using Int8WeightPerTensorSymmetric = QScheme<Int8, Symmetric, PerTensor>;
/// int8 narrow [-127, 127], z = 0, per output channel: the TFLite int8 weight spec.
using Int8WeightPerChannelSymmetricNarrow = QScheme<Int8Narrow, Symmetric, PerChannel<0>>;
/// int4 [-8, 7], z = 0, per output channel.
using Int4WeightPerChannelSymmetric = QScheme<Int4, Symmetric, PerChannel<0>>;
/// int4 [-8, 7], z = 0, per tensor.
using Int4WeightPerTensorSymmetric = QScheme<Int4, Symmetric, PerTensor>;

/// uint8 [0, 255] affine per tensor: PyTorch's quint8 activations.
using Uint8ActPerTensorAffine = QScheme<UInt8, Affine, PerTensor>;
/// int8 [-128, 127] affine per tensor: the TFLite int8 activation spec's range.
using Int8ActPerTensorAffine = QScheme<Int8, Affine, PerTensor>;
/// uint4 [0, 15] affine per tensor.
using Uint4ActPerTensorAffine = QScheme<UInt4, Affine, PerTensor>;
/// A run-time range affine per tensor: PyTorch qconfigs with quant_min/quant_max or
/// reduce_range (e.g. torch_quant_range(TorchDtype::kQUInt8, true) for fbgemm's [0, 127]).
using RuntimeActPerTensorAffine = QScheme<RuntimeRange, Affine, PerTensor>;
/// uint8 affine per tensor with ONNX QuantizeLinear's numerics: x / s, ties to even,
/// saturation.
using Uint8ActPerTensorAffineOnnx =
    Uint8ActPerTensorAffine::with_scale_apply<DivideByScale>::with_overflow<OverflowSaturate>;

}  // namespace fq

#endif  // FQ_SCHEME_PRESETS_HPP_
