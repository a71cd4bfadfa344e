// AVX2 kernels for Q4_0, Q4_1, Q5_0, Q5_1. (Being written.)
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include "kernels-impl.h"

namespace weft::cpu::detail {

void install_legacy_quants_avx2(Backend& b) { (void)b; }

}  // namespace weft::cpu::detail

#endif  // __AVX2__ && __FMA__ && __F16C__
