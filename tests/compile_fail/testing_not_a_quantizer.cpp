#include <fakequant/quantizer/concept.hpp>
struct NotAQuantizer {
  float scale = 1.0f;
};
int main() { return fq::testing::assert_quantizer<NotAQuantizer>() ? 0 : 1; }
