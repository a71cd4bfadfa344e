// Scalar reference kernels for Q4_0, Q4_1, Q5_0, Q5_1 (block layouts in quants-legacy.h), with
// Q8_0 / Q8_1 activations, and a reference quantizer for each.
//
// The quantizers are ggml's quantize_row_q{4,5}_{0,1}_ref (round to nearest per block, no
// search), which llama-quantize uses when it has no importance matrix, so a GGUF written with
// them holds the bytes llama.cpp would write. Dots follow ggml's generic code: an exact integer
// sum per block, scaled by d_w * d_a in f32 (plus m_w * s_a for the _1 types), accumulated in f32.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels-impl.h"
#include "kernels.h"
#include "quants-legacy.h"

namespace weft::cpu::detail {
namespace {

// ---- codes -----------------------------------------------------------------------------------
template <class B>
struct Legacy;
template <>
struct Legacy<BlockQ4_0> {
  static constexpr int kBits = 4;
  static constexpr bool kMin = false;
};
template <>
struct Legacy<BlockQ4_1> {
  static constexpr int kBits = 4;
  static constexpr bool kMin = true;
};
template <>
struct Legacy<BlockQ5_0> {
  static constexpr int kBits = 5;
  static constexpr bool kMin = false;
};
template <>
struct Legacy<BlockQ5_1> {
  static constexpr int kBits = 5;
  static constexpr bool kMin = true;
};

// The 32 unsigned codes of a block (before the -8 / -16 offset of the _0 types).
template <class B>
void codes(const B& b, int* q) {
  for (int j = 0; j < kQL / 2; ++j) {
    q[j] = b.qs[j] & 15;
    q[j + kQL / 2] = b.qs[j] >> 4;
  }
  if constexpr (Legacy<B>::kBits == 5) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, sizeof qh);
    for (int j = 0; j < kQL; ++j) q[j] |= static_cast<int>((qh >> j) & 1u) << 4;
  }
}

template <class B>
void store_codes(const int* q, B& b) {
  for (int j = 0; j < kQL / 2; ++j) {
    b.qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + kQL / 2] & 15) << 4));
  }
  if constexpr (Legacy<B>::kBits == 5) {
    uint32_t qh = 0;
    for (int j = 0; j < kQL; ++j) qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    std::memcpy(b.qh, &qh, sizeof qh);
  }
}

// ggml's (int8_t)(v) followed by MIN(hi, .): truncation toward zero, capped at hi. For finite
// input v is never below 0 here, so the floor at 0 only gives NaN a defined code.
int trunc_code(float v, int hi) {
  if (!(v > 0.0f)) return 0;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// ---- dequantize / quantize ---------------------------------------------------------------------
template <class B>
void dequantize_legacy(const void* src, float* dst, int64_t n) {
  const B* x = static_cast<const B*>(src);
  for (int64_t b = 0; b < n / kQL; ++b) {
    int q[kQL];
    codes(x[b], q);
    const float d = fp16_to_f32(x[b].d);
    float* y = dst + b * kQL;
    if constexpr (Legacy<B>::kMin) {
      const float m = fp16_to_f32(x[b].m);
      for (int j = 0; j < kQL; ++j) y[j] = static_cast<float>(q[j]) * d + m;
    } else {
      const int off = 1 << (Legacy<B>::kBits - 1);
      for (int j = 0; j < kQL; ++j) y[j] = static_cast<float>(q[j] - off) * d;
    }
  }
}

// _0 types: the element of largest magnitude (the first, on ties) gets code 0, so
// d = max / -off; q = min(2 off - 1, trunc(x / d + off + 0.5)).
// _1 types: d = (max - min) / (2^bits - 1), m = min; q = min(2^bits - 1, trunc((x - min) / d + 0.5)).
// In both, x / d is x * (1 / d) with the f32 d, as in ggml (d is rounded to fp16 only when stored).
template <class B>
void quantize_legacy(const float* src, void* dst, int64_t n) {
  B* y = static_cast<B*>(dst);
  constexpr int hi = (1 << Legacy<B>::kBits) - 1;
  for (int64_t b = 0; b < n / kQL; ++b) {
    const float* x = src + b * kQL;
    int q[kQL];
    if constexpr (Legacy<B>::kMin) {
      float min = FLT_MAX, max = -FLT_MAX;
      for (int j = 0; j < kQL; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
      }
      const float d = (max - min) / static_cast<float>(hi);
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      y[b].d = f32_to_fp16(d);
      y[b].m = f32_to_fp16(min);
      for (int j = 0; j < kQL; ++j) q[j] = trunc_code((x[j] - min) * id + 0.5f, hi);
    } else {
      constexpr int off = 1 << (Legacy<B>::kBits - 1);
      float amax = 0.0f, max = 0.0f;
      for (int j = 0; j < kQL; ++j) {
        if (amax < std::fabs(x[j])) {  // NaN compares false and is skipped
          amax = std::fabs(x[j]);
          max = x[j];
        }
      }
      const float d = max / static_cast<float>(-off);
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      y[b].d = f32_to_fp16(d);
      for (int j = 0; j < kQL; ++j) q[j] = trunc_code(x[j] * id + (off + 0.5f), hi);
    }
    store_codes(q, y[b]);
  }
}

// ---- Q8_1 (activations of Q4_1 / Q5_1) -------------------------------------------------------
void dequantize_q8_1(const void* src, float* dst, int64_t n) {
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(src);
  for (int64_t b = 0; b < n / kQL; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < kQL; ++j) dst[b * kQL + j] = x[b].qs[j] * d;
  }
}

