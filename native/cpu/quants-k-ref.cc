// Scalar reference kernels for the K-quants Q4_K, Q5_K, Q6_K, with Q8_K activations, and a
// reference quantizer for each (block layouts in quants-k.h).
//
// Dots follow ggml's structure: per super-block an exact integer sum of scale * q_w * q_a (and
// of min * group sum of q_a), scaled by the float products d_a * d_w and d_a * dmin_w as ggml
// forms them, accumulated in double. Activations are quantized to Q8_K exactly as ggml's CPU
// backend does at run time (x86 included: it has no SIMD Q8_K quantizer), which is what keeps
// our logits on K-quant files next to llama.cpp's.
#include <cmath>
#include <cstring>

#include "kernels-impl.h"
#include "kernels.h"
#include "quants-k.h"

namespace weft::cpu::detail {
namespace {

// ---- shared pieces -------------------------------------------------------------------------
// Round to nearest, ties to even (the default FP mode), as ggml's nearest_int does.
int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }

float clampf(float v, float lo, float hi) { return std::fmax(std::fmin(v, hi), lo); }

// fp16 bits of a non-negative scale, saturating at the largest half instead of rounding to inf,
// so an out-of-range row quantizes to clipped values rather than to inf * 0 = NaN.
uint16_t scale_to_fp16(float v) { return f32_to_fp16(std::fmin(v, 65504.0f)); }

// The 8 six-bit scales and mins of a Q4_K/Q5_K super-block (layout in quants-k.h).
void unpack_scales(const uint8_t* q, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = q[j] & 63;
    m[j] = q[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((q[j + 8] & 15) | ((q[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
  }
}

void pack_scales(const uint8_t* sc, const uint8_t* m, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

// ---- Q8_K (activations) ----------------------------------------------------------------------
void dequantize_q8_k(const void* src, float* dst, int64_t n) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(src);
  for (int64_t b = 0; b < n / kQK; ++b) {
    for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = x[b].d * x[b].qs[j];
  }
}

// ggml's quantize_row_q8_K_ref: the element of largest magnitude (the first, on ties) maps to
// -127, so d = 1 / iscale carries its sign. The clamp changes nothing for finite input (|x *
// iscale| <= 127 up to rounding) but gives NaN/inf a defined result; the AVX2 quantizer clamps
// the same way, so the two agree bit for bit.
void quantize_q8_k(const float* src, void* dst, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* x = src + b * kQK;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {  // NaN compares false and is skipped
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK; ++j) {
      y[b].qs[j] = static_cast<int8_t>(nearest(clampf(iscale * x[j], -127.0f, 127.0f)));
    }
    for (int g = 0; g < kQK / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[b].qs[16 * g + l];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
    y[b].d = 1.0f / iscale;
  }
}

// ---- Q4_K / Q5_K -----------------------------------------------------------------------------
// Weight l of sub-block j: its 4 low bits, plus (Q5_K) the fifth.
int q4_k_value(const BlockQ4_K& x, int j, int l) {
  return (x.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
}

int q5_k_value(const BlockQ5_K& x, int j, int l) {
  return ((x.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15) | (((x.qh[l] >> j) & 1) << 4);
}

template <class Block, int (*value)(const Block&, int, int)>
void dequantize_qk_min(const void* src, float* dst, int64_t n) {
  const Block* x = static_cast<const Block*>(src);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = fp16_to_f32(x[b].d), dmin = fp16_to_f32(x[b].dmin);
    uint8_t sc[8], m[8];
    unpack_scales(x[b].scales, sc, m);
    for (int j = 0; j < 8; ++j) {
      const float dj = d * sc[j], mj = dmin * m[j];
      for (int l = 0; l < 32; ++l) dst[b * kQK + 32 * j + l] = dj * value(x[b], j, l) - mj;
    }
  }
}

// A plain fit, not llama-quantize's search: each sub-block of 32 gets the range [min(x, 0),
// max(x)] (a K-quant min is never positive), split into nmax steps; the super-block scales d and
// dmin put the largest step and min at 63, and every sub-block step, min and weight is then
// rounded to nearest against the fp16-rounded d and dmin that dequantization will use.
// q_bits writes weight l of sub-block j into the block.
template <class Block>
void quantize_qk_min(const float* src, void* dst, int64_t n, int nmax,
                     void (*q_bits)(Block&, int, int, int)) {
  Block* y = static_cast<Block*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* x = src + b * kQK;
    float step[8], lo[8], max_step = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      float mn = 0.0f, mx = 0.0f;
      for (int l = 0; l < 32; ++l) {
        mn = std::fmin(mn, x[32 * j + l]);
        mx = std::fmax(mx, x[32 * j + l]);
      }
      lo[j] = mn;
      step[j] = (mx - mn) / nmax;
      max_step = std::fmax(max_step, step[j]);
      max_min = std::fmax(max_min, -mn);
    }
    std::memset(&y[b], 0, sizeof y[b]);
    y[b].d = scale_to_fp16(max_step / 63.0f);
    y[b].dmin = scale_to_fp16(max_min / 63.0f);
    const float d = fp16_to_f32(y[b].d), dmin = fp16_to_f32(y[b].dmin);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = static_cast<uint8_t>(d > 0.0f ? nearest(clampf(step[j] / d, 0.0f, 63.0f)) : 0);
      m[j] = static_cast<uint8_t>(dmin > 0.0f ? nearest(clampf(-lo[j] / dmin, 0.0f, 63.0f)) : 0);
      const float dj = d * sc[j], mj = dmin * m[j];
      for (int l = 0; l < 32; ++l) {
        const float q = dj > 0.0f ? (x[32 * j + l] + mj) / dj : 0.0f;
        q_bits(y[b], j, l, nearest(clampf(q, 0.0f, static_cast<float>(nmax))));
      }
    }
    pack_scales(sc, m, y[b].scales);
  }
}

void q4_k_bits(BlockQ4_K& y, int j, int l, int q) {
  y.qs[32 * (j / 2) + l] |= static_cast<uint8_t>(q << (4 * (j % 2)));
}

void q5_k_bits(BlockQ5_K& y, int j, int l, int q) {
  y.qs[32 * (j / 2) + l] |= static_cast<uint8_t>((q & 15) << (4 * (j % 2)));
  y.qh[l] |= static_cast<uint8_t>((q >> 4) << j);
}

void quantize_q4_k(const float* src, void* dst, int64_t n) {
  quantize_qk_min<BlockQ4_K>(src, dst, n, 15, q4_k_bits);
}

void quantize_q5_k(const float* src, void* dst, int64_t n) {
  quantize_qk_min<BlockQ5_K>(src, dst, n, 31, q5_k_bits);
}

// sum_j sc[j] * (q_w . q_a over sub-block j) - (d_a dmin_w / d_a d_w) * sum_j m[j] * (group sums).
template <class Block, int (*value)(const Block&, int, int)>
float vec_dot_qk_min(int64_t n, const void* w, const void* a) {
  const Block* x = static_cast<const Block*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  double sum = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_scales(x[b].scales, sc, m);
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) s += value(x[b], j, l) * y[b].qs[32 * j + l];
      sumi += sc[j] * s;
      summ += m[j] * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    const float d = y[b].d * fp16_to_f32(x[b].d), dmin = y[b].d * fp16_to_f32(x[b].dmin);
    sum += static_cast<double>(d) * sumi - static_cast<double>(dmin) * summ;
  }
  return static_cast<float>(sum);
}

// ---- Q6_K ----------------------------------------------------------------------------------
// Weight i of the super-block (layout in quants-k.h), in [0, 63].
int q6_k_value(const BlockQ6_K& x, int i) {
  const int h = i / 128, c = (i % 128) / 32, l = i % 32;
  const int lo = (x.ql[64 * h + 32 * (c % 2) + l] >> (4 * (c / 2))) & 15;
  const int hi = (x.qh[32 * h + l] >> (2 * c)) & 3;
  return lo | (hi << 4);
}

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int i = 0; i < kQK; ++i) {
      dst[b * kQK + i] = d * x[b].scales[i / 16] * (q6_k_value(x[b], i) - 32);
    }
  }
}

