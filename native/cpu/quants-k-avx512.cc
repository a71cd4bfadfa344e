// The K-quant dots again, compiled with AVX-512 F/BW/VL/VNNI: quants-k-avx2.cc with
// WEFT_K_QUANTS_ZMM, which says what changes (the integer inner loops, and the activation layout
// Q4_K and Q5_K read) and why the results are the AVX2 build's bit for bit. kernels-avx512.cc
// installs them.
#define WEFT_K_QUANTS_ZMM 1
#include "quants-k-avx2.cc"
