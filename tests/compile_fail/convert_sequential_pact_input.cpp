#include <random>

#include <fakequant/convert/int8_model.hpp>
// PACT clips before it quantizes (saturating), the integer model's input quantizer overflows to
// qmin: a PACT input quantizer is refused at compile time, not deployed with other levels.
int main() {
  std::mt19937 rng(1);
  fq::ActQuant<fq::Pact<8>> in;
  fq::QLinear<> fc(4, 2, rng);
  fq::convert_sequential(in, {4}, fc);
}
