// AVX2 + FMA + F16C kernels. This file alone is compiled with -mavx2 -mfma -mf16c; kernels.cc
// calls into it only after checking the CPU. Everything here has internal linkage (or is
// install_avx2) and uses no standard-library templates: an out-of-line copy of a shared template
// compiled here could be the one the linker keeps for the rest of the program.
//
// Batch invariance: one tile kernel per weight type computes NW x NA outputs (NW weight rows
// against NA activation rows) with a separate accumulator set per output, and vec_dot is the
// same kernel with NW = NA = 1. Each output therefore sees the same operations in the same order
// whatever the tile it landed in:
//   float types: lanes acc0/acc1 take alternate 8-element chunks, a leftover chunk goes to acc0,
//                then hsum(acc0 + acc1), then the last n % 8 elements one fma at a time.
//   Q8_0:        acc0/acc1 take alternate blocks (per-lane int32 sums scaled by d_w * d_a with
//                one fma), a leftover block goes to acc0, then hsum(acc0 + acc1).
// When several activation rows share a tile, F16/BF16 rows are widened to f32 first; widening
// is exact, so the tile kernel sees the very values vec_dot (which widens on the fly) sees.
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include <algorithm>

#include "avx2-common.h"
#include "kernels-impl.h"
#include "matmul-tiles.h"

namespace weft::cpu::detail {
namespace {

// ---- float-type dots -------------------------------------------------------------------------
// out[i * NA + j] = dot(w[i][0..n), a[j][0..n)), in the order described at the top of the file.
// PF (decode's one-row GEMV): ask for the line kPrefetchBytes ahead of each 64 bytes of weights
// as the loop reaches them (avx2-common.h says why in the loop rather than per row).
template <class W, class A, int NW, int NA, bool PF = false>
inline void dot_tile(int64_t n, const typename W::T* const* w, const typename A::T* const* a,
                     float* out) {
  constexpr int64_t kLineElems = 64 / sizeof(typename W::T);
  __m256 acc0[NW][NA], acc1[NW][NA];
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) acc0[i][j] = acc1[i][j] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    if (PF && k % kLineElems == 0) {
      for (int i = 0; i < NW; ++i) prefetch_line(reinterpret_cast<const char*>(w[i] + k) + kPrefetchBytes);
    }
    for (int i = 0; i < NW; ++i) {
      const __m256 w0 = W::load8(w[i], k);
      const __m256 w1 = W::load8(w[i], k + 8);
      for (int j = 0; j < NA; ++j) {
        acc0[i][j] = _mm256_fmadd_ps(w0, A::load8(a[j], k), acc0[i][j]);
        acc1[i][j] = _mm256_fmadd_ps(w1, A::load8(a[j], k + 8), acc1[i][j]);
      }
    }
  }
  if (k + 8 <= n) {
    for (int i = 0; i < NW; ++i) {
      const __m256 w0 = W::load8(w[i], k);
      for (int j = 0; j < NA; ++j) acc0[i][j] = _mm256_fmadd_ps(w0, A::load8(a[j], k), acc0[i][j]);
    }
    k += 8;
  }
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) {
      float s = hsum(_mm256_add_ps(acc0[i][j], acc1[i][j]));
      for (int64_t e = k; e < n; ++e) s = __builtin_fmaf(W::load1(w[i], e), A::load1(a[j], e), s);
      out[i * NA + j] = s;
    }
  }
}

