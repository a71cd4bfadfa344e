// AVX-512 (F, BW, VL, VNNI) kernels. This file alone is compiled with those flags; kernels.cc
// installs them over a copy of the AVX2 backend only after checking the CPU.
//
// Each kernel here is kernels-avx2.cc's arithmetic, so the outputs are bit-identical to the AVX2
// backend's (test-kernels checks it) and everything said there about batch invariance holds
// unchanged. A zmm register holds both of AVX2's accumulators, acc0 in its low 8 lanes and acc1
// in its high 8, so one instruction does what two did:
//   - float types: acc0/acc1 take alternate 8-element chunks, so one 16-element load is exactly
//     [chunk for acc0 | chunk for acc1] and one fma per lane does both; a leftover chunk updates
//     the low lanes only; the end is hsum(low + high) and the n % 8 tail, as in AVX2. With 32
//     registers, prefill tiles are 4 weight rows x 4 activation rows in one pass (AVX2: 3 x 4 in
//     two passes, one per accumulator);
//   - Q8_0: the integer part: AVX2 forms each int32 lane as the exact sum of 4 int8 products
//     (maddubs into int16 pairs, which never saturate for these operands, then madd); vpdpbusd
//     forms the same 4-product sums in one step, also exactly, from activations offset by 128
//     (q8_0_repack_pairs says how). The float part: per lane
//     fma(d_w * d_a, float(sum), acc), as in AVX2, for two blocks (even in acc0, odd in acc1) at
//     once; a row's leftover odd block updates the low lanes only; the end is hsum(low + high).
// Measured on a 2-vCPU AMD EPYC (Zen 5) VM: see native/tests/bench-kernels.cc and the issue note.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include "avx2-common.h"
#include "kernels-impl.h"
#include "matmul-tiles.h"

namespace weft::cpu::detail {
namespace {

// ---- float types ------------------------------------------------------------------------------
// Element loaders: 16 elements as [e0..e7 | e8..e15] in one zmm; 8 (into the low half) and 1 as
// AVX2's loaders (avx2-common.h) read them.
struct ZF32 {
  using T = float;
  using Ld8 = LdF32;  // AVX2's loader of the same rows
  static __m512 load16(const float* row, int64_t e) { return _mm512_loadu_ps(row + e); }
  static __m512 load8(const float* row, int64_t e) { return _mm512_castps256_ps512(LdF32::load8(row, e)); }
  static float load1(const float* row, int64_t e) { return LdF32::load1(row, e); }
};

struct ZF16 {
  using T = uint16_t;
  using Ld8 = LdF16;
  static __m512 load16(const uint16_t* row, int64_t e) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + e)));
  }
  static __m512 load8(const uint16_t* row, int64_t e) { return _mm512_castps256_ps512(LdF16::load8(row, e)); }
  static float load1(const uint16_t* row, int64_t e) { return LdF16::load1(row, e); }
};

struct ZBF16 {
  using T = uint16_t;
  static __m512 load16(const uint16_t* row, int64_t e) {
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + e)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
  static __m512 load8(const uint16_t* row, int64_t e) { return _mm512_castps256_ps512(LdBF16::load8(row, e)); }
  static float load1(const uint16_t* row, int64_t e) { return LdBF16::load1(row, e); }
};

// Q8_0 rows: d * q as AVX2's LdQ8_0 forms it (e % 16 == 0 for load16: 16 values of one block).
struct ZQ8_0 {
  using T = BlockQ8_0;
  using Ld8 = LdQ8_0;
  static __m512 load16(const BlockQ8_0* row, int64_t e) {
    const BlockQ8_0& b = row[e / 32];
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + e % 32));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(b.d))));
  }
  static __m512 load8(const BlockQ8_0* row, int64_t e) { return _mm512_castps256_ps512(LdQ8_0::load8(row, e)); }
  static float load1(const BlockQ8_0* row, int64_t e) { return LdQ8_0::load1(row, e); }
};

