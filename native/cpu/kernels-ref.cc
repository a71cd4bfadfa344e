// The portable scalar reference for every kernel in kernels.h, and the scalar fp16/bf16
// conversions (public: they are the same on every backend).
//
// Written to be obviously right rather than fast: float dots accumulate in double (as ggml's
// scalar path does), the Q8_0 dot follows ggml's reference block by block. It is also what runs
// on CPUs without AVX2, and what the AVX2 path is tested against.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels-impl.h"
#include "kernels.h"

namespace weft::cpu {

// ---- scalar conversions ----------------------------------------------------------------------
// NaNs keep their sign and top payload bits and come out quiet, as F16C (vcvtph2ps/vcvtps2ph)
// does, so both backends convert every bit pattern identically (test-kernels checks all 65536).

static uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

static float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in f32.
    const float mag = static_cast<float>(mant) * 0x1p-24f;
    return bits_f32(sign | f32_bits(mag));
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant ? 0x400000u | (mant << 13) : 0u));
  return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t f32_to_fp16(float f) {
  const uint32_t x = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u | ((ax >> 13) & 0x3ffu);  // NaN, quieted
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds (ties-to-even) to inf
  if (ax < 0x38800000u) {
    // Below 2^-14: a half subnormal, value m * 2^(e-150) -> units of 2^-24, rounded to even.
    const uint32_t e = ax >> 23;
    if (e < 102) return sign;  // below 2^-25: rounds to zero (2^-25 itself ties to zero too)
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to even; a carry into
  // the exponent is the correct result.
  uint32_t h = (ax - 0x38000000u) >> 13;
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace weft::cpu

namespace weft::cpu::detail {
namespace {

// ---- F32 -----------------------------------------------------------------------------------
void dequantize_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void quantize_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

float vec_dot_f32(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * y[i];
  return static_cast<float>(sum);
}

// ---- F16 -----------------------------------------------------------------------------------
void dequantize_f16(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(x[i]);
}

void quantize_f16(const float* src, void* dst, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(src[i]);
}

float vec_dot_f16(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16_to_f32(x[i])) * fp16_to_f32(y[i]);
  return static_cast<float>(sum);
}

// ---- BF16 ----------------------------------------------------------------------------------
void dequantize_bf16(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(x[i]);
}

void quantize_bf16(const float* src, void* dst, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(src[i]);
}

float vec_dot_bf16(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_f32(x[i])) * bf16_to_f32(y[i]);
  return static_cast<float>(sum);
}

// ---- Q8_0 ----------------------------------------------------------------------------------
void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < 32; ++j) dst[b * 32 + j] = x[b].qs[j] * d;
  }
}

// Activations are quantized as ggml's x86 SIMD quantizer does at run time (not as its scalar
// quantize_row_q8_0_ref, which llama-quantize uses for weights): d = amax / 127, q =
// round-half-even(x * (127 / amax)). Matching it is what puts our Q8_0 logits within 4e-6 of
// llama.cpp's on the shared models; with the reference rounding one tie flipped an int8 and
// moved logits of the random llama-gqa-k-q8_0 model by 0.5.
// The clamp changes nothing for finite input but gives NaN/inf a defined result instead of an
// undefined float->int cast; the AVX2 quantizer clamps the same way so both agree bit for bit.
void quantize_q8_0(const float* src, void* dst, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) amax = ax;  // NaN compares false and is skipped
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < 32; ++j) {
      const float v = std::fmax(std::fmin(x[j] * id, 127.0f), -127.0f);
      y[b].qs[j] = static_cast<int8_t>(std::nearbyint(v));  // default FP mode: ties to even
    }
  }
}

// ggml's vec_dot_q8_0_q8_0 reference: exact integer sum per block, scaled by d_w * d_a.
float vec_dot_q8_0(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t sumi = 0;
    for (int j = 0; j < 32; ++j) sumi += x[b].qs[j] * y[b].qs[j];
    sum += static_cast<float>(sumi) * (fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d));
  }
  return sum;
}

// ---- attention -------------------------------------------------------------------------------
// Scores are double-precision dots, as vec_dot_f32 is; each value step is a float multiply, then
// an add. Rows are T*, a stride of whole T apart; element(row, i) reads value i of a row.
float element(const float* row, int64_t i) { return row[i]; }
float element(const uint16_t* row, int64_t i) { return fp16_to_f32(row[i]); }
float element(const BlockQ8_0* row, int64_t i) {  // as dequantize_q8_0
  return fp16_to_f32(row[i / 32].d) * static_cast<float>(row[i / 32].qs[i % 32]);
}