// The same sums for tiles too big for two accumulator sets in 16 ymm registers (prefill's
// 3 x 4): the even chunks (acc0) in one pass, then the odd ones (acc1) in a second, each pass
// one fma per weight/activation pair with the activations read straight from L1. Each
// accumulator sees the same fmas in the same order as above and hsum8 adds as hsum does, so
// the outputs are bit-identical.
template <class W, class A, int NW, int NA>
inline void dot_tile_2pass(int64_t n, const typename W::T* const* w, const typename A::T* const* a,
                           float* out) {
  __m256 sum[NW * NA];  // even chunks' sums, then plus the odd ones'
  for (int pass = 0; pass < 2; ++pass) {
    __m256 acc[NW][NA];
    for (int i = 0; i < NW; ++i) {
      for (int j = 0; j < NA; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    for (int64_t k = 8 * pass; k + 8 <= n; k += 16) {
      for (int i = 0; i < NW; ++i) {
        const __m256 wv = W::load8(w[i], k);
        for (int j = 0; j < NA; ++j) acc[i][j] = _mm256_fmadd_ps(wv, A::load8(a[j], k), acc[i][j]);
      }
    }
    for (int i = 0; i < NW; ++i) {
      for (int j = 0; j < NA; ++j) {
        __m256& s = sum[i * NA + j];
        s = pass == 0 ? acc[i][j] : _mm256_add_ps(s, acc[i][j]);
      }
    }
  }
  hsum_n<NW * NA>(sum, out);
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) {
      float& s = out[i * NA + j];
      for (int64_t e = n / 8 * 8; e < n; ++e) s = __builtin_fmaf(W::load1(w[i], e), A::load1(a[j], e), s);
    }
  }
}

// ---- Q8_0 x Q8_0 -----------------------------------------------------------------------------
// Kernels read an activation row repacked as [nb x 32 int8 quants][nb f32 scales], nb = n / 32,
// 36 * nb bytes: each scale is widened once per activation row instead of once per weight row
// it meets (exact, so the values are those of the blocks). Measured +7% decode, +14% prefill.
void q8_0_repack(const void* src, int64_t n, uint8_t* dst) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  const int64_t nb = n / 32;
  float* d = reinterpret_cast<float*>(dst + nb * 32);
  for (int64_t b = 0; b < nb; ++b) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + b * 32),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs)));
    d[b] = _cvtsh_ss(x[b].d);
  }
}

// One block of the weight row against block b of NA activation rows. The signed int8 product
// goes through maddubs (unsigned x signed), so the weight's sign moves onto the activation:
// |w| * (a * sign(w)) = w * a. Activation values are in [-127, 127] (quantize_row never writes
// -128), so the int16 pair sums (<= 2 * 128 * 127) cannot saturate.
template <int NA>
inline void q8_0_block(const BlockQ8_0& wb, const uint8_t* const* a, int64_t nb, int64_t b,
                       __m256* acc) {
  const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb.qs));
  const __m256i abs_w = _mm256_sign_epi8(qw, qw);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256 dw = _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(wb.d)));
  for (int j = 0; j < NA; ++j) {
    const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[j] + b * 32));
    const __m256i p16 = _mm256_maddubs_epi16(abs_w, _mm256_sign_epi8(qa, qw));
    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));  // 8 exact int32 sums
    const __m256 da = _mm256_broadcast_ss(reinterpret_cast<const float*>(a[j] + nb * 32) + b);
    acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da), p, acc[j]);
  }
}

// out[i * NA + j] = dot(w[i], a[j]) over n / 32 blocks; a[j] repacked as above. PF: as for
// dot_tile, one request per pair of blocks (68 bytes, so about one line in 17 is left to the
// hardware prefetcher; a second request per pair measured no different).
template <int NW, int NA, bool PF = false>
inline void dot_tile_q8_0(int64_t n, const BlockQ8_0* const* w, const uint8_t* const* a,
                          float* out) {
  static_assert(!PF || NW == 1, "prefetching follows one weight row");
  const int64_t nb = n / 32;
  __m256 acc0[NW][NA], acc1[NW][NA];
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) acc0[i][j] = acc1[i][j] = _mm256_setzero_ps();
  }
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    if (PF) prefetch_line(reinterpret_cast<const char*>(w[0] + b) + kPrefetchBytes);
    for (int i = 0; i < NW; ++i) {
      q8_0_block<NA>(w[i][b], a, nb, b, acc0[i]);
      q8_0_block<NA>(w[i][b + 1], a, nb, b + 1, acc1[i]);
    }
  }
  if (b < nb) {
    for (int i = 0; i < NW; ++i) q8_0_block<NA>(w[i][b], a, nb, b, acc0[i]);
  }
  for (int i = 0; i < NW; ++i) {
    for (int j = 0; j < NA; ++j) out[i * NA + j] = hsum(_mm256_add_ps(acc0[i][j], acc1[i][j]));
  }
}

