// Tests for the K-quant kernels (Q4_K, Q5_K, Q6_K with Q8_K activations): the fast path against
// the scalar reference on random and extreme super-blocks, both against exact arithmetic, the
// Q8_K quantizer against ggml's rules, the reference quantizers' error, and matmul == vec_dot
// bitwise (batch invariance). Plain executable: one line per check, a summary, non-zero exit on
// failure. Never times anything.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ggml-types.h"
#include "cpu/kernels.h"
#include "cpu/thread-pool.h"
#include "kernel-test.h"

using weft::ErrorCode;
using weft::GgmlType;
namespace cpu = weft::cpu;
using namespace weft::test;

namespace {

const GgmlType kTypes[] = {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
const char* name(GgmlType t) { return weft::ggml_type_name(t); }
size_t block_bytes(GgmlType t) { return weft::ggml_type_traits(t).bytes; }
constexpr int QK = 256;

constexpr double kU = 0x1p-24;     // unit roundoff of f32
constexpr double kSub = 0x1p-149;  // spacing of f32 subnormals

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
uint16_t get16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// ---- an independent decoder of the GGUF layouts, by byte offset --------------------------------
// Weight element i of a super-block as integers: w = d * sc * q - dmin * m (Q6_K: m = 0 and q
// already has its -32 offset), written from ggml's dequantizers rather than from our kernels.
struct Decoded {
  double d = 0, dmin = 0;
  int sc[QK], q[QK], m[QK];
};

void scale_min_k4(int j, const uint8_t* s, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

Decoded decode(GgmlType t, const uint8_t* blk) {
  Decoded r;
  if (t == GgmlType::Q6_K) {
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    r.d = cpu::fp16_to_f32(get16(blk + 208));
    for (int i = 0; i < QK; ++i) {
      const int half = i / 128, c = (i % 128) / 32, l = i % 32;
      const uint8_t low = ql[64 * half + l + (c & 1 ? 32 : 0)];
      const int nib = c < 2 ? (low & 0xF) : (low >> 4);
      const int hb = (qh[32 * half + l] >> (2 * c)) & 3;
      r.q[i] = (nib | (hb << 4)) - 32;
      r.sc[i] = sc[i / 16];
      r.m[i] = 0;
    }
    return r;
  }
  r.d = cpu::fp16_to_f32(get16(blk));
  r.dmin = cpu::fp16_to_f32(get16(blk + 2));
  const uint8_t* s = blk + 4;
  const bool q5 = t == GgmlType::Q5_K;
  const uint8_t* qh = blk + 16;
  const uint8_t* qs = blk + (q5 ? 48 : 16);
  for (int i = 0; i < QK; ++i) {
    const int j = i / 32, l = i % 32;
    scale_min_k4(j, s, &r.sc[i], &r.m[i]);
    r.q[i] = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
    if (q5) r.q[i] |= ((qh[l] >> j) & 1) << 4;
  }
  return r;
}

float q8k_d(const uint8_t* blk) {
  float d;
  std::memcpy(&d, blk, 4);
  return d;
}
int q8k_q(const uint8_t* blk, int i) { return static_cast<int8_t>(blk[4 + i]); }

// ---- raw blocks ------------------------------------------------------------------------------
enum class Kind { Random, Zero, MaxCodes, MinCodes, Tiny, Huge, SmallExact };
const Kind kKinds[] = {Kind::Random, Kind::Zero, Kind::MaxCodes, Kind::MinCodes, Kind::Tiny, Kind::Huge};
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Random: return "random";
    case Kind::Zero: return "zero";
    case Kind::MaxCodes: return "max codes";
    case Kind::MinCodes: return "min codes";
    case Kind::Tiny: return "tiny d";
    case Kind::Huge: return "huge d";
    case Kind::SmallExact: return "small exact";
  }
  return "?";
}

uint16_t half_in(float lo, float hi) { return cpu::f32_to_fp16(uniform(lo, hi)); }
uint16_t pow2_half(int lo, int hi) { return cpu::f32_to_fp16(std::ldexp(1.0f, irand(lo, hi))); }

// A weight row of n elements of type t. Extreme kinds: MaxCodes sets every bit (6-bit scales and
// mins 63, codes 15/31/63, Q6_K scales -1) or with Q6_K scale -128/127; MinCodes zeroes codes
// under the largest scales; Tiny/Huge put d and dmin at fp16 subnormals / 65504.
std::vector<uint8_t> raw_weights(GgmlType t, int64_t n, Kind kind) {
  const size_t bb = block_bytes(t);
  std::vector<uint8_t> row(bb * static_cast<size_t>(n / QK));
  for (size_t b = 0; b < row.size() / bb; ++b) {
    uint8_t* blk = row.data() + b * bb;
    for (size_t k = 0; k < bb; ++k) blk[k] = static_cast<uint8_t>(g_rng());
    const bool q6 = t == GgmlType::Q6_K;
    const size_t codes_end = q6 ? 192 : bb;  // Q6_K: ql, qh first; Q4_K/Q5_K: after the scales
    const size_t codes_begin = q6 ? 0 : 16;
    uint16_t d = half_in(1e-3f, 0.5f), dmin = half_in(1e-3f, 0.5f);
    switch (kind) {
      case Kind::Random: break;
      case Kind::Zero: std::memset(blk, 0, bb); d = dmin = 0; break;
      case Kind::MaxCodes:
        std::memset(blk, 0xFF, bb);
        if (q6) {
          for (int k = 0; k < 16; ++k) blk[192 + k] = static_cast<uint8_t>(k % 2 ? 127 : 0x80);
        }
        break;
      case Kind::MinCodes:
        std::memset(blk + codes_begin, 0, codes_end - codes_begin);
        if (!q6) std::memset(blk + 4, 0xFF, 12);
        break;
      case Kind::Tiny: d = static_cast<uint16_t>(irand(1, 0x3ff)), dmin = static_cast<uint16_t>(irand(1, 0x3ff)); break;
      case Kind::Huge: d = 0x7bff, dmin = 0x7bff; break;
      case Kind::SmallExact:
        // Codes and scales <= 3 and d, dmin powers of two: every sum is exact in f32.
        for (size_t k = codes_begin; k < codes_end; ++k) blk[k] &= 0x33;  // nibbles in [0, 3]
        if (q6) {
          for (size_t k = 128; k < 192; ++k) blk[k] = 0xAA;  // high bits 2: q = 32 + low - 32
          for (int k = 0; k < 16; ++k) blk[192 + k] = static_cast<uint8_t>(irand(-3, 3));
        } else {
          for (int k = 4; k < 16; ++k) blk[k] &= 0x03;  // every scale and min in [0, 3]
          if (t == GgmlType::Q5_K) std::memset(blk + 16, 0, 32);
        }
        d = pow2_half(-1, 1), dmin = pow2_half(-1, 1);
        break;
    }
    if (kind == Kind::MaxCodes) d = dmin = 0x7bff;  // the largest half (0xFFFF would be a NaN)
    if (q6) {
      put16(blk + 208, d);
    } else {
      put16(blk, d);
      put16(blk + 2, dmin);
    }
  }
  return row;
}

// A Q8_K row with consistent group sums; Random draws any int8 including -128 (which a file's
// quantizer never writes, but the kernels must take).
std::vector<uint8_t> raw_act(int64_t n, Kind kind) {
  std::vector<uint8_t> row(292 * static_cast<size_t>(n / QK));
  for (size_t b = 0; b < row.size() / 292; ++b) {
    uint8_t* blk = row.data() + b * 292;
    float d = uniform(1e-3f, 2.0f) * (g_rng() & 1 ? 1 : -1);
    for (int i = 0; i < QK; ++i) {
      int q = static_cast<int8_t>(g_rng());
      if (kind == Kind::Zero) q = 0;
      if (kind == Kind::MaxCodes) q = i % 3 ? 127 : -128;
      if (kind == Kind::MinCodes) q = i % 2 ? 1 : -1;
      if (kind == Kind::SmallExact) q = irand(-8, 8);
      blk[4 + i] = static_cast<uint8_t>(q);
    }
    if (kind == Kind::Tiny) d = 1e-30f;
    if (kind == Kind::Huge) d = 1e20f;
    if (kind == Kind::SmallExact) d = std::ldexp(1.0f, irand(-1, 1));
    std::memcpy(blk, &d, 4);
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += q8k_q(blk, 16 * g + l);
      put16(blk + 260 + 2 * g, static_cast<uint16_t>(static_cast<int16_t>(s)));
    }
  }
  return row;
}

