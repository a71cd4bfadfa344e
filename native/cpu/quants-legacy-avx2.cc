// AVX2 kernels for Q4_0, Q4_1, Q5_0, Q5_1 (block layouts in quants-legacy.h) and the Q8_1
// activation quantizer. Compiled with -mavx2 -mfma -mf16c alone; the rules of kernels-avx2.cc
// apply (internal linkage, no standard-library templates).
//
// Each type computes an output (one weight row against one activation row) with the arithmetic
// llama.cpp's x86 CPU backend uses for it, so that on the same activations the results are the
// same bits (measured: weft's logits on llama-gqa-k-q4_0 equal llama.cpp's at every position;
// another order differed by one int8 activation rounding, which moved logits by 0.4):
//   Q4_0 (llama.cpp repacks it into 8-row groups and runs ggml_gemm/gemv_q4_0_8x8_q8_0):
//     acc = fma(float(sumi_b), d_w * d_a, acc) block by block from 0, sumi_b the block's exact
//     integer sum; out = acc.
//   Q5_0, Q4_1, Q5_1 (ggml_vec_dot_*; tinyBLAS does the same for Q5_0):
//     p = 8 int32 lanes, lane k the exact integer sum over weights 4k..4k+3 of the block of
//     (q_w - 16) * q_a (Q5_0) or q_w * q_a (_1 types); acc = fma(d_w * d_a, float(p), acc) block
//     by block; the _1 types also sum m_w * s_a block by block; out = hsum(acc) (+ that sum).
// Batch invariance: those sequences are fixed per output. How the integer sums are formed differs
// between paths (decode streams the raw blocks, prefill decodes weights once per chunk and biases
// the activations), but integer sums are exact, so every float operation after them is the same
// whatever the path, the tile or the batch.
//
// quants-legacy-avx512.cc compiles this file a second time with AVX-512 flags and
// WEFT_LEGACY_QUANTS_ZMM, which changes how the integer sums are formed, never which integers
// they are, so the same bits come out: the 5-bit types' fifth bits are unpacked with a mask
// register and one masked add (AVX2: a shuffle, two ands and a compare), and each quad sum is one
// vpdpbusd (unsigned x signed bytes, starting from the correction term where there is one) where
// AVX2 needs maddubs, madd and a subtract. These GEMVs wait on instructions more than on memory
// (Q5_0 ~25 GB/s a thread from memory or cache alike): with vpdpbusd, one thread's Q5_0 prefill
// (bench-kernels, n_tok = 64) 131-142 -> 166-178 GFLOP/s, decode 22-24 -> 24-25 GB/s, Q4_1
// prefill 106-124 -> 115-130; pp512 of the Q4_K_M files (mostly Q5_0 where rows are not 256s)
// SmolLM2 1160-1211 -> 1427-1449 tok/s, Qwen2.5 408-410 -> 481-500, SmolLM2 Q4_K_M decode
// steps 3-5 % shorter (these with the Q8_0 tiles of kernels-avx512.cc, changed the same day).
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) &&                              \
    (!defined(WEFT_LEGACY_QUANTS_ZMM) || (defined(__AVX512F__) && defined(__AVX512BW__) &&     \
                                          defined(__AVX512VL__)))

#include <immintrin.h>

#include <cstring>

#include "avx2-common.h"
#include "kernels-impl.h"
#include "quants-legacy.h"

namespace weft::cpu::detail {
namespace {

uint32_t load32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- weight codes ----------------------------------------------------------------------------
// The 32 low nibbles of qs in weight order: byte j of the lower 128-bit lane is weight j (low
// nibble of qs[j]), byte j of the upper lane weight j + 16 (its high nibble).
__m256i nibbles(const uint8_t* qs) {
  const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  return _mm256_and_si256(_mm256_srlv_epi64(x, _mm256_setr_epi64x(0, 0, 4, 4)),
                          _mm256_set1_epi8(0x0F));
}

// Unsigned codes (before Q5_0's offset) of one block.
#if defined(WEFT_LEGACY_QUANTS_ZMM)
// Bit j of qh is the mask bit of byte j: 0x10 added (an or, as nibbles are < 16) where it is set.
__m256i five_bit_codes(const uint8_t* qs, const uint8_t* qh) {
  const __m256i nib = nibbles(qs);
  return _mm256_mask_add_epi8(nib, _cvtu32_mask32(load32(qh)), nib, _mm256_set1_epi8(0x10));
}
#else
// 0x10 in byte j where bit j of qh is set: each byte picks its qh byte, then tests its own bit.
__m256i fifth_bits(const uint8_t* qh) {
  const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(load32(qh))), pick);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit), _mm256_set1_epi8(0x10));
}

__m256i five_bit_codes(const uint8_t* qs, const uint8_t* qh) {
  return _mm256_or_si256(nibbles(qs), fifth_bits(qh));
}
#endif
__m256i codes(const BlockQ4_1& b) { return nibbles(b.qs); }
__m256i codes(const BlockQ5_0& b) { return five_bit_codes(b.qs, b.qh); }
__m256i codes(const BlockQ5_1& b) { return five_bit_codes(b.qs, b.qh); }

// Lane k = sum of the int8 bytes 4k..4k+3 of q, times 2^shift.
__m256i quad_sums(__m256i q, int shift) {
  const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
                                      _mm256_set1_epi16(1));
  return _mm256_sll_epi32(s, _mm_cvtsi32_si128(shift));
}

// A correction term as the packed rows hold it: the AVX-512 build keeps it negated, as the
// value vpdpbusd starts its sums from.
__m256i stored_correction(__m256i c) {
#if defined(WEFT_LEGACY_QUANTS_ZMM)
  return _mm256_sub_epi32(_mm256_setzero_si256(), c);
#else
  return c;
#endif
}

// Decoding the 5-bit types from memory, the prefetchers alone leave the loop waiting (measured
// 1 thread: Q5_0 1.89 -> 1.64, Q5_1 2.1-2.5 -> 1.80 ns per block with 16 blocks ahead; cache-
// resident runs unchanged), so their raw paths also ask for the block kPrefetch blocks ahead.
// 128 blocks (2.8-3 KiB; the other GEMVs ask 8 KiB ahead) beat 16 in interleaved bench-kernels
// runs on a Zen 3 VM: Q5_0 +14% on 1 thread, +8% on 2; Q5_1 +10% on 1 (64 and 192 were no
// better). The 4-bit types ran 4% slower with it and go without.
constexpr int64_t kPrefetch = 128;
template <class B>
constexpr bool kFiveBit = false;
template <>
constexpr bool kFiveBit<BlockQ5_1> = true;

// ==== Q5_0, Q4_1, Q5_1: ggml's vec_dot order ===================================================

// ---- activation rows, repacked once per matmul call -------------------------------------------
// Each layout puts a row's quants first and widens the fp16 scales to f32 once per activation row
// rather than once per weight row that meets them (exact, so the values are those of the blocks).
// nb = n / 32.
//   Corr (Q8_0 rows; Q5_0 decode path): [nb x 32 q][nb x 8 int32 c][nb x f32 d],
//        c = 16 * quad_sums(q), so that madd(maddubs(code, q)) - c = (code - 16) * q per quad
//        (the AVX-512 build stores -c, where vpdpbusd starts its sums).
//   Bias (Q8_0 rows; Q5_0 prefill path): [nb x 32 (q + 128) as uint8][nb x f32 d].
//   Min  (Q8_1 rows; both paths of the _1 types): [nb x 32 q][nb x 2 f32 (d, s)].
constexpr int64_t kCorrBytes = 68, kBiasBytes = 36, kMinBytes = 40;  // per block