// A plain fit: each group of 16 gets the step that maps its largest-magnitude element to -32
// (the one end of [-32, 31] both signs can reach), the super-block scale d maps the largest
// step to -128, and steps and weights are rounded to nearest against the fp16-rounded d.
void quantize_q6_k(const float* src, void* dst, int64_t n) {
  BlockQ6_K* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* x = src + b * kQK;
    float step[16], max_step = 0.0f;
    for (int k = 0; k < 16; ++k) {
      float amax = 0.0f, max = 0.0f;
      for (int l = 0; l < 16; ++l) {
        const float v = x[16 * k + l];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          max = v;
        }
      }
      step[k] = max / -32.0f;
      if (std::fabs(step[k]) > std::fabs(max_step)) max_step = step[k];
    }
    std::memset(&y[b], 0, sizeof y[b]);
    const float d_abs = fp16_to_f32(scale_to_fp16(std::fabs(max_step) / 128.0f));
    const float d = max_step > 0.0f ? -d_abs : d_abs;  // the largest step -> scale -128
    y[b].d = f32_to_fp16(d);
    for (int k = 0; k < 16; ++k) {
      const int sc = d != 0.0f ? nearest(clampf(step[k] / d, -128.0f, 127.0f)) : 0;
      y[b].scales[k] = static_cast<int8_t>(sc);
      const float dk = d * sc;
      for (int l = 0; l < 16; ++l) {
        const int i = 16 * k + l;
        const float q = dk != 0.0f ? x[i] / dk : 0.0f;
        const int v = nearest(clampf(q, -32.0f, 31.0f)) + 32;
        const int h = i / 128, c = (i % 128) / 32, t = i % 32;
        y[b].ql[64 * h + 32 * (c % 2) + t] |= static_cast<uint8_t>((v & 15) << (4 * (c / 2)));
        y[b].qh[32 * h + t] |= static_cast<uint8_t>((v >> 4) << (2 * c));
      }
    }
  }
}