// ---- exact dots and error bounds ---------------------------------------------------------------
// value: the dot in double from the integer fields (d_a d_w is exact in double; the rest rounds
// at 2^-53). abs: sum over super-blocks of |d_a| (|d_w| sum |sc q a| + |dmin| sum |m a|), which
// bounds every partial sum either path forms. ints: sum of |integer sums|, for the absolute
// error of a scale product that lands among the f32 subnormals.
struct Exact {
  double value = 0, abs = 0, ints = 0;
};

Exact exact_dot(GgmlType t, const uint8_t* w, const uint8_t* a, int64_t n) {
  Exact e;
  for (int64_t b = 0; b < n / QK; ++b) {
    const Decoded x = decode(t, w + b * block_bytes(t));
    const uint8_t* y = a + b * 292;
    const double da = q8k_d(y);
    double sumi = 0, summ = 0, absi = 0, absm = 0;
    for (int i = 0; i < QK; ++i) {
      const double qa = q8k_q(y, i);
      sumi += static_cast<double>(x.sc[i]) * x.q[i] * qa;
      summ += x.m[i] * qa;
      absi += std::fabs(static_cast<double>(x.sc[i]) * x.q[i] * qa);
      absm += std::fabs(x.m[i] * qa);
    }
    e.value += da * x.d * sumi - da * x.dmin * summ;
    e.abs += std::fabs(da) * (std::fabs(x.d) * absi + x.dmin * absm);
    e.ints += absi + absm;
  }
  return e;
}

