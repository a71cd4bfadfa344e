// Scalar reference kernels for Q4_K, Q5_K, Q6_K. (Being written.)
#include "kernels-impl.h"

namespace weft::cpu::detail {

void add_k_quants_ref(Backend& b) { (void)b; }

}  // namespace weft::cpu::detail