// out[i * NA + j] = dot(w[i][0..n), a[j][0..n)) in AVX2's order (top of file). PF: decode's
// one-row GEMV asks for the line kPrefetchBytes ahead of each 64 bytes of weights, as AVX2's does.
// Keep: each loaded weight row stays in a register (keep_in_register), for attention's scores.
template <class W, class A, int NW, int NA, bool PF = false, bool Keep = false>
inline void dot_tile_float(int64_t n, const typename W::T* const* w, const typename A::T* const* a,
                           float* out) {
  constexpr int64_t kLineElems = 64 / sizeof(typename W::T);
  __m512 acc[NW][NA];
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    if (PF && k % kLineElems == 0) {
      for (int i = 0; i < NW; ++i) prefetch_line(reinterpret_cast<const char*>(w[i] + k) + kPrefetchBytes);
    }
    for (int i = 0; i < NW; ++i) {
      __m512 wv = W::load16(w[i], k);
      if (Keep) keep_in_register(wv);
      for (int j = 0; j < NA; ++j) acc[i][j] = _mm512_fmadd_ps(wv, A::load16(a[j], k), acc[i][j]);
    }
  }
  if (k + 8 <= n) {  // the leftover chunk: acc0's, the low lanes
    for (int i = 0; i < NW; ++i) {
      const __m512 wv = W::load8(w[i], k);
      for (int j = 0; j < NA; ++j) acc[i][j] = _mm512_mask3_fmadd_ps(wv, A::load8(a[j], k), acc[i][j], 0x00FF);
    }
    k += 8;
  }
  __m256 sum[NW * NA];
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) {
      const __m512 v = acc[i][j];
      sum[i * NA + j] = _mm256_add_ps(_mm512_castps512_ps256(v),
                                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    }
  }
  if constexpr (NW * NA == 1) out[0] = hsum(sum[0]);  // (hsum_n would pad a group of eight)
  else hsum_n<NW * NA>(sum, out);
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) {
      float& s = out[i * NA + j];
      for (int64_t e = k; e < n; ++e) s = __builtin_fmaf(W::load1(w[i], e), A::load1(a[j], e), s);
    }
  }
}

template <class W, class A>
struct FloatKernel {
  using WT = typename W::T;
  using AT = typename A::T;
  static constexpr int kTileRows = 4;  // 16 accumulators + 4 weight vectors of 32 registers
  static constexpr bool kFarPairs = true;  // matmul-tiles.h's gemv
  template <int NW, int NA, bool PF = false>
  static void run(int64_t n, const WT* const* w, const AT* const* a, float* out) {
    dot_tile_float<W, A, NW, NA, PF>(n, w, a, out);
  }
};

// F16/BF16 activation rows widened for the tiles, as kernels-avx2.cc widens them (exactly).
template <class W>
void widen_row(const void* src, float* dst, int64_t n) {
  const typename W::T* x = static_cast<const typename W::T*>(src);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, W::load16(x, i));
  for (; i < n; ++i) dst[i] = W::load1(x, i);
}

// ---- Q8_0 ----------------------------------------------------------------------------------------
// An activation row repacked for these kernels, nb = n / 32 blocks:
//   [nb x 32 quants + 128, as u8][(nb + 1) / 2 x 16 f32 scales]
// where scale vector p is [d of block 2p] x 8 then [d of block 2p + 1] x 8 (0 past the last
// block): the two blocks' quants are one 64-byte load and their scales one zmm load, in exactly
// the lanes the products land in. 64 * nb + 32 bytes, within the 4 * n given as scratch.
// The quants go in offset by 128 (q ^ 0x80 as a byte) because vpdpbusd multiplies unsigned by
// signed bytes: sum (a + 128) w = sum a w + 128 sum w, and each weight pair brings its
// -128 sum w per lane as the accumulator vpdpbusd starts from, so the int32 lanes come out as
// the exact sums AVX2 forms. Moving each weight's sign onto the activation instead (as AVX2
// does) took an instruction per weight and activation row, and tied each activation vector to
// one weight row; offset, one activation load serves a tile of 4 weight rows.
void q8_0_repack_pairs(const void* src, int64_t n, uint8_t* dst) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  const int64_t nb = n / 32;
  float* d = reinterpret_cast<float*>(dst + nb * 32);
  const __m256i offset = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + b * 32), _mm256_xor_si256(q, offset));
    _mm256_storeu_ps(d + b * 8, _mm256_set1_ps(_cvtsh_ss(x[b].d)));
  }
  if (nb % 2 != 0) _mm256_storeu_ps(d + nb * 8, _mm256_setzero_ps());
}