// Fast path: per super-block the scale products d_a d_w, d_a dmin (1 rounding each), the int ->
// float conversion of lanes (Q6_K lanes may pass 2^24), two fmas; then 3 hsum adds. Reference:
// the two scale products, a double sum, one final rounding.
double bound_fast(int64_t n, const Exact& e) {
  return (5.0 * (n / QK) + 4) * kU * e.abs + kSub * (e.ints + n + 16);
}
double bound_ref(int64_t n, const Exact& e) {
  return 2 * kU * e.abs + (n / QK + 2) * 0x1p-53 * e.abs + kU * std::fabs(e.value) +
         kSub * (e.ints + 2);
}

// Double dot of the dequantized rows (the reference dequantizers), and the extra error of
// dequantization: Q4_K/Q5_K round d*sc, then *q, then -m (3u of |d sc q| + |dmin m| per
// element); the activation d*q rounds once.
double deq_dot(GgmlType t, const uint8_t* w, const uint8_t* a, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  on_ref([&] {
    cpu::dequantize_row(t, w, x.data(), n);
    cpu::dequantize_row(GgmlType::Q8_K, a, y.data(), n);
    return 0;
  });
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[size_t(i)]) * y[size_t(i)];
  return s;
}

// ---- API -----------------------------------------------------------------------------------
void test_api() {
  bool ok = !cpu::type_supported(GgmlType::Q8_K);
  for (GgmlType t : kTypes) ok &= cpu::type_supported(t) && cpu::vec_dot_type(t) == GgmlType::Q8_K;
  check(ok, "Q4_K Q5_K Q6_K supported with Q8_K activations; Q8_K is not a weight type");
  float f[512] = {};
  uint8_t bytes[1024] = {};
  ok = throws_code([&] { cpu::vec_dot(GgmlType::Q4_K, 128, bytes, bytes); }, ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::quantize_row(GgmlType::Q8_K, f, bytes, 320); }, ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::dequantize_row(GgmlType::Q6_K, bytes, f, 32); }, ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::matmul(GgmlType::Q5_K, 256, bytes, 175, bytes, 292, 1, f, 1, 0, 1); },
                   ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::matmul(GgmlType::Q6_K, 256, bytes, 210, bytes, 291, 1, f, 1, 0, 1); },
                   ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::vec_dot(GgmlType::Q8_K, 256, bytes, bytes); }, ErrorCode::Unsupported);
  check(ok, "rows not a multiple of 256, short strides: E_INVALID_ARGUMENT; Q8_K weights: E_UNSUPPORTED");
}