// As ggml's x86 quantize_row_q8_1 does at run time (the reasons are those of quantize_q8_0 in
// kernels-ref.cc): d = amax / 127, q = round-half-even(x * (127 / amax)), and s = d * sum(q) with
// the f32 d, rounded once to fp16. The clamp only gives NaN/inf a defined result.
void quantize_q8_1(const float* src, void* dst, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < n / kQL; ++b) {
    const float* x = src + b * kQL;
    float amax = 0.0f;
    for (int j = 0; j < kQL; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) amax = ax;
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQL; ++j) {
      const float v = std::fmax(std::fmin(x[j] * id, 127.0f), -127.0f);
      y[b].qs[j] = static_cast<int8_t>(std::nearbyint(v));
      sum += y[b].qs[j];
    }
    y[b].d = f32_to_fp16(d);
    y[b].s = f32_to_fp16(d * static_cast<float>(sum));
  }
}

// ---- dots ------------------------------------------------------------------------------------
// _0 types (Q8_0 activations): sum += sumi * (d_w * d_a), sumi = sum of (q - off) * a.
// _1 types (Q8_1 activations): sum += (d_w * d_a) * sumi + m_w * s_a, sumi = sum of q * a.
template <class B>
float vec_dot_legacy(int64_t n, const void* w, const void* a) {
  const B* x = static_cast<const B*>(w);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQL; ++b) {
    int q[kQL];
    codes(x[b], q);
    const float dw = fp16_to_f32(x[b].d);
    if constexpr (Legacy<B>::kMin) {
      const BlockQ8_1& y = static_cast<const BlockQ8_1*>(a)[b];
      int32_t sumi = 0;
      for (int j = 0; j < kQL; ++j) sumi += q[j] * y.qs[j];
      sum += (dw * fp16_to_f32(y.d)) * static_cast<float>(sumi) + fp16_to_f32(x[b].m) * fp16_to_f32(y.s);
    } else {
      const BlockQ8_0& y = static_cast<const BlockQ8_0*>(a)[b];
      const int off = 1 << (Legacy<B>::kBits - 1);
      int32_t sumi = 0;
      for (int j = 0; j < kQL; ++j) sumi += (q[j] - off) * y.qs[j];
      sum += static_cast<float>(sumi) * (dw * fp16_to_f32(y.d));
    }
  }
  return sum;
}

// ---- Q4_0_X8, Q5_0_X8 -----------------------------------------------------------------------
// Bit 8m + v of a Q5_0_X8 row's qh is bit 4v + m of its block's (quants-legacy.h). Byte i of a
// block's qh holds nibbles v = 2i and 2i + 1, whose bits go to bits 2i and 2i + 1 of each output
// byte: one table entry per byte value, shifted by 2i (a bit at a time, packing a model's Q5_0
// took ~2 ms per MB). The way back, byte m of the rearranged bits goes to bits 4v + m.
struct QhTables {
  uint32_t spread[256], gather[256];
  QhTables() {
    for (uint32_t b = 0; b < 256; ++b) {
      spread[b] = gather[b] = 0;
      for (uint32_t m = 0; m < 4; ++m) spread[b] |= ((b >> m) & 1u) << (8 * m) | ((b >> (4 + m)) & 1u) << (8 * m + 1);
      for (uint32_t v = 0; v < 8; ++v) gather[b] |= ((b >> v) & 1u) << (4 * v);
    }
  }
};
const QhTables kQh;

uint32_t spread_qh(uint32_t qh) {
  uint32_t out = 0;
  for (int i = 0; i < 4; ++i) out |= kQh.spread[(qh >> (8 * i)) & 0xFFu] << (2 * i);
  return out;
}

uint32_t gather_qh(uint32_t spread) {
  uint32_t out = 0;
  for (int m = 0; m < 4; ++m) out |= kQh.gather[(spread >> (8 * m)) & 0xFFu] << m;
  return out;
}

// Row r's block from a packed group block, and back.
BlockQ4_0 unpacked(const BlockQ4_0x8& g, int r) {
  BlockQ4_0 out;
  out.d = g.d[r];
  for (int j = 0; j < 4; ++j) std::memcpy(out.qs + 4 * j, g.qs[j][r], 4);
  return out;
}