template <class T>
void attn_scores(int64_t n, const float* const* q, int n_q, const T* k, int64_t k_stride, int n_pos,
                 float* s, int64_t s_stride) {
  for (int r = 0; r < n_q; ++r) {
    for (int j = 0; j < n_pos; ++j) {
      const T* kj = k + j * k_stride;
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(q[r][i]) * element(kj, i);
      s[r * s_stride + j] = static_cast<float>(sum);
    }
  }
}

template <class T>
void attn_values(int64_t n, const float* p, int64_t p_stride, int n_q, const T* v, int64_t v_stride,
                 int n_pos, float* const* o) {
  for (int r = 0; r < n_q; ++r) {
    for (int j = 0; j < n_pos; ++j) {
      const float pj = p[r * p_stride + j];
      const T* vj = v + j * v_stride;
      for (int64_t e = 0; e < n; ++e) o[r][e] += pj * element(vj, e);
    }
  }
}

// Q8_0 rows: strides in elements, 32 to a block.
void attn_scores_q8_0(int64_t n, const float* const* q, int n_q, const void* k, int64_t k_stride,
                      int n_pos, float* s, int64_t s_stride) {
  attn_scores(n, q, n_q, static_cast<const BlockQ8_0*>(k), k_stride / 32, n_pos, s, s_stride);
}

void attn_values_q8_0(int64_t n, const float* p, int64_t p_stride, int n_q, const void* v,
                      int64_t v_stride, int n_pos, float* const* o) {
  attn_values(n, p, p_stride, n_q, static_cast<const BlockQ8_0*>(v), v_stride / 32, n_pos, o);
}

void f32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) { quantize_f16(src, dst, n); }

float attn_exp(float* x, int64_t n, float shift) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (x[j] = std::exp(x[j] - shift));
  return static_cast<float>(sum);
}

float attn_scale_max(float* x, int64_t n, float scale, float init) {
  float mx = init;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x[j] *= scale);
  return mx;
}

void swiglu(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

double sum_squares(const float* x, const float* add, int64_t n) {
  auto square = [&](int64_t i) {
    const float v = add ? x[i] + add[i] : x[i];
    return static_cast<double>(v * v);
  };
  double lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) lane[j] += square(i + j);
  }
  double sum = 0;
  for (double l : lane) sum += l;
  for (; i < n; ++i) sum += square(i);
  return sum;
}

// ---- the table -----------------------------------------------------------------------------
void set(Backend& b, GgmlType t, const TypeKernels& k) { b.types[static_cast<uint32_t>(t)] = k; }

Backend make_ref() {
  Backend b;
  b.name = "scalar";
  // weight type -> {activation type, dequantize, quantize, vec_dot, matmul}
  set(b, GgmlType::F32, {GgmlType::F32, dequantize_f32, quantize_f32, vec_dot_f32,
                         matmul_rows<vec_dot_f32>});
  set(b, GgmlType::F16, {GgmlType::F16, dequantize_f16, quantize_f16, vec_dot_f16,
                         matmul_rows<vec_dot_f16>});
  set(b, GgmlType::BF16, {GgmlType::BF16, dequantize_bf16, quantize_bf16, vec_dot_bf16,
                          matmul_rows<vec_dot_bf16>});
  set(b, GgmlType::Q8_0, {GgmlType::Q8_0, dequantize_q8_0, quantize_q8_0, vec_dot_q8_0,
                          matmul_rows<vec_dot_q8_0>});
  add_legacy_quants_ref(b);
  add_k_quants_ref(b);
  b.attn_scores_f32 = attn_scores<float>;
  b.attn_scores_f16 = attn_scores<uint16_t>;
  b.attn_values_f32 = attn_values<float>;
  b.attn_values_f16 = attn_values<uint16_t>;
  b.attn_scores_q8_0 = attn_scores_q8_0;
  b.attn_values_q8_0 = attn_values_q8_0;
  b.attn_exp = attn_exp;
  b.attn_scale_max = attn_scale_max;
  b.swiglu = swiglu;
  b.f32_to_fp16_row = f32_to_fp16_row;
  b.sum_squares = sum_squares;
  return b;
}

}  // namespace

const Backend& ref_backend() {
  static const Backend b = make_ref();
  return b;
}

}  // namespace weft::cpu::detail