void pack_corr(const void* src, int64_t nb, uint8_t* dst) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  float* d = reinterpret_cast<float*>(dst + 64 * nb);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = load256(x[b].qs);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * b), q);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * nb + 32 * b), stored_correction(quad_sums(q, 4)));
    d[b] = _cvtsh_ss(x[b].d);
  }
}

void pack_bias(const void* src, int64_t nb, uint8_t* dst) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  float* d = reinterpret_cast<float*>(dst + 32 * nb);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = _mm256_xor_si256(load256(x[b].qs), _mm256_set1_epi8(static_cast<char>(0x80)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * b), q);
    d[b] = _cvtsh_ss(x[b].d);
  }
}

void pack_min(const void* src, int64_t nb, uint8_t* dst) {
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(src);
  float* ds = reinterpret_cast<float*>(dst + 32 * nb);
  for (int64_t b = 0; b < nb; ++b) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * b), load256(x[b].qs));
    ds[2 * b] = _cvtsh_ss(x[b].d);
    ds[2 * b + 1] = _cvtsh_ss(x[b].s);
  }
}

// Activation rows as a weight source reads them: quants, per-block extras, scales.
struct ActRows {
  const uint8_t* q[4];
  const __m256i* extra[4];  // Corr layout: the c vectors; unused otherwise
  const float* scale[4];    // d (Corr, Bias) or (d, s) pairs (Min)
};

// ---- weight sources -------------------------------------------------------------------------------
// A source yields, for block b of its row against NA activation rows, the integer lanes p[j]
// (lanes()), and the f32 scale products of 8 blocks b0.. at a time (scales8(): d_w * d_a, in
// lane k for block b0 + k for Q5_0; (d_w * d_a, m_w * s_a) pairs, blocks 0-3 in v[j][0] and 4-7
// in v[j][1], for the _1 types), or of one block (scale1(), at the end of a row). Forming them 8 at
// a time costs one fp16 conversion and one multiply per 8 blocks; each is the same f32 multiply.
constexpr int kGroup = 8;

// Raw Q5_0 blocks against Corr rows (decode, and batches of up to four tokens).
struct RawQ5_0 {
  using Block = BlockQ5_0;
  static constexpr bool kMin = false;
  const BlockQ5_0* w;
  template <int NA>
  void lanes(int64_t b, const ActRows& a, __m256i* p) const {
    _mm_prefetch(reinterpret_cast<const char*>(w + b + kPrefetch), _MM_HINT_T0);
    const __m256i code = codes(w[b]);
#if defined(WEFT_LEGACY_QUANTS_ZMM)
    // The same quad sums in one step: vpdpbusd starts from the stored -c.
    for (int j = 0; j < NA; ++j) p[j] = _mm256_dpbusd_epi32(_mm256_loadu_si256(a.extra[j] + b), code, load256(a.q[j] + 32 * b));
#else
    const __m256i ones = _mm256_set1_epi16(1);
    for (int j = 0; j < NA; ++j) {
      const __m256i prod = _mm256_madd_epi16(_mm256_maddubs_epi16(code, load256(a.q[j] + 32 * b)), ones);
      p[j] = _mm256_sub_epi32(prod, _mm256_loadu_si256(a.extra[j] + b));
    }
#endif
  }
  template <int NA>
  void scales8(int64_t b0, const ActRows& a, __m256 (*v)[2]) const {
    const BlockQ5_0* x = w + b0;
    const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(
        static_cast<short>(x[0].d), static_cast<short>(x[1].d), static_cast<short>(x[2].d),
        static_cast<short>(x[3].d), static_cast<short>(x[4].d), static_cast<short>(x[5].d),
        static_cast<short>(x[6].d), static_cast<short>(x[7].d)));
    for (int j = 0; j < NA; ++j) v[j][0] = _mm256_mul_ps(dw, _mm256_loadu_ps(a.scale[j] + b0));
  }
  float scale1(int64_t b, const ActRows& a, int j, float* m) const {
    *m = 0.0f;
    return _cvtsh_ss(w[b].d) * a.scale[j][b];
  }
};

// The _1 types' (d_w, m_w) pairs of 8 blocks (fp16 in dm16) times the activation's (d_a, s_a).
template <int NA>
void min_products(__m256i dm16, const ActRows& a, int64_t b0, __m256 (*v)[2]) {
  const __m256 lo = _mm256_cvtph_ps(_mm256_castsi256_si128(dm16));       // blocks 0-3
  const __m256 hi = _mm256_cvtph_ps(_mm256_extracti128_si256(dm16, 1));  // blocks 4-7
  for (int j = 0; j < NA; ++j) {
    v[j][0] = _mm256_mul_ps(lo, _mm256_loadu_ps(a.scale[j] + 2 * b0));
    v[j][1] = _mm256_mul_ps(hi, _mm256_loadu_ps(a.scale[j] + 2 * b0 + 8));
  }
}

// Raw _1 blocks against Min rows.
template <class B>
struct RawMin {
  using Block = B;
  static constexpr bool kMin = true;
  const B* w;
  template <int NA>
  void lanes(int64_t b, const ActRows& a, __m256i* p) const {
    if constexpr (kFiveBit<B>) _mm_prefetch(reinterpret_cast<const char*>(w + b + kPrefetch), _MM_HINT_T0);
    const __m256i code = codes(w[b]);
#if defined(WEFT_LEGACY_QUANTS_ZMM)
    for (int j = 0; j < NA; ++j) p[j] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), code, load256(a.q[j] + 32 * b));
#else
    const __m256i ones = _mm256_set1_epi16(1);
    for (int j = 0; j < NA; ++j) {
      p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(code, load256(a.q[j] + 32 * b)), ones);
    }
#endif
  }
  template <int NA>
  void scales8(int64_t b0, const ActRows& a, __m256 (*v)[2]) const {
    const B* x = w + b0;
    const __m256i dm16 = _mm256_setr_epi32(  // (d, m) fp16 pairs
        static_cast<int>(load32(&x[0].d)), static_cast<int>(load32(&x[1].d)),
        static_cast<int>(load32(&x[2].d)), static_cast<int>(load32(&x[3].d)),
        static_cast<int>(load32(&x[4].d)), static_cast<int>(load32(&x[5].d)),
        static_cast<int>(load32(&x[6].d)), static_cast<int>(load32(&x[7].d)));
    min_products<NA>(dm16, a, b0, v);
  }
  float scale1(int64_t b, const ActRows& a, int j, float* m) const {
    *m = _cvtsh_ss(w[b].m) * a.scale[j][2 * b + 1];
    return _cvtsh_ss(w[b].d) * a.scale[j][2 * b];
  }
};

// Decoded rows (prefill). Q5_0: [nb x 32 int8 (q - 16)][nb x 8 int32 c][nb x f32 d] with
// c = 128 * quad_sums(q - 16), against Bias rows: the activation is the unsigned operand of
// maddubs, and madd(maddubs(q_a + 128, q_w - 16)) - c = (q_w - 16) * q_a per quad, exactly
// (|pair sum| <= 2 * 255 * 16, no saturation). The AVX-512 build stores -c, where vpdpbusd
// starts its sums.
constexpr int64_t kDecQ5_0Bytes = 68, kDecMinBytes = 40;  // per block