BlockQ5_0 unpacked(const BlockQ5_0x8& g, int r) {
  BlockQ5_0 out;
  out.d = g.d[r];
  const uint32_t qh = gather_qh(g.qh[r]);
  std::memcpy(out.qh, &qh, sizeof qh);
  for (int j = 0; j < 4; ++j) std::memcpy(out.qs + 4 * j, g.qs[j][r], 4);
  return out;
}

void put(const BlockQ4_0& x, BlockQ4_0x8& g, int r) {
  g.d[r] = x.d;
  for (int j = 0; j < 4; ++j) std::memcpy(g.qs[j][r], x.qs + 4 * j, 4);
}

void put(const BlockQ5_0& x, BlockQ5_0x8& g, int r) {
  g.d[r] = x.d;
  uint32_t qh;
  std::memcpy(&qh, x.qh, sizeof qh);
  g.qh[r] = spread_qh(qh);
  for (int j = 0; j < 4; ++j) std::memcpy(g.qs[j][r], x.qs + 4 * j, 4);
}

// Each row unpacked from its group, then the file type's dot: the reference's own arithmetic.
template <class B, class G>
void matmul_x8(int64_t n_in, const void* w, size_t w_row_bytes, const void* act,
               size_t act_row_bytes, int n_tok, float* y, int64_t y_stride, int64_t r_begin,
               int64_t r_end) {
  const int64_t nb = n_in / kQL;
  B* row = reinterpret_cast<B*>(scratch_floats(static_cast<size_t>(nb) * sizeof(B) / 4 + 1));
  const char* ab = static_cast<const char*>(act);
  for (int64_t r = r_begin; r < r_end; ++r) {
    const G* g = reinterpret_cast<const G*>(static_cast<const char*>(w) + (r / 8) * 8 * w_row_bytes);
    for (int64_t b = 0; b < nb; ++b) row[b] = unpacked(g[b], static_cast<int>(r % 8));
    for (int i = 0; i < n_tok; ++i) y[i * y_stride + r] = vec_dot_legacy<B>(n_in, row, ab + i * act_row_bytes);
  }
}

// A group at a time through a copy of its rows, so dst may be src.
template <class B, class G>
void pack_x8(const void* src, void* dst, int64_t n_in, int64_t n_rows) {
  const int64_t nb = n_in / kQL;
  std::vector<B> rows(static_cast<size_t>(8 * nb));
  for (int64_t g = 0; g < n_rows / 8; ++g) {
    std::memcpy(rows.data(), static_cast<const B*>(src) + g * 8 * nb, rows.size() * sizeof(B));
    G* out = static_cast<G*>(dst) + g * nb;
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < 8; ++r) put(rows[static_cast<size_t>(r * nb + b)], out[b], r);
    }
  }
}

template <class B>
TypeKernels legacy_kernels(GgmlType act) {
  return {act, dequantize_legacy<B>, quantize_legacy<B>, vec_dot_legacy<B>,
          matmul_rows<vec_dot_legacy<B>>};
}

}  // namespace

void add_legacy_quants_ref(Backend& b) {
  b.types[static_cast<uint32_t>(GgmlType::Q4_0)] = legacy_kernels<BlockQ4_0>(GgmlType::Q8_0);
  b.types[static_cast<uint32_t>(GgmlType::Q4_1)] = legacy_kernels<BlockQ4_1>(GgmlType::Q8_1);
  b.types[static_cast<uint32_t>(GgmlType::Q5_0)] = legacy_kernels<BlockQ5_0>(GgmlType::Q8_0);
  b.types[static_cast<uint32_t>(GgmlType::Q5_1)] = legacy_kernels<BlockQ5_1>(GgmlType::Q8_1);
  TypeKernels& q4_x8 = b.types[static_cast<uint32_t>(GgmlType::Q4_0_X8)];
  q4_x8.act_type = GgmlType::Q8_0;
  q4_x8.matmul = matmul_x8<BlockQ4_0, BlockQ4_0x8>;
  TypeKernels& q5_x8 = b.types[static_cast<uint32_t>(GgmlType::Q5_0_X8)];
  q5_x8.act_type = GgmlType::Q8_0;
  q5_x8.matmul = matmul_x8<BlockQ5_0, BlockQ5_0x8>;
  // Q8_1 is an activation type only: no vec_dot, so type_supported() stays false for it.
  TypeKernels& q8_1 = b.types[static_cast<uint32_t>(GgmlType::Q8_1)];
  q8_1.dequantize = dequantize_q8_1;
  q8_1.quantize = quantize_q8_1;
}

void pack_q4_0_x8(const void* src, void* dst, int64_t n_in, int64_t n_rows) {
  pack_x8<BlockQ4_0, BlockQ4_0x8>(src, dst, n_in, n_rows);
}

void pack_q5_0_x8(const void* src, void* dst, int64_t n_in, int64_t n_rows) {
  pack_x8<BlockQ5_0, BlockQ5_0x8>(src, dst, n_in, n_rows);
}

}  // namespace weft::cpu::detail
