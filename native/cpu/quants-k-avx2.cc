// AVX2 kernels for the K-quants Q4_K, Q5_K, Q6_K against Q8_K activations, and the Q8_K
// activation quantizer. Compiled with -mavx2 -mfma -mf16c like kernels-avx2.cc, under the same
// rules: internal linkage, no standard-library templates.
//
// Each dot reproduces the arithmetic of ggml's x86 (AVX2) kernel for its type, lane for lane:
// the same exact int32 lane sums per super-block, scaled and accumulated by the same float
// operations in the same order. The next layer's Q8_K rounding of an activation can hinge on the
// last bit of a matmul output, and one flipped rounding moves a random model's logits by tenths;
// with these sums llama-gqa-k-q6_k stays within 1e-5 of llama.cpp's logits (see
// test/reference-logits.test.ts, which also says where Q4_K_M files differ and why).
//   every type: acc = fma(d_a * d_w, float(sum lanes), acc) per super-block, hsum(acc) at the end;
//   Q4_K:       plus a 4-lane fma accumulator of the min term, added after the hsum;
//   Q5_K:       plus a scalar accumulator of the min term, added after the hsum (ggml's C
//               `summs += dmin * sum`, which its -march=native build fuses into an fma; no
//               reference file holds Q5_K, so this one is not checked against llama.cpp).
//
// Batch invariance: one tile kernel per type computes NW weight rows x NA activation rows with
// its own accumulators per output, and vec_dot is that kernel with NW = NA = 1, so every output
// sees the same operations whatever tile, batch or thread split it was computed in.
//
// The integer products use maddubs (unsigned weight codes x signed activations), then madd with
// the sub-block scale, which both widens to int32 and applies the scale. Codes <= 63 and |q_a|
// <= 128 keep every int16 pair sum within +-2^14 (+-24320 after Q6_K's offset); int32 lanes stay
// below 2^26.
//
// quants-k-avx512.cc compiles this file a second time with AVX-512 flags and WEFT_K_QUANTS_ZMM,
// which swaps the integer inner loops for zmm ones: the same maddubs pair sums, with madd + add
// fused into vpdpwssd, two 32-weight vectors per instruction (one in each 256-bit half) and the
// halves added at the end, and Q4_K/Q5_K take their activation rows repacked (Q8KPairs below).
// Integer sums are exact, so every super-block's 8 int32 lanes, and from there every float
// operation and output, are the AVX2 build's bit for bit (test-quants-k checks).
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) &&                              \
    (!defined(WEFT_K_QUANTS_ZMM) || (defined(__AVX512F__) && defined(__AVX512BW__) &&          \
                                     defined(__AVX512VL__) && defined(__AVX512VNNI__)))

#include <immintrin.h>

#include <cstring>

#include "avx2-common.h"
#include "kernels-impl.h"
#include "matmul-tiles.h"
#include "quants-k.h"

namespace weft::cpu::detail {
namespace {

float fp16(uint16_t h) { return _cvtsh_ss(h); }

// pshufb patterns (they index within each 128-bit half; -1 writes a zero byte).
// kByteToI16[j]: every int16 lane = byte j of the half, zero-extended.
alignas(32) const int8_t kByteToI16[8][32] = {
#define WEFT_BYTE_TO_I16(j) \
  {j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1}
    WEFT_BYTE_TO_I16(0), WEFT_BYTE_TO_I16(1), WEFT_BYTE_TO_I16(2), WEFT_BYTE_TO_I16(3),
    WEFT_BYTE_TO_I16(4), WEFT_BYTE_TO_I16(5), WEFT_BYTE_TO_I16(6), WEFT_BYTE_TO_I16(7),
#undef WEFT_BYTE_TO_I16
};

// Q6_K: from 8 int16 scales s0..s7 in each half, lanes = s_2k x8 | s_2k+1 x8.
alignas(32) const int8_t kI16Pair[4][32] = {
#define WEFT_I16_PAIR(k)                                                                         \
  {4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1,     \
   4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3, 4 * k + 2,         \
   4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2,       \
   4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3}
    WEFT_I16_PAIR(0), WEFT_I16_PAIR(1), WEFT_I16_PAIR(2), WEFT_I16_PAIR(3),
#undef WEFT_I16_PAIR
};

#if defined(WEFT_K_QUANTS_ZMM)
// Per-half shift counts for the 16-bit shifts (lanes 0-15: lo, 16-31: hi).
__m512i halves_epi16(short lo, short hi) {
  return _mm512_inserti64x4(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi), 1);
}

// The sum of the two 256-bit halves (int32 lanes 0-7 plus 8-15): the 8 lanes AVX2's vector holds.
__m256i add_halves(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

#endif

__m256i pattern(const int8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

// ---- Q4_K / Q5_K -----------------------------------------------------------------------------
// The 12 packed scale bytes (layout in quants-k.h) as 16 bytes sc0..sc7 m0..m7.
// Lanes of 4 bytes: u = bytes 0-3, 4-7, 8-11 (the load also takes the next 4 bytes, the block's
// first codes, unused):
//   sc0-3 = u0 & 63, m0-3 = u1 & 63,
//   sc4-7 = (u2 & 15) | (u0 >> 6 & 3) << 4,  m4-7 = (u2 >> 4 & 15) | (u1 >> 6 & 3) << 4.
__m128i unpack_scales(const uint8_t* q) {
  const __m128i u = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i a = _mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0));  // u0 u2 u1 u2
  const __m128i b = _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0));  // u0 u0 u1 u1
  const __m128i low6 = _mm_and_si128(a, _mm_set1_epi8(63));
  const __m128i nib = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)), _mm_set1_epi8(15));
  const __m128i top = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(b, 6), _mm_set1_epi8(3)), 4);
  const __m128i hi = _mm_or_si128(nib, top);
  return _mm_blend_epi32(low6, hi, 0b1010);
}