struct DecQ5_0 {
  static constexpr bool kMin = false;
  const uint8_t* row;
  int64_t nb;
  template <int NA>
  void lanes(int64_t b, const ActRows& a, __m256i* p) const {
    const __m256i code = load256(row + 32 * b);
    const __m256i c = load256(row + 32 * nb + 32 * b);
#if defined(WEFT_LEGACY_QUANTS_ZMM)
    // vpdpbusd forms the same quad sums in one step, starting from the stored -c.
    for (int j = 0; j < NA; ++j) p[j] = _mm256_dpbusd_epi32(c, load256(a.q[j] + 32 * b), code);
#else
    const __m256i ones = _mm256_set1_epi16(1);
    for (int j = 0; j < NA; ++j) {
      const __m256i prod = _mm256_madd_epi16(_mm256_maddubs_epi16(load256(a.q[j] + 32 * b), code), ones);
      p[j] = _mm256_sub_epi32(prod, c);
    }
#endif
  }
  template <int NA>
  void scales8(int64_t b0, const ActRows& a, __m256 (*v)[2]) const {
    const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(row + 64 * nb) + b0);
    for (int j = 0; j < NA; ++j) v[j][0] = _mm256_mul_ps(dw, _mm256_loadu_ps(a.scale[j] + b0));
  }
  float scale1(int64_t b, const ActRows& a, int j, float* m) const {
    *m = 0.0f;
    return reinterpret_cast<const float*>(row + 64 * nb)[b] * a.scale[j][b];
  }
};

// _1 types: [nb x 32 q][nb x 2 f32 (d, m)] against Min rows.
struct DecMin {
  static constexpr bool kMin = true;
  const uint8_t* row;
  int64_t nb;
  template <int NA>
  void lanes(int64_t b, const ActRows& a, __m256i* p) const {
    const __m256i code = load256(row + 32 * b);
#if defined(WEFT_LEGACY_QUANTS_ZMM)
    for (int j = 0; j < NA; ++j) p[j] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), code, load256(a.q[j] + 32 * b));
#else
    const __m256i ones = _mm256_set1_epi16(1);
    for (int j = 0; j < NA; ++j) {
      p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(code, load256(a.q[j] + 32 * b)), ones);
    }
#endif
  }
  template <int NA>
  void scales8(int64_t b0, const ActRows& a, __m256 (*v)[2]) const {
    const float* dm = reinterpret_cast<const float*>(row + 32 * nb) + 2 * b0;
    for (int j = 0; j < NA; ++j) {
      v[j][0] = _mm256_mul_ps(_mm256_loadu_ps(dm), _mm256_loadu_ps(a.scale[j] + 2 * b0));
      v[j][1] = _mm256_mul_ps(_mm256_loadu_ps(dm + 8), _mm256_loadu_ps(a.scale[j] + 2 * b0 + 8));
    }
  }
  float scale1(int64_t b, const ActRows& a, int j, float* m) const {
    const float* dm = reinterpret_cast<const float*>(row + 32 * nb);
    *m = dm[2 * b + 1] * a.scale[j][2 * b + 1];
    return dm[2 * b] * a.scale[j][2 * b];
  }
};

// Block b of a decoded Q5_0 row (nb blocks at row) from its unsigned codes and fp16 d.
void put_decoded_q5_0(uint8_t* row, int64_t nb, int64_t b, __m256i code, uint16_t d) {
  const __m256i q = _mm256_sub_epi8(code, _mm256_set1_epi8(16));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + 32 * b), q);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + 32 * nb + 32 * b), stored_correction(quad_sums(q, 7)));
  reinterpret_cast<float*>(row + 64 * nb)[b] = _cvtsh_ss(d);
}

void decode_q5_0(const BlockQ5_0* w, int64_t nb, uint8_t* dst) {
  for (int64_t b = 0; b < nb; ++b) put_decoded_q5_0(dst, nb, b, codes(w[b]), w[b].d);
}

template <class B>
void decode_min(const B* w, int64_t nb, uint8_t* dst) {
  float* dm = reinterpret_cast<float*>(dst + 32 * nb);
  for (int64_t b = 0; b < nb; ++b) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * b), codes(w[b]));
    dm[2 * b] = _cvtsh_ss(w[b].d);
    dm[2 * b + 1] = _cvtsh_ss(w[b].m);
  }
}

// ---- NR weight rows against NA activation rows ---------------------------------------------------
// out[i * NA + j] = row i . activation j: per output one 8-lane chain acc = fma(d_w d_a, float(p),
// acc) in block order (and for the _1 types a scalar chain summing m_w s_a, in lane 0 of summ),
// then hsum(acc) (+ that sum). Rows side by side only interleave their chains.
template <class Src, int NA>
inline void block_step(const Src& w, int64_t b, const ActRows& a, const __m256* s, const __m128* m,
                       __m256* acc, __m128* summ) {
  __m256i p[NA];
  w.template lanes<NA>(b, a, p);
  for (int j = 0; j < NA; ++j) {
    acc[j] = _mm256_fmadd_ps(s[j], _mm256_cvtepi32_ps(p[j]), acc[j]);
    if constexpr (Src::kMin) summ[j] = _mm_add_ss(summ[j], m[j]);
  }
}

template <class Src, int NR, int NA>
inline void dot_rows(const Src* w, int64_t nb, const ActRows& a, float* out) {
  __m256 acc[NR][NA];
  __m128 summ[NR][NA];
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < NA; ++j) {
      acc[i][j] = _mm256_setzero_ps();
      summ[i][j] = _mm_setzero_ps();
    }
  }
  int64_t b0 = 0;
  for (; b0 + kGroup <= nb; b0 += kGroup) {
    __m256 v[NR][NA][2];
    for (int i = 0; i < NR; ++i) w[i].template scales8<NA>(b0, a, v[i]);
#pragma GCC unroll 8
    for (int k = 0; k < kGroup; ++k) {
      // Block k's products, broadcast from their lanes (vpermps with constant indices).
      const int lane = Src::kMin ? 2 * (k % 4) : k;
      const __m256i at = _mm256_set1_epi32(lane), at_m = _mm256_set1_epi32(lane + 1);
      for (int i = 0; i < NR; ++i) {
        __m256 s[NA];
        __m128 m[NA];
        for (int j = 0; j < NA; ++j) {
          const __m256 src = v[i][j][Src::kMin ? k / 4 : 0];
          s[j] = _mm256_permutevar8x32_ps(src, at);
          if constexpr (Src::kMin) m[j] = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(src, at_m));
        }
        block_step<Src, NA>(w[i], b0 + k, a, s, m, acc[i], summ[i]);
      }
    }
  }
  for (int64_t b = b0; b < nb; ++b) {
    for (int i = 0; i < NR; ++i) {
      __m256 s[NA];
      __m128 m[NA];
      for (int j = 0; j < NA; ++j) {
        float mj;
        s[j] = _mm256_set1_ps(w[i].scale1(b, a, j, &mj));
        m[j] = _mm_set_ss(mj);
      }
      block_step<Src, NA>(w[i], b, a, s, m, acc[i], summ[i]);
    }
  }
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < NA; ++j) {
      out[i * NA + j] = Src::kMin ? hsum(acc[i][j]) + _mm_cvtss_f32(summ[i][j]) : hsum(acc[i][j]);
    }
  }
}

// ---- per-type policies ---------------------------------------------------------------------------
// pack: the decode path's layout of an activation row (kPackBytes per block; its scales start at
// kScaleAt * nb). pack_tile / decode: the prefill path's activation rows (scales at 32 * nb) and
// decoded weight rows.
struct Q5_0 {
  using Raw = RawQ5_0;
  using Dec = DecQ5_0;
  static constexpr int64_t kPackBytes = kCorrBytes, kScaleAt = 64;
  static constexpr int64_t kTilePackBytes = kBiasBytes, kDecBytes = kDecQ5_0Bytes;
  static constexpr int kPrefillTile = 4;
  static void pack(const void* src, int64_t nb, uint8_t* dst) { pack_corr(src, nb, dst); }
  static void pack_tile(const void* src, int64_t nb, uint8_t* dst) { pack_bias(src, nb, dst); }
  static void decode(const void* w, int64_t nb, uint8_t* dst) {
    decode_q5_0(static_cast<const BlockQ5_0*>(w), nb, dst);
  }
};