// ---- row conversions -------------------------------------------------------------------------
void dequantize_f16(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LdF16::load8(x, i));
  for (; i < n; ++i) dst[i] = LdF16::load1(x, i);
}

void dequantize_bf16(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LdBF16::load8(x, i));
  for (; i < n; ++i) dst[i] = LdBF16::load1(x, i);
}

// q * d is exact in f32 (8-bit times 11-bit significand), so this equals the reference bitwise.
void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d));
    for (int k = 0; k < 4; ++k) {
      const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[b].qs + 8 * k));
      const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
      _mm256_storeu_ps(dst + b * 32 + 8 * k, _mm256_mul_ps(q, d));
    }
  }
}

void f32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

void quantize_f16(const float* src, void* dst, int64_t n) {
  f32_to_fp16_row(src, static_cast<uint16_t*>(dst), n);
}

// Same arithmetic as the reference (ggml's x86 activation quantizer): amax ignoring NaN,
// d = amax / 127, id = 127 / amax, q = round-half-even(clamp(x * id, -127, 127)).
void quantize_q8_0(const float* src, void* dst, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) {
    const Q8Block32 q = quantize_block32(src + b * 32);
    y[b].d = _cvtss_sh(q.d, _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), pack_q8(q.q));
  }
}

// ---- matmul ----------------------------------------------------------------------------------
// Kernel policies for matmul-tiles.h: K::run<NW, NA> computes NW weight rows x NA activation rows.
// kTileRows: weight rows per tile in prefill's tiled path. Float kernels take 3 rows x kTile
// activation rows (12 accumulators: 7 loads per 12 fmas, where 1 x 4 needs 10 per 8 and waits
// on loads).
template <class W, class A>
struct FloatKernel {
  using WT = typename W::T;
  using AT = typename A::T;
  static constexpr int kTileRows = 3;
  static constexpr bool kFarPairs = true;  // matmul-tiles.h's gemv
  template <int NW, int NA, bool PF = false>
  static void run(int64_t n, const WT* const* w, const AT* const* a, float* out) {
    if constexpr (NW * NA > 4) dot_tile_2pass<W, A, NW, NA>(n, w, a, out);
    else dot_tile<W, A, NW, NA, PF>(n, w, a, out);
  }
};

struct Q8_0Kernel {
  using WT = BlockQ8_0;
  using AT = uint8_t;
  static constexpr int kTileRows = 1;
  static constexpr bool kFarPairs = false;
  template <int NW, int NA, bool PF = false>
  static void run(int64_t n, const BlockQ8_0* const* w, const uint8_t* const* a, float* out) {
    dot_tile_q8_0<NW, NA, PF>(n, w, a, out);
  }
};

// ---- attention -------------------------------------------------------------------------------
// Scores one K row at a time (the positions left after whole tiles): the K row takes the weight
// row's place in dot_tile against NQ query rows, so every score sees exactly the operations of a
// one-row dot_tile.
template <class K, int NQ>
void scores_rows(int64_t n, const float* const* q, const typename K::T* k, int64_t k_stride,
                 int n_pos, float* s, int64_t s_stride) {
  for (int j = 0; j < n_pos; ++j) {
    const typename K::T* kj = k + j * k_stride;
    float out[NQ];
    dot_tile<K, LdF32, 1, NQ>(n, &kj, q, out);
    for (int r = 0; r < NQ; ++r) s[r * s_stride + j] = out[r];
  }
}