// The min term of one super-block as ggml forms it: 4 int32 lanes, lane k = m_2k * P_2k +
// m_2k+1 * P_2k+1, with P_j the activation sum over sub-block j (bsums_2j + bsums_2j+1).
__m128i min_lanes(__m128i scm, __m128i p) {
  return _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_unpackhi_epi64(scm, scm)), p);
}

// The eight P_j of an activation block.
__m128i pair_sums(const BlockQ8_K& y) {
  return _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y.bsums)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(y.bsums + 8)));
}

#if defined(WEFT_K_QUANTS_ZMM)
// Q4_K/Q5_K activation rows, repacked once per call. One 64-byte load of weight codes holds chunks
// 2k and 2k + 1, whose low nibbles are sub-blocks 4k and 4k + 2 and high nibbles 4k + 1 and 4k + 3
// (a 256-bit half each); the activations are stored in that order, with the P_j the min term
// uses. A super-block then takes two loads and shifts instead of four broadcasts and variable
// shifts, byte shuffles for its scales instead of word permutes, and no horizontal add.
// bench-kernels, interleaved with the build before, one thread: Q4_K decode from cache 32-33 ->
// 39-42 GB/s, from memory 28-30 -> 29-32, n_tok = 64 204-221 -> 239-272 GFLOP/s (two threads
// 379-435 -> 457-517); Q5_K decode from cache 28-30 -> 36-38, from memory 25-27 -> 33-35, n_tok =
// 64 158-174 -> 178-196.
struct Q8KPairs {
  int8_t qs[kQK];    // per k = 0, 1: sub-blocks 4k, 4k + 2, 4k + 1, 4k + 3 (32 bytes each)
  int16_t pairs[8];  // P_j = bsums[2j] + bsums[2j + 1]
  float d;
};
static_assert(sizeof(Q8KPairs) % 4 == 0, "repacked blocks must keep d aligned");
__m128i min_lanes(__m128i scm, const Q8KPairs& y) {
  return min_lanes(scm, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y.pairs)));
}

// n / 256 blocks: 276 bytes per 256 elements, within the 4 * n bytes matmul-tiles.h gives.
void repack_pairs(const void* src, int64_t n, uint8_t* out) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(src);
  Q8KPairs* dst = reinterpret_cast<Q8KPairs*>(out);
  static constexpr int kFrom[8] = {0, 2, 1, 3, 4, 6, 5, 7};  // the sub-block of each 32 bytes
  for (int64_t b = 0; b < n / kQK; ++b) {
    for (int v = 0; v < 8; ++v) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].qs + 32 * v), load256(x[b].qs + 32 * kFrom[v]));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[b].pairs), pair_sums(x[b]));
    dst[b].d = x[b].d;
  }
}

