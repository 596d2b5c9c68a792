#include <fakequant/ops/fake_quant.hpp>
// A type without the quantizer protocol's members must not compile as a fake_quant node; the
// error is the protocol's sentence (quantizer/concept.hpp), not an overload failure.
struct NotAQuantizer {
  float scale = 1.0f;
};
int main() {
  fq::Tape tape;
  NotAQuantizer q;
  const fq::Var x = tape.variable({4});
  return static_cast<int>(fq::ops::fake_quant(tape, x, q).numel());
}