// ---- layouts -------------------------------------------------------------------------------
// A hand-built block per type: the reference dequantizer must give what the independent decoder
// above reads (which follows ggml's dequantizers), for every element.
void test_layouts() {
  for (GgmlType t : kTypes) {
    bool ok = true;
    for (int rep = 0; rep < 50; ++rep) {
      const std::vector<uint8_t> w = raw_weights(t, 512, rep % 2 ? Kind::Random : Kind::MaxCodes);
      std::vector<float> deq(512);
      on_ref([&] {
        cpu::dequantize_row(t, w.data(), deq.data(), 512);
        return 0;
      });
      for (int b = 0; b < 2; ++b) {
        const Decoded x = decode(t, w.data() + b * block_bytes(t));
        for (int i = 0; i < QK; ++i) {
          // Both sides evaluate ggml's float expression: (d * sc) * q - dmin * m.
          const float dsc = static_cast<float>(x.d) * static_cast<float>(x.sc[i]);
          const float want = t == GgmlType::Q6_K
                                 ? dsc * static_cast<float>(x.q[i])
                                 : dsc * static_cast<float>(x.q[i]) - static_cast<float>(x.dmin) * static_cast<float>(x.m[i]);
          ok &= bits(deq[size_t(b * QK + i)]) == bits(want);
        }
      }
    }
    check(ok, std::string(name(t)) + ": dequantize_row decodes ggml's layout (scales, mins, nibbles, high bits)");
  }
  // The 12 packed scale bytes: sc/m of sub-blocks 4..7 borrow the top bits of bytes 0..7.
  std::vector<uint8_t> blk(144, 0);
  const uint8_t scales[12] = {0x41, 0x82, 0xC3, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9A, 0xBC, 0xDE, 0xF0};
  std::memcpy(blk.data() + 4, scales, 12);
  put16(blk.data(), cpu::f32_to_fp16(1.0f));
  put16(blk.data() + 2, cpu::f32_to_fp16(1.0f));
  std::vector<float> deq(256);
  cpu::dequantize_row(GgmlType::Q4_K, blk.data(), deq.data(), 256);  // all codes 0: w = -m
  const int want_m[8] = {5, 6, 7, 8, 9 | 16, 11 | 32, 13 | 48, 15};
  bool ok = true;
  for (int j = 0; j < 8; ++j) ok &= deq[size_t(32 * j)] == -want_m[j];
  blk[16] = 0x21;  // sub-block 0 code 1, sub-block 1 code 2
  blk[16 + 32 * 3] = 0x11;  // sub-blocks 6 and 7 code 1
  cpu::dequantize_row(GgmlType::Q4_K, blk.data(), deq.data(), 256);
  const int want_sc[8] = {1, 2, 3, 4, 10 | 16, 12 | 32, 14 | 48, 0};
  ok &= deq[0] == want_sc[0] * 1 - want_m[0] && deq[32] == want_sc[1] * 2 - want_m[1] &&
        deq[192] == want_sc[6] - want_m[6] && deq[224] == want_sc[7] - want_m[7];
  check(ok, "Q4_K: hand-packed 6-bit scales and mins decode to the documented values");
}

// ---- Q8_K activation quantizer -----------------------------------------------------------------
void test_quantize_q8_k() {
  const int64_t n = 1024;
  bool same = true, rules = true;
  for (int rep = 0; rep < 40; ++rep) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) {
      switch (rep % 5) {
        case 0: v = std::normal_distribution<float>(0.0f, 1.0f)(g_rng); break;
        case 1: v = (g_rng() & 1 ? 1.0f : -1.0f) * std::exp(uniform(-20.0f, 20.0f)); break;
        case 2: v = static_cast<float>(irand(-127, 127)); break;
        case 3: v = 0.0f; break;
        case 4: v = (g_rng() & 1 ? 1.0f : -1.0f) * std::ldexp(uniform(1.0f, 2.0f), irand(-140, 120)); break;
      }
    }
    if (rep % 5 == 2) {
      // Block 0: -127 first sets iscale = 1 exactly, so the ties are visible: to even.
      x[3] = -127.0f, x[4] = 127.0f, x[5] = 2.5f, x[6] = -2.5f, x[7] = 0.5f, x[8] = 126.5f, x[9] = 3.5f;
      for (int j = 0; j < 3; ++j) x[size_t(j)] = 1.0f;
    }
    if (rep == 7) x[10] = NAN, x[300] = INFINITY, x[600] = -INFINITY, x[700] = NAN;
    std::vector<uint8_t> ref(292 * n / QK), fast(ref.size());
    on_ref([&] {
      cpu::quantize_row(GgmlType::Q8_K, x.data(), ref.data(), n);
      return 0;
    });
    cpu::quantize_row(GgmlType::Q8_K, x.data(), fast.data(), n);
    same &= ref == fast;
    if (rep == 7) continue;
    for (int64_t b = 0; b < n / QK; ++b) {
      const uint8_t* blk = ref.data() + b * 292;
      const float* xb = x.data() + b * QK;
      float amax = 0, max = 0;
      for (int i = 0; i < QK; ++i) {
        if (std::fabs(xb[i]) > amax) amax = std::fabs(xb[i]), max = xb[i];
      }
      const float d = q8k_d(blk);
      if (amax == 0) {
        for (int i = 0; i < 292; ++i) rules &= blk[i] == 0;
        continue;
      }
      rules &= bits(d) == bits(1.0f / (-127.0f / max));  // the first largest element -> -127
      for (int g = 0; g < 16; ++g) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += q8k_q(blk, 16 * g + l);
        rules &= static_cast<int16_t>(get16(blk + 260 + 2 * g)) == s;
      }
      for (int i = 0; i < QK; ++i) {
        const int q = q8k_q(blk, i);
        rules &= q >= -127 && q <= 127;
        rules &= std::fabs(static_cast<double>(d) * q - xb[i]) <= std::fabs(d) * (0.5 + 1e-5);
      }
      if (rep % 5 == 2 && b == 0) {
        const int want[10] = {1, 1, 1, -127, 127, 2, -2, 0, 126, 4};
        for (int i = 0; i < 10; ++i) rules &= q8k_q(blk, i) == want[i];
      }
    }
  }
  check(same, std::string("Q8_K: quantize_row ") + cpu::kernel_backend() +
                  " == reference bitwise (normal, 40 decades, integers, zeros, subnormals, NaN/inf)");
  check(rules, "Q8_K: largest |x| -> -127 (d signed), ties to even, |x - d q| <= |d|/2, group sums");
}