// vpshufb patterns (per 128-bit lane) that widen scale bytes to int16 lanes: kNibbleScale[2k] for
// the low-nibble vector (sc_4k in the low half, sc_4k+2 in the high one), [2k + 1] the high one's.
alignas(64) const int8_t kNibbleScale[4][64] = {
#define WEFT_K_LANE(j) j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1, j, -1
#define WEFT_K_SCALE(a, b) {WEFT_K_LANE(a), WEFT_K_LANE(a), WEFT_K_LANE(b), WEFT_K_LANE(b)}
    WEFT_K_SCALE(0, 2), WEFT_K_SCALE(1, 3), WEFT_K_SCALE(4, 6), WEFT_K_SCALE(5, 7),
#undef WEFT_K_SCALE
#undef WEFT_K_LANE
};

// The sums of the AVX2 build's qk_min_sums (the #else branch), over the repacked activations.
// Q5_K's fifth bit of sub-block j is bit j of each qh byte; each half's bit goes to bit 4 with a
// 16-bit shift, which moves no other byte's bit there for left shifts up to 4 and right shifts up
// to 3.
template <class Block, bool kFifthBit, int NA>
inline void qk_min_sums(const Block& x, __m128i scm, const Q8KPairs* const* a, int64_t b,
                        __m256i* sumi) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  const __m512i sc_bytes = _mm512_broadcast_i32x4(scm);
  __m512i acc[NA];
  for (int j = 0; j < NA; ++j) acc[j] = _mm512_setzero_si512();
  __m512i hb = _mm512_setzero_si512();
  if constexpr (kFifthBit) hb = _mm512_broadcast_i64x4(load256(x.qh));
  for (int k = 0; k < 2; ++k) {
    const __m512i codes = _mm512_loadu_si512(x.qs + 64 * k);
    __m512i q[2] = {_mm512_and_si512(codes, m4), _mm512_and_si512(_mm512_srli_epi16(codes, 4), m4)};
    if constexpr (kFifthBit) {  // bits 4k, 4k + 2 (low nibbles) and 4k + 1, 4k + 3 (high)
      const __m512i top[2] = {
          k == 0 ? _mm512_sllv_epi16(hb, halves_epi16(4, 2)) : _mm512_srlv_epi16(hb, halves_epi16(0, 2)),
          k == 0 ? _mm512_sllv_epi16(hb, halves_epi16(3, 1)) : _mm512_srlv_epi16(hb, halves_epi16(1, 3))};
      for (int h = 0; h < 2; ++h) q[h] = _mm512_or_si512(q[h], _mm512_and_si512(top[h], bit4));
    }
    for (int h = 0; h < 2; ++h) {
      const __m512i sc = _mm512_shuffle_epi8(sc_bytes, _mm512_load_si512(kNibbleScale[2 * k + h]));
      for (int j = 0; j < NA; ++j) {
        const __m512i qa = _mm512_loadu_si512(a[j][b].qs + 128 * k + 64 * h);
        acc[j] = _mm512_dpwssd_epi32(acc[j], sc, _mm512_maddubs_epi16(q[h], qa));
        keep_in_register(acc[j]);
      }
    }
  }
  for (int j = 0; j < NA; ++j) sumi[j] = add_halves(acc[j]);
}
using KAct = Q8KPairs;
#else
__m128i min_lanes(__m128i scm, const BlockQ8_K& y) {
  return min_lanes(scm, pair_sums(y));
}

// sum over the super-block of sc_j * q_w * q_a: 8 int32 lanes, lane L of each 32-weight
// sub-block holding its weights 4L..4L+3. kFifthBit: Q5_K.
template <class Block, bool kFifthBit, int NA>
inline void qk_min_sums(const Block& x, __m128i scales, const BlockQ8_K* const* a, int64_t b,
                        __m256i* sumi) {
  const __m256i scm = _mm256_broadcastsi128_si256(scales);  // in both 128-bit lanes for pshufb
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  for (int j = 0; j < NA; ++j) sumi[j] = _mm256_setzero_si256();
  __m256i hb = _mm256_setzero_si256();
  if constexpr (kFifthBit) hb = load256(x.qh);
  for (int i = 0; i < 4; ++i) {  // sub-blocks 2i (low nibbles) and 2i + 1 (high nibbles)
    const __m256i q = load256(x.qs + 32 * i);
    __m256i lo = _mm256_and_si256(q, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    if constexpr (kFifthBit) {
      // hb holds qh >> 2i; its bits 0 and 1 (of every byte) are the fifth bits; move them to 4.
      lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
      hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
      hb = _mm256_srli_epi16(hb, 2);
    }
    const __m256i sc_lo = _mm256_shuffle_epi8(scm, pattern(kByteToI16[2 * i]));
    const __m256i sc_hi = _mm256_shuffle_epi8(scm, pattern(kByteToI16[2 * i + 1]));
    for (int j = 0; j < NA; ++j) {
      const int8_t* qa = a[j][b].qs + 64 * i;
      const __m256i p_lo = _mm256_madd_epi16(sc_lo, _mm256_maddubs_epi16(lo, load256(qa)));
      const __m256i p_hi = _mm256_madd_epi16(sc_hi, _mm256_maddubs_epi16(hi, load256(qa + 32)));
      sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p_lo, p_hi));
      keep_in_register(sumi[j]);
    }
  }
}
using KAct = BlockQ8_K;
#endif

