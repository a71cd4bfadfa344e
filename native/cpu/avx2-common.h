// Helpers the AVX2 translation units share (kernels-avx2.cc, quants-legacy-avx2.cc,
// quants-k-avx2.cc). Include it only from files compiled with -mavx2 -mfma -mf16c. Everything is
// in an anonymous namespace, as those files' rules ask: each one gets its own copy, so the linker
// can never hand AVX2 code to a portable translation unit.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels-impl.h"

namespace weft::cpu::detail {
namespace {

// An empty asm that claims to change v: the compiler must keep v in a register from here on.
// Used (1) to pin the order of exact integer sums, which the compiler would otherwise reassociate,
// keeping every product of a K-quant super-block live and spilling most (14 % slower prefill);
// (2) on a loaded row that several fmas use, which it would otherwise fold into each of them as a
// memory operand: an f32 K/V row against 3 query rows then costs 3x the loads, and attention's f32
// kernels were load-bound (hot rows, head size 64: AVX-512 values 1.35x and AVX2 scores 1.14x
// faster with the row kept). Not in the AVX-512 matmul tiles (dot_tile_float): there it halved
// SmolLM2 F16 pp512 (1,350-1,550 -> 600-670 tok/s); only attention's scores tiles ask for it.
inline void keep_in_register(__m256& v) { asm("" : "+x"(v)); }
inline void keep_in_register(__m256i& v) { asm("" : "+x"(v)); }
#if defined(__AVX512F__)
inline void keep_in_register(__m512& v) { asm("" : "+v"(v)); }
inline void keep_in_register(__m512i& v) { asm("" : "+v"(v)); }
#endif

// The one horizontal reduction every dot ends with.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight sums at once, each what hsum(v[i]) gives (the same additions of the same pairs, so the
// same bits), in lane i: about half the shuffles and adds of eight hsum calls.
inline __m256 hsum8(const __m256* v) {
  auto halves = [](__m256 a, __m256 b) {  // [lo(a) + hi(a) | lo(b) + hi(b)]
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  };
  auto pairs = [](__m256 a, __m256 b) {  // per 128-bit lane [a0 + a2, a1 + a3, b0 + b2, b1 + b3]
    return _mm256_add_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  };
  const __m256 x0145 = pairs(halves(v[0], v[4]), halves(v[1], v[5]));
  const __m256 x2367 = pairs(halves(v[2], v[6]), halves(v[3], v[7]));
  return _mm256_add_ps(_mm256_shuffle_ps(x0145, x2367, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm256_shuffle_ps(x0145, x2367, _MM_SHUFFLE(3, 1, 3, 1)));
}

// hsum of each of N vectors into out[0..N), eight at a time (a short last group repeats its
// last vector to fill the eight).
template <int N>
inline void hsum_n(const __m256* v, float* out) {
  int t = 0;
  for (; t + 8 <= N; t += 8) _mm256_storeu_ps(out + t, hsum8(v + t));
  if (t < N) {
    __m256 group[8];
    for (int i = 0; i < 8; ++i) group[i] = v[t + (i < N - t ? i : N - t - 1)];
    float sums[8];
    _mm256_storeu_ps(sums, hsum8(group));
    for (int i = 0; t + i < N; ++i) out[t + i] = sums[i];
  }
}

// ---- element loaders: elements e .. e + 7 (or e) of a row as f32 -----------------------------
// A row is a T*, and rows a stride of whole T apart; element e is found within the row by the
// loader, as Q8_0 rows (a q8_0 KV cache's) keep 32 values per block.
struct LdF32 {
  using T = float;
  static __m256 load8(const float* row, int64_t e) { return _mm256_loadu_ps(row + e); }
  static float load1(const float* row, int64_t e) { return row[e]; }
};

struct LdF16 {
  using T = uint16_t;
  static __m256 load8(const uint16_t* row, int64_t e) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + e)));
  }
  static float load1(const uint16_t* row, int64_t e) { return _cvtsh_ss(row[e]); }
};

struct LdBF16 {
  using T = uint16_t;
  static __m256 load8(const uint16_t* row, int64_t e) {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + e)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
  static float load1(const uint16_t* row, int64_t e) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(uint32_t{row[e]} << 16))));
  }
};