float vec_dot_q6_k(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  double sum = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32_t sumi = 0;
    for (int k = 0; k < 16; ++k) {
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) s += (q6_k_value(x[b], 16 * k + l) - 32) * y[b].qs[16 * k + l];
      sumi += x[b].scales[k] * s;
    }
    const float d = y[b].d * fp16_to_f32(x[b].d);
    sum += static_cast<double>(d) * sumi;
  }
  return static_cast<float>(sum);
}

void set(Backend& b, GgmlType t, const TypeKernels& k) { b.types[static_cast<uint32_t>(t)] = k; }

}  // namespace

void add_k_quants_ref(Backend& b) {
  using Q4 = BlockQ4_K;
  using Q5 = BlockQ5_K;
  // weight type -> {activation type, dequantize, quantize, vec_dot, matmul}
  set(b, GgmlType::Q4_K, {GgmlType::Q8_K, dequantize_qk_min<Q4, q4_k_value>, quantize_q4_k,
                          vec_dot_qk_min<Q4, q4_k_value>, matmul_rows<vec_dot_qk_min<Q4, q4_k_value>>});
  set(b, GgmlType::Q5_K, {GgmlType::Q8_K, dequantize_qk_min<Q5, q5_k_value>, quantize_q5_k,
                          vec_dot_qk_min<Q5, q5_k_value>, matmul_rows<vec_dot_qk_min<Q5, q5_k_value>>});
  set(b, GgmlType::Q6_K, {GgmlType::Q8_K, dequantize_q6_k, quantize_q6_k, vec_dot_q6_k,
                          matmul_rows<vec_dot_q6_k>});
  // Q8_K is only ever an activation type: no vec_dot, so it is not a supported weight type.
  set(b, GgmlType::Q8_K, {GgmlType::Q8_K, dequantize_q8_k, quantize_q8_k, nullptr, nullptr});
}

}  // namespace weft::cpu::detail