// ggml's x86 Q4_K dot keeps the min term in its own 4-lane accumulator, added at the very end.
struct Q4K {
  using Block = BlockQ4_K;
  using Act = KAct;
  static constexpr bool kPrefetchAsRead = true;  // decode's prefetching (see matmul)
  struct Acc {
    __m256 sum;
    __m128 mins;
  };
  static Acc zero() { return {_mm256_setzero_ps(), _mm_setzero_ps()}; }
  template <int NA>
  static void superblock(const Block& x, const Act* const* a, int64_t b, Acc* acc) {
    const __m128i scm = unpack_scales(x.scales);
    __m256i sumi[NA];
    qk_min_sums<Block, false, NA>(x, scm, a, b, sumi);
    const float dw = fp16(x.d), dminw = fp16(x.dmin);
    for (int j = 0; j < NA; ++j) {
      const Act& y = a[j][b];
      acc[j].sum = _mm256_fmadd_ps(_mm256_set1_ps(y.d * dw), _mm256_cvtepi32_ps(sumi[j]), acc[j].sum);
      acc[j].mins = _mm_fmadd_ps(_mm_set1_ps(-y.d * dminw), _mm_cvtepi32_ps(min_lanes(scm, y)), acc[j].mins);
    }
  }
  static float finish(const Acc& acc) {
    __m128 m = _mm_add_ps(acc.mins, _mm_movehl_ps(acc.mins, acc.mins));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return hsum(acc.sum) + _mm_cvtss_f32(m);
  }
};

// ggml's x86 Q5_K dot sums the min term to one integer per super-block and accumulates it in a
// scalar (see the top of the file for the fma).
struct Q5K {
  using Block = BlockQ5_K;
  using Act = KAct;
  static constexpr bool kPrefetchAsRead = true;
  struct Acc {
    __m256 sum;
    float mins;
  };
  static Acc zero() { return {_mm256_setzero_ps(), 0.0f}; }
  template <int NA>
  static void superblock(const Block& x, const Act* const* a, int64_t b, Acc* acc) {
    const __m128i scm = unpack_scales(x.scales);
    __m256i sumi[NA];
    qk_min_sums<Block, true, NA>(x, scm, a, b, sumi);
    const float dw = fp16(x.d), dminw = fp16(x.dmin);
    for (int j = 0; j < NA; ++j) {
      const Act& y = a[j][b];
      acc[j].sum = _mm256_fmadd_ps(_mm256_set1_ps(y.d * dw), _mm256_cvtepi32_ps(sumi[j]), acc[j].sum);
      __m128i m = min_lanes(scm, y);
      m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
      m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 1));
      acc[j].mins = __builtin_fmaf(-y.d * dminw, static_cast<float>(_mm_cvtsi128_si32(m)), acc[j].mins);
    }
  }
  static float finish(const Acc& acc) { return hsum(acc.sum) + acc.mins; }
};

// ---- Q6_K ----------------------------------------------------------------------------------
// Weights are used as stored, q in [0, 63], and the -32 offset is taken off each int16 pair sum,
// as ggml does: (q - 32) . a = q . a - 32 a. The 32 a pair sums depend on the activations alone,
// so activation rows are repacked once per call with them alongside.
struct Q8KForQ6 {
  int8_t qs[kQK];
  int16_t qs32[kQK / 2];  // 32 * (qs[2k] + qs[2k + 1])
  float d;
};
static_assert(sizeof(Q8KForQ6) % 4 == 0, "repacked blocks must keep d aligned");

