// A group size that is neither positive nor one of the two markers.
#include <fakequant/policy/granularity.hpp>
int main() { return fq::PerGroup<-5>::kGroupSize; }
