#include <random>

#include <fakequant/layers/qlayers.hpp>
// A QAT layer's quantizer slot takes fq::NoFakeQuant or a quantizer of the protocol; another
// type is refused when the layer is instantiated, with the protocol's sentence.
struct NotAQuantizer {
  float scale = 1.0f;
};
int main() {
  std::mt19937 rng(1);
  fq::QLinear<NotAQuantizer, fq::NoFakeQuant> fc(4, 2, rng);
  return static_cast<int>(fc.weight().shape()[0]);
}
