// AVX2 kernels for Q4_K, Q5_K, Q6_K. (Being written.)
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include "kernels-impl.h"

namespace weft::cpu::detail {

void install_k_quants_avx2(Backend& b) { (void)b; }

}  // namespace weft::cpu::detail

#endif  // __AVX2__ && __FMA__ && __F16C__