// ---- reference quantizers --------------------------------------------------------------------
// Bounds from the fit (quants-k-ref.cc), per sub-block, with step = range / nmax (Q4/Q5: range
// = max(x) - min(x, 0); Q6: step = max |x| / 32) and the super-block scales d = max step / 63
// (Q6: / 128) and dmin = max min / 63:
//   Q4_K/Q5_K: rounding d_j = d sc_j costs <= d/2 per step, the min <= dmin/2, so
//     |err| <= max(step/2 + d/4 + dmin/2, dmin/2 + nmax d/2) (a clipped top or bottom code);
//   Q6_K: the code +32 clips to +31 (one step); the scale costs <= d/2, or d where a step of
//     the other sign than the largest one clamps at +127: step + 32 d.
// Each with 0.2% for the fp16 rounding of d and dmin and a few f32 ulps of the element.
void test_quantize_weights() {
  const int64_t n = 2048;
  for (GgmlType t : kTypes) {
    const bool q6 = t == GgmlType::Q6_K;
    const int nmax = t == GgmlType::Q4_K ? 15 : 31;
    double worst = 0;
    bool finite = true;
    for (int rep = 0; rep < 60; ++rep) {
      std::vector<float> x(static_cast<size_t>(n));
      const int fill = rep % 6;
      for (size_t i = 0; i < x.size(); ++i) {
        float& v = x[i];
        const float sign = g_rng() & 1 ? 1.0f : -1.0f;
        switch (fill) {
          case 0: v = std::normal_distribution<float>(0.0f, 1.0f)(g_rng); break;
          case 1: v = sign * std::exp(uniform(-8.0f, 8.0f)); break;  // mixed magnitudes
          case 2: v = uniform(0.5f, 3.0f); break;                   // all positive: min 0
          case 3: v = -uniform(0.5f, 3.0f); break;                  // all negative
          case 4: v = i % 64 == 5 ? 50.0f * sign : 0.01f * sign; break;  // outliers
          case 5: v = 0.0f; break;
        }
      }
      const std::vector<uint8_t> q = [&] {
        std::vector<uint8_t> r(weft::ggml_row_bytes(t, n));
        cpu::quantize_row(t, x.data(), r.data(), n);
        return r;
      }();
      std::vector<float> back(static_cast<size_t>(n));
      cpu::dequantize_row(t, q.data(), back.data(), n);
      for (int64_t b = 0; b < n / QK; ++b) {
        const float* xb = x.data() + b * QK;
        const int sub = q6 ? 16 : 32;
        std::vector<double> step(QK / sub), mins(QK / sub);
        double max_step = 0, max_min = 0;
        for (int j = 0; j < QK / sub; ++j) {
          double mn = 0, mx = 0, amax = 0;
          for (int l = 0; l < sub; ++l) {
            mn = std::min(mn, double(xb[j * sub + l]));
            mx = std::max(mx, double(xb[j * sub + l]));
            amax = std::max(amax, std::fabs(double(xb[j * sub + l])));
          }
          step[size_t(j)] = q6 ? amax / 32 : (mx - mn) / nmax;
          mins[size_t(j)] = -mn;
          max_step = std::max(max_step, step[size_t(j)]);
          max_min = std::max(max_min, -mn);
        }
        const double d = max_step / (q6 ? 128 : 63) * 1.002, dmin = max_min / 63 * 1.002;
        for (int i = 0; i < QK; ++i) {
          const double s = step[size_t(i / sub)] * 1.002;
          const double allowed = (q6 ? s + 32 * d : std::max(s / 2 + d / 4 + dmin / 2, dmin / 2 + nmax * d / 2)) +
                                 8 * kU * (std::fabs(xb[i]) + s * 64) + 1e-30;
          const double err = std::fabs(double(back[size_t(b * QK + i)]) - xb[i]);
          finite &= std::isfinite(back[size_t(b * QK + i)]);
          worst = std::max(worst, err / allowed);
        }
      }
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: dequantize(quantize(x)) within the fit's bound (worst err/bound %.3f)",
                  name(t), worst);
    check(worst <= 1.0 && finite, buf);
    // NaN/inf/huge input: scales saturate at the largest half, codes clamp, nothing is NaN.
    std::vector<float> x(512, 1.0f);
    x[3] = NAN, x[100] = INFINITY, x[300] = -3e38f;
    std::vector<uint8_t> r(weft::ggml_row_bytes(t, 512));
    cpu::quantize_row(t, x.data(), r.data(), 512);
    std::vector<float> back(512);
    cpu::dequantize_row(t, r.data(), back.data(), 512);
    bool ok = true;
    for (float v : back) ok &= std::isfinite(v);
    std::vector<float> zeros(256, 0.0f);
    cpu::quantize_row(t, zeros.data(), r.data(), 256);
    cpu::dequantize_row(t, r.data(), back.data(), 256);
    for (int i = 0; i < 256; ++i) ok &= back[size_t(i)] == 0.0f;
    check(ok, std::string(name(t)) + ": quantize of NaN/inf/-3e38 dequantizes finite; zeros round-trip to zeros");
  }
}