template <class B>
struct MinType {
  using Raw = RawMin<B>;
  using Dec = DecMin;
  static constexpr int64_t kPackBytes = kMinBytes, kScaleAt = 32;
  static constexpr int64_t kTilePackBytes = kMinBytes, kDecBytes = kDecMinBytes;
  static constexpr int kPrefillTile = 2;  // 4 would need more than 16 ymm registers
  static void pack(const void* src, int64_t nb, uint8_t* dst) { pack_min(src, nb, dst); }
  static void pack_tile(const void* src, int64_t nb, uint8_t* dst) { pack_min(src, nb, dst); }
  static void decode(const void* w, int64_t nb, uint8_t* dst) {
    decode_min<B>(static_cast<const B*>(w), nb, dst);
  }
};

using Q4_1 = MinType<BlockQ4_1>;
using Q5_1 = MinType<BlockQ5_1>;

// Row j of a for an activation row packed by T::pack at p.
template <class T>
void point(const uint8_t* p, int64_t nb, ActRows& a, int j) {
  a.q[j] = p;
  a.extra[j] = reinterpret_cast<const __m256i*>(p + 32 * nb);  // read only by RawQ5_0
  a.scale[j] = reinterpret_cast<const float*>(p + T::kScaleAt * nb);
}

// Rows [r0, r1) of raw weights against NA packed rows; y points at the first activation row's
// outputs. Decode (NA = 1) takes row r with row r + half of the range: a lone row's chain waits on
// its previous fma every block (Q5_0 ~26 GB/s a thread from cache and from memory alike), and two
// chains side by side fill those waits, while the two rows, far apart, stay two plain streams for
// the prefetchers (adjacent rows in lockstep read 0.74-0.81x as fast from memory). In-process A/B,
// Q5_0 on bench-kernels' shapes, one thread: from cache 1.09-1.24x, from memory 1.05-1.21x (two
// threads 1.03-1.15x); four rows side by side were no faster than two. Decode steps of the Q4_K_M
// files (mostly Q5_0 at these row sizes): 0.96-0.99x, a few windows noise-bound near 1.0.
template <class T, int NA>
void raw_rows(int64_t nb, const char* w, size_t w_row_bytes, const ActRows& a, float* y,
              int64_t y_stride, int64_t r0, int64_t r1) {
  using Raw = typename T::Raw;
  auto row = [&](int64_t r) { return Raw{reinterpret_cast<const typename Raw::Block*>(w + r * w_row_bytes)}; };
  int64_t r = r0;
  if constexpr (NA == 1) {
    const int64_t half = (r1 - r0) / 2;
    for (; r < r0 + half; ++r) {
      const Raw src[2] = {row(r), row(r + half)};
      float out[2];
      dot_rows<Raw, 2, 1>(src, nb, a, out);
      y[r] = out[0];
      y[r + half] = out[1];
    }
    r = r0 + 2 * half;
  }
  for (; r < r1; ++r) {
    const Raw src = row(r);
    float out[NA];
    dot_rows<Raw, 1, NA>(&src, nb, a, out);
    for (int j = 0; j < NA; ++j) y[j * y_stride + r] = out[j];
  }
}

template <class T>
float vec_dot_lanes(int64_t n, const void* w, const void* a) {
  const int64_t nb = n / kQL;
  uint8_t* buf = reinterpret_cast<uint8_t*>(scratch_floats(static_cast<size_t>(nb * T::kPackBytes / 4 + 1)));
  T::pack(a, nb, buf);
  ActRows rows{};
  point<T>(buf, nb, rows, 0);
  const typename T::Raw src{static_cast<const typename T::Raw::Block*>(w)};
  float out;
  dot_rows<typename T::Raw, 1, 1>(&src, nb, rows, &out);
  return out;
}

// Decode (n_tok = 1) streams the raw weights once, one row after another against one packed
// activation row: a single sequential stream for the prefetchers (two rows in lockstep ran 1.8x
// slower from memory on 576 x 1536). Batches of up to kTile tokens do the same with each weight
// block decoded once, in registers, for all of them.
//
// Larger batches are compute-bound: weight rows are decoded once per chunk of about kChunkBytes
// (kept in L2) into int8 codes and f32 scales, then every tile of T::kPrefillTile activation rows
// passes over the chunk, so the unpacking is paid once per chunk instead of once per tile.
constexpr int kTile = 4;
constexpr int64_t kChunkBytes = 128 * 1024;

// n = 0: every output is an empty sum, as vec_dot returns it.
void zero_outputs(int n_tok, float* y, int64_t y_stride, int64_t r_begin, int64_t r_end) {
  for (int i = 0; i < n_tok; ++i) {
    for (int64_t r = r_begin; r < r_end; ++r) y[i * y_stride + r] = 0.0f;
  }
}

// Decoded rows [c0, c1) (the chunk at dec) against nt <= NA packed rows.
template <class T, int NA>
void decoded_rows(int nt, int64_t nb, const uint8_t* dec, int64_t dec_row, const ActRows& a,
                  float* y, int64_t y_stride, int64_t c0, int64_t c1) {
  if constexpr (NA > 1) {
    if (nt < NA) return decoded_rows<T, NA - 1>(nt, nb, dec, dec_row, a, y, y_stride, c0, c1);
  }
  for (int64_t r = c0; r < c1; ++r) {
    const typename T::Dec src{dec + (r - c0) * dec_row, nb};
    float out[NA];
    dot_rows<typename T::Dec, 1, NA>(&src, nb, a, out);
    for (int j = 0; j < NA; ++j) y[j * y_stride + r] = out[j];
  }
}

// Every activation row packed once, then chunks of weight rows decoded by decode(c0, c1, dec)
// (rows [c0, c1) from dec on, or more: with whole groups of `align` rows, up to the group's end)
// and met by every tile of activation rows. Chunks start at multiples of align.
template <class T, class Decode>
void matmul_decoded(int64_t nb, const char* ab, size_t act_row_bytes, int n_tok, float* y,
                    int64_t y_stride, int64_t r_begin, int64_t r_end, int64_t align, const Decode& decode) {
  const int64_t pack_row = nb * T::kTilePackBytes, dec_row = nb * T::kDecBytes;
  const int64_t first = r_begin - r_begin % align, span = (r_end - first + align - 1) / align * align;
  const int64_t chunk_rows = (1 + (kChunkBytes - 1) / dec_row + align - 1) / align * align;
  const int64_t bytes = n_tok * pack_row + min_i64(chunk_rows, span) * dec_row;
  uint8_t* packed = reinterpret_cast<uint8_t*>(scratch_floats(static_cast<size_t>(bytes / 4 + 1)));
  uint8_t* dec = packed + n_tok * pack_row;
  for (int i = 0; i < n_tok; ++i) T::pack_tile(ab + i * act_row_bytes, nb, packed + i * pack_row);

  for (int64_t c0 = first; c0 < r_end; c0 += chunk_rows) {
    const int64_t c1 = min_i64(r_end, c0 + chunk_rows), lo = c0 > r_begin ? c0 : r_begin;
    decode(c0, c1, dec);
    for (int i0 = 0; i0 < n_tok; i0 += T::kPrefillTile) {
      const int nt = n_tok - i0 < T::kPrefillTile ? n_tok - i0 : T::kPrefillTile;
      ActRows a{};
      for (int j = 0; j < nt; ++j) {
        const uint8_t* p = packed + (i0 + j) * pack_row;
        a.q[j] = p;
        a.scale[j] = reinterpret_cast<const float*>(p + 32 * nb);
      }
      decoded_rows<T, T::kPrefillTile>(nt, nb, dec + (lo - c0) * dec_row, dec_row, a, y + i0 * y_stride, y_stride, lo, c1);
    }
  }
}

