#include <random>

#include <fakequant/convert/int8_model.hpp>
// A layer convert_sequential does not know (here a plain int) must not compile.
int main() {
  std::mt19937 rng(1);
  fq::QLinear<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> fc(4, 2, rng);
  const int not_a_layer = 0;
  fq::convert_sequential(fq::ActQParams{0.1f, 0}, fq::Shape{4}, not_a_layer, fc);
}