// ---- dots ----------------------------------------------------------------------------------
void test_vec_dot() {
  const int64_t sizes[] = {256, 512, 1536, 4096};
  for (GgmlType t : kTypes) {
    double worst_fast = 0, worst_ref = 0, worst_deq = 0;
    bool exact_equal = true;
    int cases = 0;
    for (int64_t n : sizes) {
      for (Kind kw : kKinds) {
        for (Kind ka : kKinds) {
          if ((kw == Kind::Huge && ka == Kind::Tiny) || (kw == Kind::Tiny && ka == Kind::Huge)) continue;
          for (int rep = 0; rep < (kw == Kind::Random && ka == Kind::Random ? 8 : 1); ++rep) {
            const std::vector<uint8_t> w = raw_weights(t, n, kw);
            const std::vector<uint8_t> a = raw_act(n, ka);
            const Exact e = exact_dot(t, w.data(), a.data(), n);
            const float r = on_ref([&] { return cpu::vec_dot(t, n, w.data(), a.data()); });
            const float f = cpu::vec_dot(t, n, w.data(), a.data());
            worst_fast = std::max(worst_fast, std::fabs(f - e.value) / bound_fast(n, e));
            worst_ref = std::max(worst_ref, std::fabs(r - e.value) / bound_ref(n, e));
            // Against the double dot of dequantized values: the dequantization roundings
            // (3u of the weight terms, u of the activation) come on top of the kernel's bound.
            const double dd = deq_dot(t, w.data(), a.data(), n);
            const double deq_bound = 5 * kU * e.abs + kSub * (e.ints + 4 * n);
            worst_deq = std::max(worst_deq, std::fabs(r - dd) / (bound_ref(n, e) + deq_bound));
            worst_deq = std::max(worst_deq, std::fabs(f - dd) / (bound_fast(n, e) + deq_bound));
            ++cases;
          }
        }
      }
      for (int rep = 0; rep < 4; ++rep) {
        const std::vector<uint8_t> w = raw_weights(t, n, Kind::SmallExact);
        const std::vector<uint8_t> a = raw_act(n, Kind::SmallExact);
        const Exact e = exact_dot(t, w.data(), a.data(), n);
        const float r = on_ref([&] { return cpu::vec_dot(t, n, w.data(), a.data()); });
        const float f = cpu::vec_dot(t, n, w.data(), a.data());
        exact_equal &= bits(f) == bits(r) && f == e.value;
      }
    }
    char buf[220];
    std::snprintf(buf, sizeof buf, "%s: vec_dot %s within bound of exact on %d row pairs incl. zero/max/min codes, tiny/huge d (worst err/bound %.3f)",
                  name(t), cpu::kernel_backend(), cases, worst_fast);
    check(worst_fast <= 1.0, buf);
    std::snprintf(buf, sizeof buf, "%s: vec_dot reference within bound of exact (worst err/bound %.3f)", name(t), worst_ref);
    check(worst_ref <= 1.0, buf);
    std::snprintf(buf, sizeof buf, "%s: both within bound of the float64 dot of dequantized rows (worst %.3f)", name(t), worst_deq);
    check(worst_deq <= 1.0, buf);
    check(exact_equal, std::string(name(t)) + ": vec_dot on small exact values identical on both paths and exact");
  }

  // Real use: quantized weights against activations quantized from floats, and the reference
  // dots against the float64 dot of the unquantized floats must only differ by quantization.
  for (GgmlType t : kTypes) {
    bool ok = true;
    for (int rep = 0; rep < 10; ++rep) {
      const int64_t n = 1024;
      std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
      for (float& v : x) v = std::normal_distribution<float>(0.0f, 1.0f)(g_rng);
      for (float& v : y) v = std::normal_distribution<float>(0.0f, 1.0f)(g_rng);
      std::vector<uint8_t> w(weft::ggml_row_bytes(t, n)), a(weft::ggml_row_bytes(GgmlType::Q8_K, n));
      cpu::quantize_row(t, x.data(), w.data(), n);
      cpu::quantize_row(GgmlType::Q8_K, y.data(), a.data(), n);
      double exact = 0;
      for (int64_t i = 0; i < n; ++i) exact += double(x[size_t(i)]) * y[size_t(i)];
      const float f = cpu::vec_dot(t, n, w.data(), a.data());
      // sqrt(n) * (weight quantization rms ~ 0.15 for 4 bits) with a wide margin.
      ok &= std::fabs(f - exact) < 0.25 * std::sqrt(double(n));
    }
    check(ok, std::string(name(t)) + ": quantized dot of N(0,1) rows is within quantization noise of the float dot");
  }
}