template <class T>
void matmul_lanes(int64_t n, const void* w, size_t w_row_bytes, const void* act,
                  size_t act_row_bytes, int n_tok, float* y, int64_t y_stride, int64_t r_begin,
                  int64_t r_end) {
  const int64_t nb = n / kQL;
  const char* wb = static_cast<const char*>(w);
  const char* ab = static_cast<const char*>(act);
  if (nb == 0) return zero_outputs(n_tok, y, y_stride, r_begin, r_end);
  if (n_tok <= kTile) {
    uint8_t* buf = reinterpret_cast<uint8_t*>(
        scratch_floats(static_cast<size_t>(kTile * nb * T::kPackBytes / 4 + 1)));
    ActRows a{};
    for (int j = 0; j < n_tok; ++j) {
      uint8_t* p = buf + j * nb * T::kPackBytes;
      T::pack(ab + j * act_row_bytes, nb, p);
      point<T>(p, nb, a, j);
    }
    switch (n_tok) {
      case 1: raw_rows<T, 1>(nb, wb, w_row_bytes, a, y, y_stride, r_begin, r_end); break;
      case 2: raw_rows<T, 2>(nb, wb, w_row_bytes, a, y, y_stride, r_begin, r_end); break;
      case 3: raw_rows<T, 3>(nb, wb, w_row_bytes, a, y, y_stride, r_begin, r_end); break;
      case 4: raw_rows<T, 4>(nb, wb, w_row_bytes, a, y, y_stride, r_begin, r_end); break;
      default: break;  // n_tok = 0
    }
    return;
  }

  matmul_decoded<T>(nb, ab, act_row_bytes, n_tok, y, y_stride, r_begin, r_end, 1,
                    [&](int64_t c0, int64_t c1, uint8_t* dec) {
                      for (int64_t r = c0; r < c1; ++r) T::decode(wb + r * w_row_bytes, nb, dec + (r - c0) * T::kDecBytes * nb);
                    });
}

// ==== Q4_0: llama.cpp's repacked order ========================================================
// Eight weight rows share a vector, lane r running row r's chain, so each block's integer sums
// come out as one vector of eight (a transposing reduction) and one fma advances all eight
// chains. Decode reads the eight rows in lockstep, eight streams, which the
// prefetchers follow less well than one (measured 1 thread: 10-18 GB/s from memory, 19-20 from
// cache); parking lane sums to read the rows one by one cost more than it saved. So decode asks
// for each row's lines kQ4_0AheadBytes ahead itself: bench-kernels from memory, one thread, the
// four shapes 6.6 / 5.7 / 6.2 / 10.7 -> 9.6 / 9.5 / 7.0 / 12.9 GB/s (512 and 1024 bytes ahead did
// less for the long rows), two threads 11.2 / 9.7 / 11.6 / 18.9 -> 17.5 / 15.1 / 12.6 / 23.1.
// Models now pack their Q4_0 matmul weights at load (Q4_0_X8, below), which streams 3-6x faster;
// rows as stored remain for what cannot be packed (an output matrix tied to the embeddings, a
// matrix whose rows are not a multiple of eight) and for vec_dot.
//
// Activation rows: [nb x 32 q][nb x int32 8 * sum(q)][nb x f32 d]; with unsigned codes c,
// sum(c * q) - 8 * sum(q) = sum((c - 8) * q) exactly, whatever the int8 values.
constexpr int64_t kQ4_0ActBytes = 40;  // per block
constexpr int64_t kQ4_0AheadBytes = 2048;

void pack_q4_0(const void* src, int64_t nb, uint8_t* dst) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  int32_t* c = reinterpret_cast<int32_t*>(dst + 32 * nb);
  float* d = reinterpret_cast<float*>(dst + 36 * nb);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = load256(x[b].qs);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * b), q);
    const __m256i s = quad_sums(q, 3);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    c[b] = _mm_cvtsi128_si32(_mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1)));
    d[b] = _cvtsh_ss(x[b].d);
  }
}

// Lane r = the sum of the eight int32 lanes of v[r].
__m256i transpose_sum8(const __m256i* v) {
  const __m256i t01 = _mm256_hadd_epi32(v[0], v[1]), t23 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i t45 = _mm256_hadd_epi32(v[4], v[5]), t67 = _mm256_hadd_epi32(v[6], v[7]);
  // Per 128-bit half: rows 0-3 (u0) and 4-7 (u1), each lane one row's sum over that half.
  const __m256i u0 = _mm256_hadd_epi32(t01, t23), u1 = _mm256_hadd_epi32(t45, t67);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                          _mm256_permute2x128_si256(u0, u1, 0x31));
}

// Block b's scale d of each of the eight rows, as f32, lane r row r's.
__m256 group_scales(const BlockQ4_0* const* w, int64_t b) {
  return _mm256_cvtph_ps(_mm_setr_epi16(
      static_cast<short>(w[0][b].d), static_cast<short>(w[1][b].d), static_cast<short>(w[2][b].d),
      static_cast<short>(w[3][b].d), static_cast<short>(w[4][b].d), static_cast<short>(w[5][b].d),
      static_cast<short>(w[6][b].d), static_cast<short>(w[7][b].d)));
}

// acc + float(sumi) * (dw * d_a): the float part of one block for the eight rows, the
// same in every Q4_0 kernel (so the layouts give the same bits).
__m256 add_block(__m256 acc, __m256i sumi, __m256 dw, const float* da) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(dw, _mm256_broadcast_ss(da)), acc);
}

// out[r] = row r . the activation row a for the eight rows at w[0..8) (repeat a row to fill the
// group; its lanes compute the same thing again). Each of the eight streams asks 2 KiB ahead,
// every 72 bytes.
void q4_0_group(const BlockQ4_0* const* w, int64_t nb, const uint8_t* a, float* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    if (b % 4 == 0) {
      for (int r = 0; r < 8; ++r) prefetch_line(reinterpret_cast<const char*>(w[r] + b) + kQ4_0AheadBytes);
    }
    const __m256 dw = group_scales(w, b);
    const __m256i qa = load256(a + 32 * b);
    __m256i v[8];
    for (int r = 0; r < 8; ++r) v[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(w[r][b].qs), qa), ones);
    const int32_t corr = reinterpret_cast<const int32_t*>(a + 32 * nb)[b];
    const __m256i sumi = _mm256_sub_epi32(transpose_sum8(v), _mm256_set1_epi32(corr));
    acc = add_block(acc, sumi, dw, reinterpret_cast<const float*>(a + 36 * nb) + b);
  }
  _mm256_storeu_ps(out, acc);
}

// Batches (n_tok > 1) instead lay each group of eight rows out lane-major first, once for all
// its activation rows: per block, eight vectors, vector k holding dword k (weights 4k .. 4k + 3)
// of each row's codes, lane r row r's, then the eight rows' scales as f32. An activation row then
// meets a block with one quad sum per dword (its dword k broadcast), lane r gathering row r's
// integer sum directly, where q4_0_group forms eight vectors of partial sums and transposes them
// (vphaddd, three uops on AMD cores) for every activation row and block. The integers are the
// same exact sums, so are the floats after them. The group's layout stays in L1/L2 while the
// activation rows meet it kTile at a time. bench-kernels at n_tok = 64 (GFLOP/s, the four shapes,
// Zen 5 VM): one thread 127-137 -> 281-338, two 229-268 -> 475-575 (AVX2 backend: one thread
// 135-145 -> 201-217); SmolLM2-shape Q4_0 pp512 885-1062 -> 1829-2014 tok/s (node-llama-cpp
// 961-1238 alongside).
constexpr int64_t kQ4_0LaneBytes = 8 * 32 + 32;  // per block: eight code vectors, eight scales