// NQ query rows x 8 / NQ K rows of scores, each the one-row dot_tile's sum: the even 8-element
// chunks in one pass, the odd ones in a second (as dot_tile_2pass), one hsum8 for all eight, then
// the last n % 8 elements one fma at a time. Each K chunk is loaded once per NQ queries and each
// query chunk once per 8 / NQ K rows; one row of scores at a time costs a load per fma and an
// hsum per score.
// dot_tile_2pass<K, LdF32, 8 / NQ, NQ> gives the same bits, but it reads the query chunks once
// per K row and returns the scores K-row-major: perf put it ~30 % slower than this in prefill.
template <class K, int NQ>
void scores_tile(int64_t n, const float* const* q, const typename K::T* k, int64_t k_stride,
                 float* s, int64_t s_stride) {
  constexpr int NK = 8 / NQ;
  __m256 sum[8];  // [r * NK + i]: query r against K row i
  for (int pass = 0; pass < 2; ++pass) {
    __m256 acc[8];
    for (__m256& a : acc) a = _mm256_setzero_ps();
    for (int64_t e = 8 * pass; e + 8 <= n; e += 16) {
      __m256 qv[NQ];
      for (int r = 0; r < NQ; ++r) {
        qv[r] = _mm256_loadu_ps(q[r] + e);
        keep_in_register(qv[r]);  // one load per row, not one per fma (avx2-common.h)
      }
      for (int i = 0; i < NK; ++i) {
        __m256 kv = K::load8(k + i * k_stride, e);
        keep_in_register(kv);
        for (int r = 0; r < NQ; ++r) acc[r * NK + i] = _mm256_fmadd_ps(kv, qv[r], acc[r * NK + i]);
      }
    }
    for (int t = 0; t < 8; ++t) sum[t] = pass == 0 ? acc[t] : _mm256_add_ps(sum[t], acc[t]);
  }
  __m256 out = hsum8(sum);
  if (n % 8 != 0) {
    alignas(32) float o[8];
    _mm256_store_ps(o, out);
    for (int64_t e = n / 8 * 8; e < n; ++e) {
      for (int r = 0; r < NQ; ++r) {
        for (int i = 0; i < NK; ++i) {
          float& score = o[r * NK + i];
          score = __builtin_fmaf(K::load1(k + i * k_stride, e), q[r][e], score);
        }
      }
    }
    out = _mm256_load_ps(o);
  }
  if constexpr (NQ == 1) {
    _mm256_storeu_ps(s, out);
  } else {
    _mm_storeu_ps(s, _mm256_castps256_ps128(out));
    _mm_storeu_ps(s + s_stride, _mm256_extractf128_ps(out, 1));
  }
}

// Scores of NQ query rows: whole tiles of 8 / NQ K rows, then the rest one K row at a time.
template <class K, int NQ>
void scores_by_tiles(int64_t n, const float* const* q, const typename K::T* k, int64_t k_stride,
                     int n_pos, float* s, int64_t s_stride, bool ahead) {
  constexpr int NK = 8 / NQ;
  int j = 0;
  for (; j + NK <= n_pos; j += NK) {
    if (ahead && j % kAttnBlock == 0) prefetch_rows(k, k_stride, j + kAttnAhead, kAttnBlock, n);
    scores_tile<K, NQ>(n, q, k + j * k_stride, k_stride, s + j, s_stride);
  }
  scores_rows<K, NQ>(n, q, k + j * k_stride, k_stride, n_pos - j, s + j, s_stride);
}

// Pairs of query rows, then the one left; where the rows are few (a decode step's GQA group), the
// first pass over the K rows asks ahead (avx2-common.h).
template <class K>
void attn_scores(int64_t n, const float* const* q, int n_q, const typename K::T* k,
                 int64_t k_stride, int n_pos, float* s, int64_t s_stride) {
  const bool ahead = n_q <= kAttnBlockRows;
  int r = 0;
  for (; r + 2 <= n_q; r += 2) scores_by_tiles<K, 2>(n, q + r, k, k_stride, n_pos, s + r * s_stride, s_stride, ahead && r == 0);
  if (r < n_q) scores_by_tiles<K, 1>(n, q + r, k, k_stride, n_pos, s + r * s_stride, s_stride, ahead && r == 0);
}