// ---- matmul batch invariance -----------------------------------------------------------------
bool matmul_invariant(GgmlType t, int64_t n, int64_t rows, int n_tok, bool random_splits) {
  const size_t w_row = weft::ggml_row_bytes(t, n), a_row = weft::ggml_row_bytes(GgmlType::Q8_K, n) + 8;
  std::vector<uint8_t> w(w_row * size_t(rows)), act(a_row * size_t(n_tok));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<uint8_t> row = raw_weights(t, n, r % 5 == 4 ? Kind::MaxCodes : Kind::Random);
    std::memcpy(w.data() + r * w_row, row.data(), w_row);
  }
  for (int i = 0; i < n_tok; ++i) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = std::normal_distribution<float>(0.0f, 1.0f)(g_rng);
    cpu::quantize_row(GgmlType::Q8_K, x.data(), act.data() + i * a_row, n);
  }
  const int64_t y_stride = rows + 3;
  std::vector<float> y(size_t(y_stride) * size_t(n_tok), NAN);
  if (random_splits) {
    int64_t r0 = 0;
    while (r0 < rows) {
      const int64_t r1 = std::min<int64_t>(rows, r0 + 1 + irand(0, 22));
      cpu::matmul(t, n, w.data(), w_row, act.data(), a_row, n_tok, y.data(), y_stride, r0, r1);
      r0 = r1;
    }
  } else {
    cpu::matmul(t, n, w.data(), w_row, act.data(), a_row, n_tok, y.data(), y_stride, 0, rows);
  }
  for (int i = 0; i < n_tok; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      const float want = cpu::vec_dot(t, n, w.data() + r * w_row, act.data() + i * a_row);
      if (bits(y[size_t(i * y_stride + r)]) != bits(want)) return false;
    }
    for (int64_t r = rows; r < y_stride; ++r) {
      if (!std::isnan(y[size_t(i * y_stride + r)])) return false;  // wrote outside [r_begin, r_end)
    }
  }
  return true;
}