// The 8 x 8 int32 transpose: lane r of v[k] becomes lane k of v[r].
void transpose8_epi32(__m256i* v) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

void q4_0_lanes(const BlockQ4_0* const* w, int64_t nb, uint8_t* out) {
  for (int64_t b = 0; b < nb; ++b, out += kQ4_0LaneBytes) {
    __m256i code[8];
    for (int r = 0; r < 8; ++r) code[r] = nibbles(w[r][b].qs);
    transpose8_epi32(code);
    for (int k = 0; k < 8; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * k), code[k]);
    _mm256_storeu_ps(reinterpret_cast<float*>(out + 256), group_scales(w, b));
  }
}

// sumi + per lane the exact sum of the four products of code's bytes (unsigned codes) with the
// four activation bytes qa.
__m256i add_quad_sums(__m256i sumi, __m256i code, int32_t qa) {
#if defined(WEFT_LEGACY_QUANTS_ZMM)
  return _mm256_dpbusd_epi32(sumi, code, _mm256_set1_epi32(qa));
#else
  const __m256i quad = _mm256_madd_epi16(_mm256_maddubs_epi16(code, _mm256_set1_epi32(qa)), _mm256_set1_epi16(1));
  return _mm256_add_epi32(sumi, quad);
#endif
}

// out[j * 8 + r] as q4_0_group gives it, from a group laid out by q4_0_lanes.
template <int NA>
void q4_0_group_lanes(const uint8_t* lanes, int64_t nb, const uint8_t* const* a, float* out) {
  __m256 acc[NA];
  for (int j = 0; j < NA; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, lanes += kQ4_0LaneBytes) {
    const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(lanes + 256));
    for (int j = 0; j < NA; ++j) {
      const int32_t* qa = reinterpret_cast<const int32_t*>(a[j] + 32 * b);
      __m256i sumi = _mm256_set1_epi32(-reinterpret_cast<const int32_t*>(a[j] + 32 * nb)[b]);
      for (int k = 0; k < 8; ++k) sumi = add_quad_sums(sumi, load256(lanes + 32 * k), qa[k]);
      acc[j] = add_block(acc[j], sumi, dw, reinterpret_cast<const float*>(a[j] + 36 * nb) + b);
    }
  }
  for (int j = 0; j < NA; ++j) _mm256_storeu_ps(out + 8 * j, acc[j]);
}

// ==== Q4_0_X8: Q4_0 rows packed at load (cpu::packed_type; layout in quants-legacy.h) ==========
// Vector j of a packed block is code vectors j and j + 4 of q4_0_lanes's layout, an and, a shift
// and an and away, so a group needs no transposing at all: decode streams it as one run of bytes
// (where q4_0_group reads eight rows in lockstep, which the prefetchers follow poorly, and
// transposes their partial sums block by block) asking kPrefetchBytes ahead as it goes, and a
// batch expands it into q4_0_lanes's layout with no shuffles. The integer sums are the same exact
// sums, so the bits are the same. bench-kernels from memory (Zen 5 VM, slow mode), the four
// shapes: one thread, Q4_0 rows 10.2 / 9.8 / 6.4 / 13.7 GB/s -> packed 41.7 / 40.5 / 38.0 / 40.0;
// two 18.7 / 17.8 / 11.9 / 24.0 -> 45.6 / 45.6 / 49.0 / 45.6 (Q8_0 beside them: 40-53).

// Code vectors j (low nibbles) and j + 4 (high nibbles) of a packed block.
void x8_codes(const BlockQ4_0x8& b, int j, __m256i& lo, __m256i& hi) {
  const __m256i v = load256(b.qs[j]);
  const __m256i m = _mm256_set1_epi8(0x0F);
  lo = _mm256_and_si256(v, m);
  hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
}

// out[r] = row r . the activation row a, for the eight rows of the packed group g.
void q4_0_x8_row(const BlockQ4_0x8* g, int64_t nb, const uint8_t* a, float* out) {
  const int32_t* corr = reinterpret_cast<const int32_t*>(a + 32 * nb);
  const float* da = reinterpret_cast<const float*>(a + 36 * nb);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    if (b % 4 == 0) {  // four blocks are nine lines
      const char* ahead = reinterpret_cast<const char*>(g + b) + kPrefetchBytes;
      for (int i = 0; i < 9; ++i) prefetch_line(ahead + 64 * i);
    }
    const int32_t* qa = reinterpret_cast<const int32_t*>(a + 32 * b);
    __m256i sumi = _mm256_set1_epi32(-corr[b]);
    for (int j = 0; j < 4; ++j) {
      __m256i lo, hi;
      x8_codes(g[b], j, lo, hi);
      sumi = add_quad_sums(add_quad_sums(sumi, lo, qa[j]), hi, qa[j + 4]);
    }
    acc = add_block(acc, sumi, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[b].d))), da + b);
  }
  _mm256_storeu_ps(out, acc);
}

void x8_lanes(const BlockQ4_0x8* g, int64_t nb, uint8_t* out) {
  for (int64_t b = 0; b < nb; ++b, out += kQ4_0LaneBytes) {
    for (int j = 0; j < 4; ++j) {
      __m256i lo, hi;
      x8_codes(g[b], j, lo, hi);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * j), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * (j + 4)), hi);
    }
    _mm256_storeu_ps(reinterpret_cast<float*>(out + 256),
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[b].d))));
  }
}

// The groups of either layout: eight row pointers (a short last group repeats its last row).
struct RowGroup {
  const BlockQ4_0* rows[8];
  static constexpr bool kAligned = false;  // groups start at r_begin
  RowGroup(const char* w, size_t row_bytes, int64_t g, int64_t r_end) {
    for (int r = 0; r < 8; ++r) rows[r] = reinterpret_cast<const BlockQ4_0*>(w + min_i64(g + r, r_end - 1) * row_bytes);
  }
  void row(int64_t nb, const uint8_t* a, float* out) const { q4_0_group(rows, nb, a, out); }
  void lanes(int64_t nb, uint8_t* out) const { q4_0_lanes(rows, nb, out); }
};

struct PackedGroup {
  const BlockQ4_0x8* g;
  static constexpr bool kAligned = true;  // groups are rows 8k .. 8k + 7
  PackedGroup(const char* w, size_t row_bytes, int64_t g0, int64_t) : g(reinterpret_cast<const BlockQ4_0x8*>(w + g0 * row_bytes)) {}
  void row(int64_t nb, const uint8_t* a, float* out) const { q4_0_x8_row(g, nb, a, out); }
  void lanes(int64_t nb, uint8_t* out) const { x8_lanes(g, nb, out); }
};

