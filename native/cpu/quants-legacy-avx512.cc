// The legacy-quant dots again, compiled with AVX-512 F/BW/VL: quants-legacy-avx2.cc with
// WEFT_LEGACY_QUANTS_ZMM, which says what changes and why the results are the AVX2 build's bit
// for bit. kernels-avx512.cc installs them.
#define WEFT_LEGACY_QUANTS_ZMM 1
#include "quants-legacy-avx2.cc"