// Two weight blocks (or one, the high half then zero): the quants, -128 times each lane's four
// quants summed (what the activations' offset adds), and d widened to the 8 lanes of each block.
struct WeightPair {
  __m512i q;
  __m512i start;
  __m512 d;
};

inline WeightPair weight_pair(const BlockQ8_0* wb, bool both) {
  const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[0].qs));
  const __m256i q1 =
      both ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[1].qs)) : _mm256_setzero_si256();
  const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
  const __m128i d0 = _mm_set1_epi16(static_cast<short>(wb[0].d));
  const __m128i d1 = both ? _mm_set1_epi16(static_cast<short>(wb[1].d)) : _mm_setzero_si128();
  const __m512i zero = _mm512_setzero_si512();
  const __m512i offset_sums = _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(static_cast<char>(0x80)), q);
  return {q, _mm512_sub_epi32(zero, offset_sums),
          _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(d0), d1, 1))};
}

// One weight pair against pair p of NA repacked activation rows: per lane the exact int32 sum
// of 4 products (|sum| < 2^17), then fma(d_w * d_a, float(sum), acc) as in AVX2.
// lanes: 0xFFFF for a pair, 0x00FF for a row's leftover block (whose high lanes' weights are 0).
template <int NA>
inline void q8_0_pair(const WeightPair& w, const uint8_t* const* a, int64_t nb, int64_t p,
                      __mmask16 lanes, __m512* acc) {
  for (int j = 0; j < NA; ++j) {
    const uint8_t* qa = a[j] + p * 64;
    const __m512i q = lanes == 0xFFFF
                          ? _mm512_loadu_si512(qa)
                          : _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa)));
    const __m512 sums = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(w.start, q, w.q));
    const __m512 da = _mm512_loadu_ps(reinterpret_cast<const float*>(a[j] + nb * 32) + p * 16);
    acc[j] = _mm512_mask3_fmadd_ps(_mm512_mul_ps(w.d, da), sums, acc[j], lanes);
  }
}

inline float hsum_halves(__m512 v) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), hi));
}

// out[i * NA + j] = dot(w[i], a[j]) over n / 32 blocks; a[j] repacked as above. PF: one request
// kPrefetchBytes ahead per pair of blocks, as the AVX2 kernel asks.
template <int NW, int NA, bool PF = false>
inline void dot_tile_q8_0(int64_t n, const BlockQ8_0* const* w, const uint8_t* const* a,
                          float* out) {
  static_assert(!PF || NW == 1, "prefetching follows one weight row");
  const int64_t nb = n / 32;
  __m512 acc[NW][NA];
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    if (PF) prefetch_line(reinterpret_cast<const char*>(w[0] + b) + kPrefetchBytes);
    for (int i = 0; i < NW; ++i) q8_0_pair<NA>(weight_pair(w[i] + b, true), a, nb, b / 2, 0xFFFF, acc[i]);
  }
  if (b < nb) {
    for (int i = 0; i < NW; ++i) q8_0_pair<NA>(weight_pair(w[i] + b, false), a, nb, b / 2, 0x00FF, acc[i]);
  }
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) out[i * NA + j] = hsum_halves(acc[i][j]);
  }
}

// Prefill tiles of 4 weight rows x 4 activation rows (16 accumulators): against one row at a
// time, bench-kernels at n_tok = 64 (one thread) 161-201 -> 186-249 GFLOP/s, pp512 SmolLM2
// Q8_0 1259-1280 -> 1482-1709 tok/s and Qwen2.5 Q8_0 420-437 -> 600-612 (quick runs, two
// each); decode steps unchanged (in-process A/B 0.98-1.05x: the GEMV waits on memory).
struct Q8_0Kernel {
  using WT = BlockQ8_0;
  using AT = uint8_t;
  static constexpr int kTileRows = 4;
  static constexpr bool kFarPairs = false;
  template <int NW, int NA, bool PF = false>
  static void run(int64_t n, const BlockQ8_0* const* w, const uint8_t* const* a, float* out) {
    dot_tile_q8_0<NW, NA, PF>(n, w, a, out);
  }
};