// n / 256 blocks: 516 bytes per 256 elements, within the 4 * n bytes matmul-tiles.h gives.
void repack_for_q6(const void* src, int64_t n, uint8_t* out) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(src);
  Q8KForQ6* dst = reinterpret_cast<Q8KForQ6*>(out);
  const __m256i m32 = _mm256_set1_epi8(32);
  for (int64_t b = 0; b < n / kQK; ++b) {
    for (int v = 0; v < kQK / 32; ++v) {
      const __m256i q = load256(x[b].qs + 32 * v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].qs + 32 * v), q);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].qs32 + 16 * v), _mm256_maddubs_epi16(m32, q));
    }
    dst[b].d = x[b].d;
  }
}

struct Q6K {
  using Block = BlockQ6_K;
  using Act = Q8KForQ6;
  static constexpr bool kPrefetchAsRead = false;
  struct Acc {
    __m256 sum;
  };
  static Acc zero() { return {_mm256_setzero_ps()}; }
  template <int NA>
  static void superblock(const Block& x, const Act* const* a, int64_t b, Acc* acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
    const __m256i sc_halves[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00),
                                  _mm256_permute2x128_si256(sc16, sc16, 0x11)};
    __m256i sumi[NA];
#if defined(WEFT_K_QUANTS_ZMM)
    // Vectors v and v + 1 (c, c + 1 below) in the two halves of one zmm.
    const __m512i m4z = _mm512_set1_epi8(0x0f);
    const __m512i m30z = _mm512_set1_epi8(0x30);
    const __m512i sc16z = _mm512_castsi256_si512(sc16);
    __m512i accz[NA];
    for (int j = 0; j < NA; ++j) accz[j] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(x.ql + 64 * h);  // ql0 | ql1
      const __m512i qh = _mm512_broadcast_i64x4(load256(x.qh + 32 * h));
      const __m512i q[2] = {
          _mm512_or_si512(_mm512_and_si512(ql, m4z),
                          _mm512_and_si512(_mm512_sllv_epi16(qh, halves_epi16(4, 2)), m30z)),
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4z),
                          _mm512_and_si512(_mm512_srlv_epi16(qh, halves_epi16(0, 2)), m30z)),
      };
      for (int c = 0; c < 2; ++c) {
        const int v = 4 * h + 2 * c;
        // int16 lanes 8k..8k+7 take scale 2v + k (k < 4): a scale per 16 weights.
        const __m512i idx = _mm512_add_epi16(_mm512_set1_epi16(static_cast<short>(2 * v)),
                                             _mm512_srli_epi16(_mm512_set_epi16(
                                                 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                                 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 3));
        const __m512i sc = _mm512_permutexvar_epi16(idx, sc16z);
        for (int j = 0; j < NA; ++j) {
          const Act& y = a[j][b];
          const __m512i p = _mm512_sub_epi16(_mm512_maddubs_epi16(q[c], _mm512_loadu_si512(y.qs + 32 * v)),
                                             _mm512_loadu_si512(y.qs32 + 16 * v));
          accz[j] = _mm512_dpwssd_epi32(accz[j], sc, p);
          keep_in_register(accz[j]);
        }
      }
    }
    for (int j = 0; j < NA; ++j) sumi[j] = add_halves(accz[j]);
#else
    for (int j = 0; j < NA; ++j) sumi[j] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {  // 128 weights each
      const __m256i ql0 = load256(x.ql + 64 * h);
      const __m256i ql1 = load256(x.ql + 64 * h + 32);
      const __m256i qh = load256(x.qh + 32 * h);
      // Weights 32c..32c+32 of the half: nibble from ql0/ql1, bits 2c..2c+1 of qh moved to 4..5.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
      };
      for (int c = 0; c < 4; ++c) {
        const int v = 4 * h + c;  // 32-weight vector of the super-block
        const __m256i sc = _mm256_shuffle_epi8(sc_halves[h], pattern(kI16Pair[c]));
        for (int j = 0; j < NA; ++j) {
          const Act& y = a[j][b];
          const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[c], load256(y.qs + 32 * v)),
                                             load256(y.qs32 + 16 * v));
          sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(sc, p));
          keep_in_register(sumi[j]);
        }
      }
    }
#endif
    const float dw = fp16(x.d);
    for (int j = 0; j < NA; ++j) {
      acc[j].sum = _mm256_fmadd_ps(_mm256_set1_ps(a[j][b].d * dw), _mm256_cvtepi32_ps(sumi[j]), acc[j].sum);
    }
  }
  static float finish(const Acc& acc) { return hsum(acc.sum); }
};