// Each value d * q, one float multiply, as dequantize_row gives it (e % 8 == 0 for load8).
struct LdQ8_0 {
  using T = BlockQ8_0;
  static __m256 load8(const BlockQ8_0* row, int64_t e) {
    const BlockQ8_0& b = row[e / 32];
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qs + e % 32));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(b.d))));
  }
  static float load1(const BlockQ8_0* row, int64_t e) {
    const BlockQ8_0& b = row[e / 32];
    return static_cast<float>(b.qs[e % 32]) * _cvtsh_ss(b.d);
  }
};

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Decode GEMVs read weight rows as one stream, and before each row (or group of rows) ask for
// the lines kPrefetchBytes further on: the F16/Q8_0 GEMVs read 5-10% faster with 4 KiB than with
// the hardware prefetchers alone, the K-quant ones on 1,536-wide rows up to 25%. How far ahead is
// how much a thread has in flight, and a thread with a memory path of its own needs more than one
// that shares it: decode steps with 8 KiB against 4 KiB (in-process A/B, 2-vCPU Zen 5 VM) took
// 0.88-0.93x on one thread and 0.88-0.95x on two when the VM ran its vCPUs on separate core
// complexes (SmolLM2 F16/Q8_0, Qwen2.5 Q8_0), 1.00-1.03x when they shared one and its bandwidth.
// 12 and 16 KiB did no better than 8 on one thread; 12 was 4-5% worse on two sharing one.
constexpr int64_t kPrefetchBytes = 8192;

// One line, for kernels that prefetch as they stream. A burst of requests for a whole long row
// at its start overruns the outstanding-miss slots: on Qwen2.5's ffn_down (Q8_0 rows of 5,168
// bytes) one request per 64 bytes as the dot reaches them read 13-16 vs 10-11 GB/s on one
// thread (bench-kernels, 3 interleaved runs); shorter rows gained up to 10% or nothing.
inline void prefetch_line(const char* p) { _mm_prefetch(p, _MM_HINT_T0); }

// Asks for the lines of [from, to) that lie before end (where the thread's rows stop).
inline void prefetch_ahead(const char* from, const char* to, const char* end) {
  for (const char* p = from; p < to && p < end; p += 64) _mm_prefetch(p, _MM_HINT_T0);
}

// One block of 32 activations as ggml's x86 quantizers for Q8_0 and Q8_1 quantize it: amax
// ignoring NaN lanes, d = amax / 127, id = 127 / amax (0 for an all-zero block),
// q = round-half-even(clamp(x * id, -127, 127)) (min(NaN, 127) = 127, as std::fmin).
struct Q8Block32 {
  __m256i q[4];  // int32 lanes, values 0-7, 8-15, 16-23, 24-31
  float d;
};

inline Q8Block32 quantize_block32(const float* x) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    m = _mm256_max_ps(_mm256_andnot_ps(sign_bit, v[k]), m);  // NaN lane: keeps m
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  Q8Block32 out;
  out.d = amax / 127.0f;
  for (int k = 0; k < 4; ++k) {
    __m256 s = _mm256_mul_ps(v[k], _mm256_set1_ps(id));
    s = _mm256_max_ps(_mm256_min_ps(s, _mm256_set1_ps(127.0f)), _mm256_set1_ps(-127.0f));
    out.q[k] = _mm256_cvttps_epi32(_mm256_round_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  return out;
}

// The 32 int32 values of q as int8, in order: the packs interleave 128-bit lanes, the permute
// undoes it.
inline __m256i pack_q8(const __m256i* q) {
  return _mm256_permutevar8x32_epi32(
      _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])),
      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Decode reads the K/V rows of a long context from memory (a step streams all the weights
// through the caches between one layer's attention and the next), and the prefetchers alone left
// the kernels waiting on them. So every kAttnBlock positions the kernels ask for the rows
// kAttnAhead positions on ("ask ahead"): at 1,024 positions of context the attention phase of a
// SmolLM2 decode step (2 threads) took 1.2-1.7 ms without, 0.86-1.2 ms with (in-process A/B;
// blocks of 4-16 and 16-64 ahead tried, 8 and 32 among the best). Only calls with few query rows
// ask (a decode step's GQA group, up to kAttnBlockRows), and only their first pass over the rows:
// a prefill tile's many rows mostly read K/V rows they wrote just before. The asking happens
// inside one call over all the positions: a call of its own per block of 8 positions, as it first
// was, loaded and stored the values kernels' accumulators each time (AVX-512 values, 3 query rows,
// hot rows: 4.0 ns a position that way, 1.8 inside one call).
constexpr int kAttnBlock = 8;
constexpr int64_t kAttnAhead = 32;
constexpr int kAttnBlockRows = 8;

// Asks for rows [row0, row0 + rows) of n elements, stride elements apart. Rows past the caller's
// last are asked for too (the next block's, usually): a prefetch never faults, and the address is
// formed as an integer so that no pointer leaves its array.
template <class T>
void prefetch_rows(const T* base, int64_t stride, int64_t row0, int64_t rows, int64_t n) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(base) + uintptr_t(row0 * stride) * sizeof(T);
  const uintptr_t bytes = std::is_same_v<T, BlockQ8_0> ? uintptr_t(n / 32) * sizeof(T) : uintptr_t(n) * sizeof(T);
  for (int64_t i = 0; i < rows; ++i) {
    const uintptr_t row = first + uintptr_t(i * stride) * sizeof(T);
    for (uintptr_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(row + o), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(row + bytes - 1), _MM_HINT_T0);  // a row may straddle lines
  }
}