// ---- attention -----------------------------------------------------------------------------
// (SmolLM2 Q8_0 decode, 2 threads: the attention phase of 16 forks over a 512-token prompt took
// 4.8 ms a step against AVX2's 5.2-5.3, one sequence at 1,024 positions 0.78 against 0.80-0.83.)
// Scores: each is AVX2's, a one-row dot_tile's arithmetic, so a tile of NK K rows against NQ query
// rows is the float matmul's dot_tile_float with the K rows as its weight rows (each K load feeds
// NQ fmas, kept in a register: f32 K rows, head size 64, hot, ns a position for 2 / 3 / 4 / 6 /
// 7 / 8 query rows 5.2 / 6.9 / 6.3 / 11.5 / 13.3 / 11.3 -> 4.4 / 5.3 / 5.9 / 10.5 / 11.1 / 11.3;
// AVX2's 3.5 / 5.8 / 6.7 / 8.9 / 10.9 / 12.1), its outputs stored query-row-major.
template <class K, int NQ, int NK>
void scores_tile(int64_t n, const float* const* q, const typename K::T* k, int64_t k_stride,
                 float* s, int64_t s_stride) {
  const typename K::T* rows[NK];
  for (int i = 0; i < NK; ++i) rows[i] = k + i * k_stride;
  float out[NK * NQ];
  dot_tile_float<K, ZF32, NK, NQ, false, true>(n, rows, q, out);
  for (int r = 0; r < NQ; ++r) {
    for (int i = 0; i < NK; ++i) s[r * s_stride + i] = out[i * NQ + r];
  }
}

// Scores of NQ query rows: tiles of four K rows, then one at a time.
template <class K, int NQ>
void scores_rows(int64_t n, const float* const* q, const typename K::T* k, int64_t k_stride,
                 int n_pos, float* s, int64_t s_stride, bool ahead) {
  int j = 0;
  for (; j + 4 <= n_pos; j += 4) {
    if (ahead && j % kAttnBlock == 0) prefetch_rows(k, k_stride, j + kAttnAhead, kAttnBlock, n);
    scores_tile<K, NQ, 4>(n, q, k + j * k_stride, k_stride, s + j, s_stride);
  }
  for (; j < n_pos; ++j) scores_tile<K, NQ, 1>(n, q, k + j * k_stride, k_stride, s + j, s_stride);
}

// Up to four query rows at a time over all the positions; where the rows are few (a decode
// step's GQA group), the first four ask ahead (avx2-common.h).
template <class K>
void attn_scores(int64_t n, const float* const* q, int n_q, const typename K::T* k,
                 int64_t k_stride, int n_pos, float* s, int64_t s_stride) {
  const bool ahead = n_q <= kAttnBlockRows;
  by_fours(n_q, [&](int r, auto nq) {
    scores_rows<K, decltype(nq)::value>(n, q + r, k, k_stride, n_pos, s + r * s_stride, s_stride, ahead && r == 0);
  });
}

// Values: per output element o = fma(p_j, v_j, o) in j order, as AVX2's values_rows (lanes are
// independent, so their width does not change a bit): W zmm registers (16 W elements) of each of
// NQ <= 4 rows stay in registers across all the positions, from element e on. With `ahead`, it
// asks ahead (avx2-common.h).
template <class V, int NQ, int W>
void values_span(int64_t n, int64_t e, const float* p, int64_t p_stride, const typename V::T* v,
                 int64_t v_stride, int n_pos, float* const* o, bool ahead) {
  float* out[NQ];
  __m512 acc[NQ][W];
  for (int r = 0; r < NQ; ++r) {
    out[r] = o[r] + e;
    for (int w = 0; w < W; ++w) acc[r][w] = _mm512_loadu_ps(out[r] + 16 * w);
  }
  for (int j = 0; j < n_pos; ++j) {
    if (ahead && j % kAttnBlock == 0) prefetch_rows(v, v_stride, j + kAttnAhead, kAttnBlock, n);
    const typename V::T* vj = v + j * v_stride;
    __m512 vv[W];
    for (int w = 0; w < W; ++w) {
      vv[w] = V::load16(vj, e + 16 * w);
      keep_in_register(vv[w]);  // one load per position, not one per query row
    }
    for (int r = 0; r < NQ; ++r) {
      const __m512 pr = _mm512_set1_ps(p[r * p_stride + j]);
      for (int w = 0; w < W; ++w) acc[r][w] = _mm512_fmadd_ps(pr, vv[w], acc[r][w]);
    }
  }
  for (int r = 0; r < NQ; ++r) {
    for (int w = 0; w < W; ++w) _mm512_storeu_ps(out[r] + 16 * w, acc[r][w]);
  }
}

