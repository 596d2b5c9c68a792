#include <random>

#include <fakequant/convert/convert.hpp>
int main() {
  std::mt19937 rng(1);
  fq::QConv2d<fq::DefaultWeightFakeQuant, fq::NoFakeQuant> conv(1, 2, 3, rng);
  fq::convert(conv, fq::ActQParams{0.1f, 0}, 8, 8);
}
