#include <fakequant/observer/fused_qparams.hpp>
#include <fakequant/scheme/presets.hpp>
int main() {
  auto p = fq::FusedQParams<true>::compute<fq::Int8WeightPerTensorSymmetric>(-1.0f, 1.0f,
                                                                             fq::Int8::value());
  return p.scale > 0.0f ? 0 : 1;
}
