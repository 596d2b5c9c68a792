#include <fakequant/scheme/range.hpp>
int main() { return static_cast<int>(fq::IntRange<17, true>::kMax); }
