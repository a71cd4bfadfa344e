// Scalar reference kernels for Q4_0, Q4_1, Q5_0, Q5_1. (Being written.)
#include "kernels-impl.h"

namespace weft::cpu::detail {

void add_legacy_quants_ref(Backend& b) { (void)b; }

}  // namespace weft::cpu::detail