// Values: a span of elements of up to four output rows stays in registers across all n_pos
// positions, and each piece of a V row is loaded and widened once per four rows. Per element the
// steps are o = fma(p_j, v_j, o) in j order, then the n % 8 tail the same way in scalar fmas:
// what a one-row call does. With `ahead`, the span asks ahead (avx2-common.h).
// Elements [e, e + 8 W) of NQ rows over all the positions, W ymm accumulators a row.
template <class V, int NQ, int W>
void values_span(int64_t n, int64_t e, const float* p, int64_t p_stride, const typename V::T* v,
                 int64_t v_stride, int n_pos, float* const* o, bool ahead) {
  __m256 acc[NQ][W];
  for (int r = 0; r < NQ; ++r) {
    for (int w = 0; w < W; ++w) acc[r][w] = _mm256_loadu_ps(o[r] + e + 8 * w);
  }
  for (int j = 0; j < n_pos; ++j) {
    if (ahead && j % kAttnBlock == 0) prefetch_rows(v, v_stride, j + kAttnAhead, kAttnBlock, n);
    const typename V::T* vj = v + j * v_stride;
    __m256 vv[W];
    for (int w = 0; w < W; ++w) {
      vv[w] = V::load8(vj, e + 8 * w);
      keep_in_register(vv[w]);  // one load per position, not one per query row
    }
    for (int r = 0; r < NQ; ++r) {
      const __m256 pr = _mm256_broadcast_ss(p + r * p_stride + j);
      for (int w = 0; w < W; ++w) acc[r][w] = _mm256_fmadd_ps(pr, vv[w], acc[r][w]);
    }
  }
  for (int r = 0; r < NQ; ++r) {
    for (int w = 0; w < W; ++w) _mm256_storeu_ps(o[r] + e + 8 * w, acc[r][w]);
  }
}

// Spans of 32 elements where at most two rows leave the registers for them (4 ymm a row), else
// of 16, then the 8-lane step and scalar tail; only the first span asks ahead. Hot f16 rows of
// 64, one and two rows: 3.0 and 3.7 ns a position in spans of 16, 1.9 and 2.6 in spans of 32.
template <class V, int NQ>
void values_rows(int64_t n, const float* p, int64_t p_stride, const typename V::T* v,
                 int64_t v_stride, int n_pos, float* const* o, bool ahead) {
  constexpr int W = NQ <= 2 ? 4 : 2;
  int64_t e = 0;
  for (; e + 8 * W <= n; e += 8 * W) values_span<V, NQ, W>(n, e, p, p_stride, v, v_stride, n_pos, o, ahead && e == 0);
  for (; e + 16 <= n; e += 16) values_span<V, NQ, 2>(n, e, p, p_stride, v, v_stride, n_pos, o, ahead && e == 0);
  values_tail<V, NQ>(n, e, p, p_stride, v, v_stride, n_pos, o);
}

// exp(x) = 2^k * e^r with k = round(x / ln 2) and |r| <= ln 2 / 2: r by Cody-Waite reduction
// (ln 2 split in two so that k * ln2_hi is exact), e^r by Cephes' expf polynomial (about 1 ulp).
// Below ln(FLT_MIN) the result is 0 rather than a subnormal. Lane-independent, so a value gets
// the same result in any lane; the n % 8 tail goes through the same code in a padded vector.
__m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.3762626647949f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2k = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(pow2k)));
}

float attn_exp(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), s));
    _mm256_storeu_ps(x + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (j < n) {
    float buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = j + i < n ? x[j + i] : -__builtin_inff();  // exp(-inf) = 0: adds nothing
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf), s));
    _mm256_storeu_ps(buf, e);
    acc = _mm256_add_ps(acc, e);
    for (int64_t i = 0; j + i < n; ++i) x[j + i] = buf[i];
  }
  return hsum(acc);
}

// Eight running maxima, then the largest of them: max is exact, so the order does not matter.
float attn_scale_max(float* x, int64_t n, float scale, float init) {
  const __m256 s = _mm256_set1_ps(scale);
  __m256 mx = _mm256_set1_ps(init);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), s);
    _mm256_storeu_ps(x + j, v);
    mx = _mm256_max_ps(mx, v);
  }
  alignas(32) float lane[8];
  _mm256_store_ps(lane, mx);
  float m = lane[0];
  for (int i = 1; i < 8; ++i) m = std::max(m, lane[i]);
  for (; j < n; ++j) m = std::max(m, x[j] *= scale);
  return m;
}