void test_matmul() {
  const int tok_counts[] = {1, 2, 3, 4, 5, 7, 8, 13};
  struct Shape {
    int64_t n, rows;
  };
  // {16384, 61}: rows of 9-13 KiB, so tiles span several 256 KiB chunks of weight rows.
  const Shape shapes[] = {{256, 9}, {512, 37}, {1536, 21}, {4864, 19}, {16384, 61}};
  for (const char* backend : {"avx512", "avx2", "scalar"}) {
    if (!cpu::force_kernels(backend)) {
      std::printf("skip matmul invariance on %s: not available on this CPU or build\n", backend);
      continue;
    }
    const bool ref = std::strcmp(backend, "scalar") == 0;
    for (GgmlType t : kTypes) {
      bool ok = true;
      for (const Shape& s : shapes) {
        for (int n_tok : tok_counts) {
          if (ref && s.n * s.rows > 4864 * 19 && n_tok > 3) continue;  // the reference is slow
          ok &= matmul_invariant(t, s.n, s.rows, n_tok, false);
          ok &= matmul_invariant(t, s.n, s.rows, n_tok, true);
        }
      }
      check(ok, std::string(name(t)) + ": matmul (" + cpu::kernel_backend() +
                    ") == vec_dot bitwise for n_tok in {1,2,3,4,5,7,8,13} and random row splits");
    }
  }
  cpu::force_kernels(nullptr);

  // Threads split the rows: equal to one call, bit for bit.
  cpu::ThreadPool pool(3);
  const int64_t n = 1536, rows = 301;
  const int n_tok = 6;
  for (GgmlType t : kTypes) {
    const size_t w_row = weft::ggml_row_bytes(t, n), a_row = weft::ggml_row_bytes(GgmlType::Q8_K, n);
    std::vector<uint8_t> w(w_row * rows), act(a_row * n_tok);
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<uint8_t> row = raw_weights(t, n, Kind::Random);
      std::memcpy(w.data() + r * w_row, row.data(), w_row);
    }
    for (int i = 0; i < n_tok; ++i) {
      const std::vector<uint8_t> row = raw_act(n, Kind::Random);
      std::memcpy(act.data() + i * a_row, row.data(), a_row);
    }
    std::vector<float> y1(rows * n_tok), y3(rows * n_tok);
    cpu::matmul(t, n, w.data(), w_row, act.data(), a_row, n_tok, y1.data(), rows, 0, rows);
    pool.run([&](int tid, int nth) {
      const int64_t r0 = rows * tid / nth, r1 = rows * (tid + 1) / nth;
      cpu::matmul(t, n, w.data(), w_row, act.data(), a_row, n_tok, y3.data(), rows, r0, r1);
    });
    check(same_bits(y1, y3), std::string(name(t)) + ": matmul split over 3 pool threads == one call, bitwise");
  }
}

// The AVX-512 build of these dots promises the AVX2 build's bits (quants-k-avx2.cc says why):
// matmul at 1-6 activation rows and vec_dot, on every raw kind of weights and activations
// (extreme codes and scales, -128 activations), compared bit for bit.
void test_avx512_matches_avx2() {
  if (!cpu::force_kernels("avx512")) {
    std::printf("skip AVX-512 == AVX2 checks: this CPU (or build) has no AVX-512 F/BW/VL/VNNI\n");
    return;
  }
  cpu::force_kernels(nullptr);
  const int64_t sizes[] = {256, 1536, 4864};
  for (GgmlType t : kTypes) {
    bool same = true;
    int cases = 0;
    for (int64_t n : sizes) {
      for (Kind kind : kKinds) {
        const int64_t rows = 7;
        const int n_tok = 6;
        const size_t w_row = weft::ggml_row_bytes(t, n), a_row = weft::ggml_row_bytes(GgmlType::Q8_K, n);
        std::vector<uint8_t> w(w_row * rows), act(a_row * n_tok);
        for (int64_t r = 0; r < rows; ++r) {
          const std::vector<uint8_t> row = raw_weights(t, n, r % 2 ? Kind::Random : kind);
          std::memcpy(w.data() + r * w_row, row.data(), w_row);
        }
        for (int i = 0; i < n_tok; ++i) {
          const std::vector<uint8_t> row = raw_act(n, i % 2 ? Kind::Random : kind);
          std::memcpy(act.data() + i * a_row, row.data(), a_row);
        }
        same &= avx512_matches_avx2(t, n, rows, w.data(), w_row, act.data(), a_row, n_tok);
        cases += n_tok;
      }
    }
    check(same, std::string(name(t)) + ": matmul and vec_dot on avx512 == avx2 bitwise (" +
                    std::to_string(cases) + " cases: 1-6 activation rows, every raw kind)");
  }
}

}  // namespace

int main() {
  g_rng.seed(4242);
  cpu::force_kernels(nullptr);
  g_have_fast = !on_scalar();
  std::printf("kernel backend: %s\n", cpu::kernel_backend());
  if (!g_have_fast) {
    std::printf("note: no fast backend here (no AVX2 or WEFT_KERNELS=scalar); fast-vs-reference "
                "checks compare the reference with itself\n");
  }
  test_api();
  test_layouts();
  test_quantize_q8_k();
  test_quantize_weights();
  test_vec_dot();
  test_matmul();
  test_avx512_matches_avx2();
  return summary();
}