template <class Group>
void matmul_groups(int64_t n, const void* w, size_t w_row_bytes, const void* act,
                   size_t act_row_bytes, int n_tok, float* y, int64_t y_stride, int64_t r_begin,
                   int64_t r_end) {
  const int64_t nb = n / kQL;
  if (nb == 0) return zero_outputs(n_tok, y, y_stride, r_begin, r_end);
  const int64_t pack_row = nb * kQ4_0ActBytes;
  const bool by_lanes = n_tok > 1;
  const int64_t packed_bytes = n_tok * pack_row, lane_bytes = by_lanes ? nb * kQ4_0LaneBytes : 0;
  uint8_t* packed = reinterpret_cast<uint8_t*>(scratch_floats(static_cast<size_t>((packed_bytes + lane_bytes) / 4 + 1)));
  uint8_t* lanes = packed + packed_bytes;
  const char* ab = static_cast<const char*>(act);
  for (int i = 0; i < n_tok; ++i) pack_q4_0(ab + i * act_row_bytes, nb, packed + i * pack_row);

  const char* wb = static_cast<const char*>(w);
  for (int64_t g = Group::kAligned ? r_begin - r_begin % 8 : r_begin; g < r_end; g += 8) {
    const Group group(wb, w_row_bytes, g, r_end);
    const int64_t lo = g > r_begin ? g : r_begin, hi = min_i64(g + 8, r_end);
    if (by_lanes) group.lanes(nb, lanes);
    for (int i0 = 0; i0 < n_tok; i0 += kTile) {
      const int nt = n_tok - i0 < kTile ? n_tok - i0 : kTile;
      const uint8_t* a[kTile];
      for (int j = 0; j < nt; ++j) a[j] = packed + (i0 + j) * pack_row;
      float out[8 * kTile];
      if (!by_lanes) {
        group.row(nb, a[0], out);
      } else {
        switch (nt) {
          case 1: q4_0_group_lanes<1>(lanes, nb, a, out); break;
          case 2: q4_0_group_lanes<2>(lanes, nb, a, out); break;
          case 3: q4_0_group_lanes<3>(lanes, nb, a, out); break;
          default: q4_0_group_lanes<kTile>(lanes, nb, a, out); break;
        }
      }
      for (int j = 0; j < nt; ++j) {
        for (int64_t r = lo; r < hi; ++r) y[(i0 + j) * y_stride + r] = out[8 * j + (r - g)];
      }
    }
  }
}

float vec_dot_q4_0(int64_t n, const void* w, const void* a) {
  const int64_t nb = n / kQL;
  uint8_t* buf = reinterpret_cast<uint8_t*>(scratch_floats(static_cast<size_t>(nb * kQ4_0ActBytes / 4 + 1)));
  pack_q4_0(a, nb, buf);
  const BlockQ4_0* rows[8];
  for (const BlockQ4_0*& r : rows) r = static_cast<const BlockQ4_0*>(w);
  float out[8];
  q4_0_group(rows, nb, buf, out);
  return out[0];
}

// ==== Q5_0_X8: Q5_0 rows packed at load (cpu::packed_type; layout in quants-legacy.h) ==========
// Q5_0's own arithmetic (ggml's vec_dot order, above), eight rows at a time the other way round:
// code vector v of a packed block holds quad v of each row (weights 4v..4v+3, lane r row r's), so
// its quad sums against the activation's quad v (broadcast) are lane v of each row's p, and
// accumulator v holds lane v of each row's acc: the same integers, the same fma per lane and
// block, and at the end hsum's additions made between accumulators, so the same bits as Q5_0 on
// the rows unpacked. Decode streams a group as one run of bytes, where Q5_0 reads two far rows
// a block at a time, and each fifth bit costs a shift and an and per eight rows. Batches of up to
// kX8MaxTok tokens take the group from L1 once per tile of kX8Tile activation rows; larger ones
// decode whole groups into Q5_0's prefill layout (a transpose away). bench-kernels (Zen 5 VM, the
// four shapes, GB/s, the fast mode): one thread from memory 27.0-29.1 -> 30.7-42.4, two
// 42.2-53.9 -> 49.8-66.0; from cache one thread 28.9-31.0 -> 46.0-48.9, two 51.3-61.2 -> 80.6-89.4;
// n_tok = 64 unchanged within noise (165-208 GFLOP/s either way). SmolLM2-shape Q4_K_M decode
// (mostly Q5_0), fast mode: B=1 398-465 -> 572-586 tok/s, B=2 619-658 -> 778-819, B=4 749-800 ->
// 872-885, pp512 unchanged; Qwen2.5-shape Q4_K_M B=1 142 -> 174-179. In the slow mode,
// memory-bound, B=1 is about the same either way.

// Bit 4 of byte m of lane r: the fifth bit of weight 4V + m of row r (bit 8m + V of its qh).
template <int V>
__m256i x8_fifth(__m256i qh) {
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  if constexpr (V <= 4) return _mm256_and_si256(_mm256_slli_epi32(qh, 4 - V), bit4);
  return _mm256_and_si256(_mm256_srli_epi32(qh, V - 4), bit4);
}

// Code vector V (unsigned, before the -16) of a packed block.
template <int V>
__m256i x8_codes5(const BlockQ5_0x8& b, __m256i qh) {
  const __m256i v = load256(b.qs[V % 4]);
  const __m256i m = _mm256_set1_epi8(0x0F);
  const __m256i nib = V < 4 ? _mm256_and_si256(v, m) : _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
  return _mm256_or_si256(nib, x8_fifth<V>(qh));
}

// The start of a quad sum from a Corr row's stored correction (which the AVX-512 build negates).
__m256i corr_start(int32_t stored) {
#if defined(WEFT_LEGACY_QUANTS_ZMM)
  return _mm256_set1_epi32(stored);
#else
  return _mm256_set1_epi32(-stored);
#endif
}

// Code vector V of block b against NA Corr rows: lane v of each row's p, into accumulator V.
template <int V, int NA>
void x8_quad(const BlockQ5_0x8& blk, __m256i qh, const uint8_t* const* a, int64_t nb, int64_t b, const __m256* s,
             __m256 (*acc)[8]) {
  const __m256i code = x8_codes5<V>(blk, qh);
  for (int j = 0; j < NA; ++j) {
    const int32_t corr = reinterpret_cast<const int32_t*>(a[j] + 32 * nb)[8 * b + V];
    const int32_t qa = reinterpret_cast<const int32_t*>(a[j] + 32 * b)[V];
    const __m256i p = add_quad_sums(corr_start(corr), code, qa);
    acc[j][V] = _mm256_fmadd_ps(s[j], _mm256_cvtepi32_ps(p), acc[j][V]);
  }
}

// out[j * 8 + r] = row r . activation row a[j] (Corr layout), for the eight rows of the packed
// group g: decode (NA = 1), and small batches a tile at a time (the group read from L1 again).
template <int NA>
void q5_0_x8_rows(const BlockQ5_0x8* g, int64_t nb, const uint8_t* const* a, float* out) {
  __m256 acc[NA][8];
  for (int j = 0; j < NA; ++j) {
    for (__m256& x : acc[j]) x = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    if (b % 4 == 0) {  // four blocks are eleven lines
      const char* ahead = reinterpret_cast<const char*>(g + b) + kPrefetchBytes;
      for (int i = 0; i < 11; ++i) prefetch_line(ahead + 64 * i);
    }
    const __m256i qh = load256(g[b].qh);
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[b].d)));
    __m256 s[NA];
    for (int j = 0; j < NA; ++j) s[j] = _mm256_mul_ps(dw, _mm256_set1_ps(reinterpret_cast<const float*>(a[j] + 64 * nb)[b]));
    x8_quad<0, NA>(g[b], qh, a, nb, b, s, acc);
    x8_quad<1, NA>(g[b], qh, a, nb, b, s, acc);
    x8_quad<2, NA>(g[b], qh, a, nb, b, s, acc);
    x8_quad<3, NA>(g[b], qh, a, nb, b, s, acc);
    x8_quad<4, NA>(g[b], qh, a, nb, b, s, acc);
    x8_quad<5, NA>(g[b], qh, a, nb, b, s, acc);
    x8_quad<6, NA>(g[b], qh, a, nb, b, s, acc);
    x8_quad<7, NA>(g[b], qh, a, nb, b, s, acc);
  }
  // hsum(acc of row r) = ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), lane by lane.
  for (int j = 0; j < NA; ++j) {
    const __m256 s0 = _mm256_add_ps(acc[j][0], acc[j][4]), s1 = _mm256_add_ps(acc[j][1], acc[j][5]);
    const __m256 s2 = _mm256_add_ps(acc[j][2], acc[j][6]), s3 = _mm256_add_ps(acc[j][3], acc[j][7]);
    _mm256_storeu_ps(out + 8 * j, _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3)));
  }
}

