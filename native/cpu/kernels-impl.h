// Internal to native/cpu: the tables kernels.cc dispatches through. Not part of the public API.
//
// kernels-ref.cc fills the reference Backend; kernels-avx2.cc overrides entries of a copy of it,
// and kernels-avx512.cc entries of a copy of that.
// A weight type is supported when the reference has a vec_dot for it, so adding a type is local:
// its block struct here, a dequantizer and a dot in kernels-ref.cc (plus a quantizer when it is
// also an activation type), optionally an AVX2 override, and a case in test-kernels.cc.
//
// Nothing here is inline code: kernels-avx2.cc is compiled with -mavx2 -mfma -mf16c (and
// kernels-avx512.cc with AVX-512 flags besides), and an
// inline function or template instantiated there could be the copy the linker keeps for every
// caller, which would then fault on a CPU without AVX2.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../core/ggml-types.h"

namespace weft::cpu::detail {

// ggml's Q8_0 block: 32 weights q[i] * d. d is fp16 bits. Blocks sit 2-byte aligned in a row.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must match the GGUF layout");

using DequantizeFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeFn = void (*)(const float* src, void* dst, int64_t n);
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);
// Same arguments as cpu::matmul minus the type; already validated by kernels.cc.
using MatmulFn = void (*)(int64_t n_in, const void* w, size_t w_row_bytes, const void* act,
                          size_t act_row_bytes, int n_tok, float* y, int64_t y_stride,
                          int64_t r_begin, int64_t r_end);

// The kernels of one ggml type; null entries mean "not available for this type".
struct TypeKernels {
  GgmlType act_type = GgmlType::F32;  // vec_dot_type(); meaningful when vec_dot is set
  DequantizeFn dequantize = nullptr;
  QuantizeFn quantize = nullptr;      // set for every type that is some act_type
  VecDotFn vec_dot = nullptr;         // weight row (this type) . activation row (act_type)
  MatmulFn matmul = nullptr;          // set whenever vec_dot is, with identical per-element math
                                      // (and alone for a packed type, cpu::packed_type)
};

// The portable matmul of the reference backends: one vec_dot per output element, so it is batch
// invariant by construction. (Used only by the *-ref.cc files, each with its own dots.)
template <VecDotFn dot>
void matmul_rows(int64_t n_in, const void* w, size_t w_row_bytes, const void* act,
                 size_t act_row_bytes, int n_tok, float* y, int64_t y_stride, int64_t r_begin,
                 int64_t r_end) {
  const char* wb = static_cast<const char*>(w);
  const char* ab = static_cast<const char*>(act);
  for (int64_t r = r_begin; r < r_end; ++r) {
    for (int i = 0; i < n_tok; ++i) {
      y[i * y_stride + r] = dot(n_in, wb + r * w_row_bytes, ab + i * act_row_bytes);
    }
  }
}

// Type ids in ggml-types.h are below this bound.
constexpr uint32_t kTypeIdLimit = 66;

struct Backend {
  const char* name = nullptr;
  TypeKernels types[kTypeIdLimit];
  // The attention kernels of kernels.h, same arguments.
  void (*attn_scores_f32)(int64_t, const float* const*, int, const float*, int64_t, int, float*, int64_t) = nullptr;
  void (*attn_scores_f16)(int64_t, const float* const*, int, const uint16_t*, int64_t, int, float*, int64_t) = nullptr;
  void (*attn_values_f32)(int64_t, const float*, int64_t, int, const float*, int64_t, int, float* const*) = nullptr;
  void (*attn_values_f16)(int64_t, const float*, int64_t, int, const uint16_t*, int64_t, int, float* const*) = nullptr;
  void (*attn_scores_q8_0)(int64_t, const float* const*, int, const void*, int64_t, int, float*, int64_t) = nullptr;
  void (*attn_values_q8_0)(int64_t, const float*, int64_t, int, const void*, int64_t, int, float* const*) = nullptr;
  float (*attn_exp)(float* x, int64_t n, float shift) = nullptr;
  float (*attn_scale_max)(float* x, int64_t n, float scale, float init) = nullptr;
  void (*swiglu)(float* g, const float* u, int64_t n) = nullptr;
  void (*f32_to_fp16_row)(const float* src, uint16_t* dst, int64_t n) = nullptr;
  double (*sum_squares)(const float* x, const float* add, int64_t n) = nullptr;
};

// kernels-ref.cc: the complete portable reference.
const Backend& ref_backend();

// kernels-avx2.cc (only where that TU was built): replaces entries of b, a copy of the reference.
void install_avx2(Backend& b);
// kernels-avx512.cc (likewise): replaces entries of b, a copy of the AVX2 backend.
void install_avx512(Backend& b);

// The quantized families live in their own files so each stays readable; make_ref() and
// install_avx2() call these.
// quants-legacy-ref.cc / quants-legacy-avx2.cc: Q4_0, Q4_1, Q5_0, Q5_1 (and Q8_1 activations).
void add_legacy_quants_ref(Backend& b);
// quants-legacy-ref.cc: Q4_0 / Q5_0 rows into the Q4_0_X8 / Q5_0_X8 layout (cpu::pack_rows; dst
// may be src).
void pack_q4_0_x8(const void* src, void* dst, int64_t n_in, int64_t n_rows);
void pack_q5_0_x8(const void* src, void* dst, int64_t n_in, int64_t n_rows);
void install_legacy_quants_avx2(Backend& b);
// quants-legacy-avx512.cc (quants-legacy-avx2.cc with mask-register fifth bits): the dots.
void install_legacy_quants_avx512(Backend& b);
// quants-k-ref.cc / quants-k-avx2.cc: Q4_K, Q5_K, Q6_K (and Q8_K activations).
void add_k_quants_ref(Backend& b);
void install_k_quants_avx2(Backend& b);
// quants-k-avx512.cc (quants-k-avx2.cc with zmm integer loops): the Q4_K/Q5_K/Q6_K dots.
void install_k_quants_avx512(Backend& b);

// kernels.cc: a per-thread float buffer of at least n elements, valid until the calling thread
// asks again. Lets the AVX2 matmul convert activation tiles without allocating per call.
float* scratch_floats(size_t n);

}  // namespace weft::cpu::detail