// Calls fn(r, nq) for query rows [r, r + nq) of [0, n_q): fours, then the 3, 2 or 1 left, nq an
// std::integral_constant so that each size is its own instantiation.
template <class F>
void by_fours(int n_q, F&& fn) {
  int r = 0;
  for (; r + 4 <= n_q; r += 4) fn(r, std::integral_constant<int, 4>{});
  switch (n_q - r) {
    case 3: fn(r, std::integral_constant<int, 3>{}); break;
    case 2: fn(r, std::integral_constant<int, 2>{}); break;
    case 1: fn(r, std::integral_constant<int, 1>{}); break;
    default: break;
  }
}

// Values of NQ rows from element e on, once fewer than 16 are left: 8 lanes, then scalar fmas,
// o = fma(p_j, v_j, o) in j order (the steps both backends' values kernels end with). V: an
// 8-lane loader.
template <class V, int NQ>
void values_tail(int64_t n, int64_t e, const float* p, int64_t p_stride, const typename V::T* v,
                 int64_t v_stride, int n_pos, float* const* o) {
  if (e + 8 <= n) {
    __m256 a0[NQ];
    for (int r = 0; r < NQ; ++r) a0[r] = _mm256_loadu_ps(o[r] + e);
    for (int j = 0; j < n_pos; ++j) {
      const __m256 v0 = V::load8(v + j * v_stride, e);
      for (int r = 0; r < NQ; ++r) a0[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + r * p_stride + j), v0, a0[r]);
    }
    for (int r = 0; r < NQ; ++r) _mm256_storeu_ps(o[r] + e, a0[r]);
    e += 8;
  }
  for (; e < n; ++e) {
    for (int r = 0; r < NQ; ++r) {
      float a = o[r][e];
      for (int j = 0; j < n_pos; ++j) a = __builtin_fmaf(p[r * p_stride + j], V::load1(v + j * v_stride, e), a);
      o[r][e] = a;
    }
  }
}

// kernels.h's q8_0 attention entries from kernels over BlockQ8_0 rows: strides in elements
// become strides in blocks.
template <void (*Scores)(int64_t, const float* const*, int, const BlockQ8_0*, int64_t, int, float*, int64_t)>
void q8_0_scores(int64_t n, const float* const* q, int n_q, const void* k, int64_t k_stride, int n_pos,
                 float* s, int64_t s_stride) {
  Scores(n, q, n_q, static_cast<const BlockQ8_0*>(k), k_stride / 32, n_pos, s, s_stride);
}

template <void (*Values)(int64_t, const float*, int64_t, int, const BlockQ8_0*, int64_t, int, float* const*)>
void q8_0_values(int64_t n, const float* p, int64_t p_stride, int n_q, const void* v, int64_t v_stride,
                 int n_pos, float* const* o) {
  Values(n, p, p_stride, n_q, static_cast<const BlockQ8_0*>(v), v_stride / 32, n_pos, o);
}

}  // namespace
}  // namespace weft::cpu::detail