// 64 elements at a time, then 16, then AVX2's 8-lane step and scalar tail; the first span reads
// the rows from memory, so only it asks ahead.
template <class V, int NQ>
void values_rows(int64_t n, const float* p, int64_t p_stride, const typename V::T* v,
                 int64_t v_stride, int n_pos, float* const* o, bool ahead) {
  int64_t e = 0;
  for (; e + 64 <= n; e += 64) values_span<V, NQ, 4>(n, e, p, p_stride, v, v_stride, n_pos, o, ahead && e == 0);
  for (; e + 16 <= n; e += 16) values_span<V, NQ, 1>(n, e, p, p_stride, v, v_stride, n_pos, o, ahead && e == 0);
  values_tail<typename V::Ld8, NQ>(n, e, p, p_stride, v, v_stride, n_pos, o);
}

// Up to four rows at a time over all the positions; where the rows are few (a decode step's GQA
// group), the first four ask ahead.
template <class V>
void attn_values(int64_t n, const float* p, int64_t p_stride, int n_q, const typename V::T* v,
                 int64_t v_stride, int n_pos, float* const* o) {
  const bool ahead = n_q <= kAttnBlockRows;
  by_fours(n_q, [&](int r, auto nq) {
    values_rows<V, decltype(nq)::value>(n, p + r * p_stride, p_stride, v, v_stride, n_pos, o + r, ahead && r == 0);
  });
}

}  // namespace

void install_avx512(Backend& b) {
  b.name = "avx512";
  using F32 = FloatKernel<ZF32, ZF32>;
  TypeKernels& f32 = b.types[static_cast<uint32_t>(GgmlType::F32)];
  f32.vec_dot = vec_dot_row<F32, ActAsIs>;
  f32.matmul = matmul<F32, ActAsIs, F32, ActAsIs>;
  TypeKernels& f16 = b.types[static_cast<uint32_t>(GgmlType::F16)];
  f16.vec_dot = vec_dot_row<FloatKernel<ZF16, ZF16>, ActAsIs>;
  f16.matmul = matmul<FloatKernel<ZF16, ZF16>, ActAsIs, FloatKernel<ZF16, ZF32>,
                      ActWidened<widen_row<ZF16>>>;
  TypeKernels& bf16 = b.types[static_cast<uint32_t>(GgmlType::BF16)];
  bf16.vec_dot = vec_dot_row<FloatKernel<ZBF16, ZBF16>, ActAsIs>;
  bf16.matmul = matmul<FloatKernel<ZBF16, ZBF16>, ActAsIs, FloatKernel<ZBF16, ZF32>,
                       ActWidened<widen_row<ZBF16>>>;

  TypeKernels& q8 = b.types[static_cast<uint32_t>(GgmlType::Q8_0)];
  q8.vec_dot = vec_dot_row<Q8_0Kernel, ActRepacked<q8_0_repack_pairs>>;
  q8.matmul = matmul<Q8_0Kernel, ActRepacked<q8_0_repack_pairs>, Q8_0Kernel,
                      ActRepacked<q8_0_repack_pairs>>;
  install_legacy_quants_avx512(b);
  install_k_quants_avx512(b);
  b.attn_scores_f32 = attn_scores<ZF32>;
  // f16 K rows keep AVX2's scores (the same bits): widening 16 halves into a zmm is dearer here
  // than two 8-wide widenings, and at head size 64 the zmm tiles' K rows feed too few fmas to
  // repay it: hot rows, 3 query rows 5.6-6.0 ns a position against AVX2's 4.8-5.3, 6 rows 10.6
  // against 8.1-8.9, 12 and 24 rows alike.
  b.attn_values_f32 = attn_values<ZF32>;
  b.attn_values_f16 = attn_values<ZF16>;
  b.attn_scores_q8_0 = q8_0_scores<attn_scores<ZQ8_0>>;
  b.attn_values_q8_0 = q8_0_values<attn_values<ZQ8_0>>;
}

}  // namespace weft::cpu::detail

#endif  // AVX-512 F/BW/VL/VNNI
