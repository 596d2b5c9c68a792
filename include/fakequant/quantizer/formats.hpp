// SPDX-License-Identifier: MIT
// fakequant/quantizer/formats.hpp: the low-bit and floating-point format quantizers and their
// presets in one include (fakequant.hpp includes it):
//   group-wise integers and per-token activations  quantizer/group_quantizer.hpp
//       fq::Int4WeightGroup32Symmetric, fq::Int4WeightGroup128Affine, fq::Int8ActPerTokenDynamic
//   FP8 / FP6 / FP4 with a float scale             quantizer/fp_quantizer.hpp
//       fq::Fp8E4M3PerTensor, fq::Fp8E5M2PerTensor, fq::Fp8E4M3PerChannel, fq::Fp4E2M1PerTensor
//   OCP Microscaling blocks                         quantizer/mx_quantizer.hpp
//       fq::MxFp8E4M3, fq::MxFp8E5M2, fq::MxFp6E2M3, fq::MxFp6E3M2, fq::MxFp4, fq::MxInt8
//   NVFP4 (two-level scales)                        quantizer/nvfp4_quantizer.hpp
//       fq::NvFp4
//   codebooks: NF4, user level sets, powers of two  quantizer/codebook_quantizer.hpp
//       fq::Nf4Block64, fq::Pow2Block64, fq::CodebookBlock
// Learned group scales (fq::LsqGroupQuantizer) and group observers (min-max, MSE clipping
// search) sit a floor higher: learnable/lsq_group.hpp, observer/group_observer.hpp.
// docs/numerics.md ("Low-bit and floating-point formats") states every format's formulas.
#ifndef FQ_QUANTIZER_FORMATS_HPP_
#define FQ_QUANTIZER_FORMATS_HPP_

#include <fakequant/quantizer/codebook_quantizer.hpp>
#include <fakequant/quantizer/fp_quantizer.hpp>
#include <fakequant/quantizer/group_quantizer.hpp>
#include <fakequant/quantizer/mx_quantizer.hpp>
#include <fakequant/quantizer/nvfp4_quantizer.hpp>

#endif  // FQ_QUANTIZER_FORMATS_HPP_