// out[i * NA + j] = dot(w[i], a[j]) over n / 256 super-blocks. PF (decode's one-row GEMV): ask
// for the lines kPrefetchBytes ahead of each super-block as the loop reaches it (prefetch_line in
// avx2-common.h); a line that straddles two super-blocks is asked for with the second.
template <class K, int NW, int NA, bool PF = false>
inline void dot_tile(int64_t n, const typename K::Block* const* w, const typename K::Act* const* a,
                     float* out) {
  static_assert(!PF || NW == 1, "prefetching follows one weight row");
  typename K::Acc acc[NW][NA];
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) acc[i][j] = K::zero();
  }
  for (int64_t b = 0; b < n / kQK; ++b) {
    if (PF) {
      const char* p = reinterpret_cast<const char*>(w[0] + b) + kPrefetchBytes;
      for (size_t off = 0; off < sizeof(typename K::Block); off += 64) prefetch_line(p + off);
    }
    for (int i = 0; i < NW; ++i) K::template superblock<NA>(w[i][b], a, b, acc[i]);
  }
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) out[i * NA + j] = K::finish(acc[i][j]);
  }
}

// K's tile kernel as matmul-tiles.h's tile policy (one weight row per prefill tile).
template <class K>
struct Tiles {
  using WT = typename K::Block;
  using AT = typename K::Act;
  static constexpr int kTileRows = 1;
  template <int NW, int NA, bool PF = false>
  static void run(int64_t n, const WT* const* w, const AT* const* a, float* out) {
    dot_tile<K, NW, NA, PF>(n, w, a, out);
  }
};

// Q8_K activation rows reach Q6_K repacked, and Q4_K/Q5_K as they are (AVX2) or repacked (AVX-512).
using ActForQ6 = ActRepacked<repack_for_q6>;
#if defined(WEFT_K_QUANTS_ZMM)
using ActForQ45 = ActRepacked<repack_pairs>;
#else
using ActForQ45 = ActAsIs;
#endif

// Decode (n_tok = 1) takes the weight rows one at a time, one sequential stream, asking for the
// lines kPrefetchBytes further on (avx2-common.h) as the other GEMVs do: on SmolLM2's ffn_down
// (rows of 1,536) Q4_K read 21.0 vs 17.0 GB/s from memory on 2 threads and Q6_K 15.1 vs 11.6 on
// 1 (bench-kernels, best of 5 interleaved runs) with one burst per row before it. Q4_K and Q5_K
// ask as the dot reaches each super-block instead (kPrefetchAsRead): Qwen2.5's 4,864-wide
// ffn_down rows then read 15-16 vs 11-12 GB/s (Q4_K) and 26 vs 18-20 (Q5_K, 2 threads), SmolLM2's
// the same; Q6_K read its short rows 15-25% slower that way, so it keeps the burst.
template <class K, class A>
void gemv_k(int64_t n, const char* w, size_t w_row_bytes, const char* act, float* y,
            int64_t r_begin, int64_t r_end) {
  float* buf = A::kScratch ? scratch_floats(static_cast<size_t>(n)) : nullptr;
  const typename K::Act* a = static_cast<const typename K::Act*>(A::row(act, n, buf));
  if constexpr (K::kPrefetchAsRead) {
    tile_rows<Tiles<K>, 1, 1, true>(n, w, w_row_bytes, &a, y, 0, r_begin, r_end);
  } else {
    const int64_t row_bytes = static_cast<int64_t>(w_row_bytes);
    const char* end = w + r_end * row_bytes;  // prefetch only what is read
    for (int64_t r = r_begin; r < r_end; ++r) {
      prefetch_ahead(w + r * row_bytes + kPrefetchBytes, w + (r + 1) * row_bytes + kPrefetchBytes, end);
      tile_rows<Tiles<K>, 1, 1>(n, w, w_row_bytes, &a, y, 0, r, r + 1);
    }
  }
}