// silu(x) = x * sigmoid(x) from e = exp(-|x|), which never overflows: sigmoid(x) = 1 / (1 + e)
// for x >= 0 and e / (1 + e) below. The n % 8 tail goes through the same code in a padded vector.
__m256 swiglu8(__m256 g, __m256 u) {
  const __m256 e = exp8(_mm256_or_ps(g, _mm256_set1_ps(-0.0f)));  // exp(-|g|)
  const __m256 num = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), g);  // sign bit of g picks x * e
  return _mm256_mul_ps(_mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void swiglu(float* g, const float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(g + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i < n) {
    float gb[8] = {}, ub[8] = {};
    for (int64_t k = 0; i + k < n; ++k) gb[k] = g[i + k], ub[k] = u[i + k];
    _mm256_storeu_ps(gb, swiglu8(_mm256_loadu_ps(gb), _mm256_loadu_ps(ub)));
    for (int64_t k = 0; i + k < n; ++k) g[i + k] = gb[k];
  }
}

// Lanes 0-3 of the reference in lo, 4-7 in hi.
double sum_squares(const float* x, const float* add, int64_t n) {
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(add + i));
    const __m256 sq = _mm256_mul_ps(v, v);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  double lane[8];
  _mm256_storeu_pd(lane, lo);
  _mm256_storeu_pd(lane + 4, hi);
  double sum = 0;
  for (double l : lane) sum += l;
  for (; i < n; ++i) {
    const float v = add ? x[i] + add[i] : x[i];
    sum += static_cast<double>(v * v);
  }
  return sum;
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

void install_avx2(Backend& b) {
  using F32xF32 = FloatKernel<LdF32, LdF32>;
  b.name = "avx2";
  TypeKernels& f32 = b.types[static_cast<uint32_t>(GgmlType::F32)];
  f32.vec_dot = vec_dot_row<F32xF32, ActAsIs>;
  f32.matmul = matmul<F32xF32, ActAsIs, F32xF32, ActAsIs>;

  TypeKernels& f16 = b.types[static_cast<uint32_t>(GgmlType::F16)];
  f16.dequantize = dequantize_f16;
  f16.quantize = quantize_f16;
  f16.vec_dot = vec_dot_row<FloatKernel<LdF16, LdF16>, ActAsIs>;
  f16.matmul = matmul<FloatKernel<LdF16, LdF16>, ActAsIs, FloatKernel<LdF16, LdF32>,
                      ActWidened<dequantize_f16>>;

  TypeKernels& bf16 = b.types[static_cast<uint32_t>(GgmlType::BF16)];
  bf16.dequantize = dequantize_bf16;
  bf16.vec_dot = vec_dot_row<FloatKernel<LdBF16, LdBF16>, ActAsIs>;
  bf16.matmul = matmul<FloatKernel<LdBF16, LdBF16>, ActAsIs, FloatKernel<LdBF16, LdF32>,
                       ActWidened<dequantize_bf16>>;

  TypeKernels& q8 = b.types[static_cast<uint32_t>(GgmlType::Q8_0)];
  q8.dequantize = dequantize_q8_0;
  q8.quantize = quantize_q8_0;
  q8.vec_dot = vec_dot_row<Q8_0Kernel, ActRepacked<q8_0_repack>>;
  q8.matmul = matmul<Q8_0Kernel, ActRepacked<q8_0_repack>, Q8_0Kernel, ActRepacked<q8_0_repack>>;

  install_legacy_quants_avx2(b);
  install_k_quants_avx2(b);

  b.attn_scores_f32 = attn_scores<LdF32>;
  b.attn_scores_f16 = attn_scores<LdF16>;
  b.attn_values_f32 = attn_values<LdF32>;
  b.attn_values_f16 = attn_values<LdF16>;
  b.attn_scores_q8_0 = q8_0_scores<attn_scores<LdQ8_0>>;
  b.attn_values_q8_0 = q8_0_values<attn_values<LdQ8_0>>;
  b.attn_exp = attn_exp;
  b.attn_scale_max = attn_scale_max;
  b.swiglu = swiglu;
  b.f32_to_fp16_row = f32_to_fp16_row;
  b.sum_squares = sum_squares;
}

}  // namespace weft::cpu::detail

#endif  // __AVX2__ && __FMA__ && __F16C__