// Each row's codes of a packed block in weight order (c[r] as codes() gives row r's block): the
// lane-major code vectors, transposed.
void x8_row_codes(const BlockQ5_0x8& b, __m256i* c) {
  const __m256i qh = load256(b.qh);
  c[0] = x8_codes5<0>(b, qh);
  c[1] = x8_codes5<1>(b, qh);
  c[2] = x8_codes5<2>(b, qh);
  c[3] = x8_codes5<3>(b, qh);
  c[4] = x8_codes5<4>(b, qh);
  c[5] = x8_codes5<5>(b, qh);
  c[6] = x8_codes5<6>(b, qh);
  c[7] = x8_codes5<7>(b, qh);
  transpose8_epi32(c);
}

// Larger batches: whole groups into Q5_0's decoded layout, each row as decode_q5_0 writes it.
void x8_decode(const BlockQ5_0x8* g, int64_t n_groups, int64_t nb, uint8_t* dst) {
  const int64_t dec_row = nb * kDecQ5_0Bytes;
  for (int64_t k = 0; k < n_groups; ++k, g += nb) {
    uint8_t* rows = dst + k * 8 * dec_row;
    for (int64_t b = 0; b < nb; ++b) {
      __m256i c[8];
      x8_row_codes(g[b], c);
      for (int r = 0; r < 8; ++r) put_decoded_q5_0(rows + r * dec_row, nb, b, c[r], g[b].d[r]);
    }
  }
}

// Activation rows per pass over a group: 2 x 8 accumulators fit AVX-512's 32 vector registers,
// AVX2's 16 take one row's 8.
#if defined(WEFT_LEGACY_QUANTS_ZMM)
constexpr int kX8Tile = 2;
#else
constexpr int kX8Tile = 1;
#endif

// Batches up to this many tokens meet each group kX8Tile activation rows at a time from L1; larger
// ones decode groups into the prefill layout. SmolLM2-shape Q4_K_M, 2 threads: with AVX-512, B=8
// 630-682 -> 868-912 tok/s and B=16 754-836 -> 938-950 against the decoded path, which is ~10 %
// faster at n_tok = 64 (bench-kernels, one thread: 187-205 against 164-183 GFLOP/s); with AVX2
// (a row at a time) B=4 507-533 -> 548-570, but B=16 627-634 -> 574-590.
#if defined(WEFT_LEGACY_QUANTS_ZMM)
constexpr int kX8MaxTok = 16;
#else
constexpr int kX8MaxTok = 4;
#endif

void matmul_q5_0_x8(int64_t n, const void* w, size_t w_row_bytes, const void* act,
                    size_t act_row_bytes, int n_tok, float* y, int64_t y_stride, int64_t r_begin,
                    int64_t r_end) {
  const int64_t nb = n / kQL;
  if (nb == 0) return zero_outputs(n_tok, y, y_stride, r_begin, r_end);
  const char* wb = static_cast<const char*>(w);
  auto group = [&](int64_t g0) { return reinterpret_cast<const BlockQ5_0x8*>(wb + g0 * w_row_bytes); };
  if (n_tok <= kX8MaxTok) {
    uint8_t* buf = reinterpret_cast<uint8_t*>(scratch_floats(static_cast<size_t>(n_tok * kCorrBytes * nb / 4 + 1)));
    for (int j = 0; j < n_tok; ++j) pack_corr(static_cast<const char*>(act) + j * act_row_bytes, nb, buf + j * kCorrBytes * nb);
    for (int64_t g = r_begin - r_begin % 8; g < r_end; g += 8) {
      const int64_t lo = g > r_begin ? g : r_begin, hi = min_i64(g + 8, r_end);
      for (int j0 = 0, nt = 0; j0 < n_tok; j0 += nt) {
        nt = n_tok - j0 >= kX8Tile ? kX8Tile : 1;
        const uint8_t* a[kX8Tile];
        for (int j = 0; j < nt; ++j) a[j] = buf + (j0 + j) * kCorrBytes * nb;
        float out[8 * kX8Tile];
        if (nt == kX8Tile) {
          q5_0_x8_rows<kX8Tile>(group(g), nb, a, out);
        } else {
          q5_0_x8_rows<1>(group(g), nb, a, out);
        }
        for (int j = 0; j < nt; ++j) {
          for (int64_t r = lo; r < hi; ++r) y[(j0 + j) * y_stride + r] = out[8 * j + (r - g)];
        }
      }
    }
    return;
  }
  matmul_decoded<Q5_0>(nb, static_cast<const char*>(act), act_row_bytes, n_tok, y, y_stride, r_begin, r_end, 8,
                       [&](int64_t c0, int64_t c1, uint8_t* dec) { x8_decode(group(c0), (c1 - c0 + 7) / 8, nb, dec); });
}

// ---- Q8_1 activations --------------------------------------------------------------------------
// The arithmetic of quantize_q8_1 in quants-legacy-ref.cc (ggml's x86 quantizer), bit for bit:
// amax ignoring NaN, d = amax / 127, id = 127 / amax, q = round-half-even(clamp(x * id, +-127)),
// s = fp16(d * sum(q)).
void quantize_q8_1(const float* src, void* dst, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < n / kQL; ++b) {
    const Q8Block32 q = quantize_block32(src + b * kQL);
    const __m256i sum8 = _mm256_add_epi32(_mm256_add_epi32(q.q[0], q.q[1]), _mm256_add_epi32(q.q[2], q.q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum8), _mm256_extracti128_si256(sum8, 1));
    s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
    const int sum = _mm_cvtsi128_si32(s4);
    y[b].d = _cvtss_sh(q.d, _MM_FROUND_TO_NEAREST_INT);
    y[b].s = _cvtss_sh(q.d * static_cast<float>(sum), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), pack_q8(q.q));
  }
}

template <class T>
void install_lanes(Backend& b, GgmlType t) {
  TypeKernels& k = b.types[static_cast<uint32_t>(t)];
  k.vec_dot = vec_dot_lanes<T>;
  k.matmul = matmul_lanes<T>;
}

}  // namespace

#if defined(WEFT_LEGACY_QUANTS_ZMM)
// The dots (only the 5-bit types' differ from the AVX2 build's); the quantizer stays AVX2's.
void install_legacy_quants_avx512(Backend& b) {
#else
void install_legacy_quants_avx2(Backend& b) {
  b.types[static_cast<uint32_t>(GgmlType::Q8_1)].quantize = quantize_q8_1;
#endif
  TypeKernels& q4_0 = b.types[static_cast<uint32_t>(GgmlType::Q4_0)];
  q4_0.vec_dot = vec_dot_q4_0;
  q4_0.matmul = matmul_groups<RowGroup>;
  b.types[static_cast<uint32_t>(GgmlType::Q4_0_X8)].matmul = matmul_groups<PackedGroup>;
  b.types[static_cast<uint32_t>(GgmlType::Q5_0_X8)].matmul = matmul_q5_0_x8;
  install_lanes<Q5_0>(b, GgmlType::Q5_0);
  install_lanes<Q4_1>(b, GgmlType::Q4_1);
  install_lanes<Q5_1>(b, GgmlType::Q5_1);
}

}  // namespace weft::cpu::detail

#endif  // __AVX2__ && __FMA__ && __F16C__ (and AVX-512 F/BW/VL for WEFT_LEGACY_QUANTS_ZMM)