// Several activation rows go through matmul-tiles.h's chunked tiles (each super-block unpacked
// feeds up to kTile activation rows while its chunk stays in L2).
template <class K, class A>
void matmul_k(int64_t n, const void* w, size_t w_row_bytes, const void* act, size_t act_row_bytes,
              int n_tok, float* y, int64_t y_stride, int64_t r_begin, int64_t r_end) {
  const char* wb = static_cast<const char*>(w);
  const char* ab = static_cast<const char*>(act);
  if (n_tok == 1 || w_row_bytes == 0) {  // (n = 0: every output is an empty sum)
    for (int i = 0; i < n_tok; ++i) {
      gemv_k<K, A>(n, wb, w_row_bytes, ab + i * act_row_bytes, y + i * y_stride, r_begin, r_end);
    }
    return;
  }
  tiled<Tiles<K>, A>(n, wb, w_row_bytes, ab, act_row_bytes, n_tok, y, y_stride, r_begin, r_end);
}

// ---- Q8_K activation quantizer ----------------------------------------------------------------
// Bit for bit the reference (ggml's quantize_row_q8_K_ref): the first element of largest
// magnitude sets iscale = -127 / x, q = round-half-even(clamp(x * iscale, -127, 127)),
// d = 1 / iscale, plus the 16 group sums.
void quantize_q8_k(const float* src, void* dst, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 hi = _mm256_set1_ps(127.0f);
  const __m256 lo = _mm256_set1_ps(-127.0f);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* x = src + b * kQK;
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < kQK; k += 8) {
      m = _mm256_max_ps(_mm256_andnot_ps(sign_bit, _mm256_loadu_ps(x + k)), m);  // NaN: keeps m
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    // The first element whose magnitude is amax (one exists: amax is one of the |x|).
    int first = 0;
    for (int k = 0; k < kQK; k += 8) {
      const __m256 eq = _mm256_cmp_ps(_mm256_andnot_ps(sign_bit, _mm256_loadu_ps(x + k)),
                                      _mm256_set1_ps(amax), _CMP_EQ_OQ);
      const int mask = _mm256_movemask_ps(eq);
      if (mask != 0) {
        first = k + __builtin_ctz(static_cast<unsigned>(mask));
        break;
      }
    }
    const float iscale = -127.0f / x[first];
    const __m256 vs = _mm256_set1_ps(iscale);
    for (int k = 0; k < kQK; k += 32) {
      __m256i q[4];
      for (int t = 0; t < 4; ++t) {
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * t), vs);
        s = _mm256_max_ps(_mm256_min_ps(s, hi), lo);  // min(NaN, 127) = 127, as std::fmin
        q[t] = _mm256_cvtps_epi32(_mm256_round_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
      // Group sums of 16: lanes of q[0] + q[1] and of q[2] + q[3], summed horizontally.
      for (int g = 0; g < 2; ++g) {
        const __m256i s8 = _mm256_add_epi32(q[2 * g], q[2 * g + 1]);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        y[b].bsums[k / 16 + g] = static_cast<int16_t>(_mm_cvtsi128_si32(s4));
      }
      // Narrow 4 x 8 int32 to 32 int8: the packs interleave 128-bit lanes, the permute undoes it.
      const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
      const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
      const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b),
                                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + k), q8);
    }
    y[b].d = 1.0f / iscale;
  }
}

}  // namespace

#if defined(WEFT_K_QUANTS_ZMM)
// Only the dots: the Q8_K quantizer stays the AVX2 build's.
void install_k_quants_avx512(Backend& b) {
#else
void install_k_quants_avx2(Backend& b) {
  b.types[static_cast<uint32_t>(GgmlType::Q8_K)].quantize = quantize_q8_k;
#endif
  TypeKernels& q4 = b.types[static_cast<uint32_t>(GgmlType::Q4_K)];
  q4.vec_dot = vec_dot_row<Tiles<Q4K>, ActForQ45>;
  q4.matmul = matmul_k<Q4K, ActForQ45>;
  TypeKernels& q5 = b.types[static_cast<uint32_t>(GgmlType::Q5_K)];
  q5.vec_dot = vec_dot_row<Tiles<Q5K>, ActForQ45>;
  q5.matmul = matmul_k<Q5K, ActForQ45>;
  TypeKernels& q6 = b.types[static_cast<uint32_t>(GgmlType::Q6_K)];
  q6.vec_dot = vec_dot_row<Tiles<Q6K>, ActForQ6>;
  q6.matmul = matmul_k<Q6K, ActForQ6>;
}

}  // namespace weft::cpu::detail

#endif  // __AVX2__ && __FMA__ && __F16C__ (and AVX-512 F/BW/VL/VNNI for WEFT_K_QUANTS_ZMM)
