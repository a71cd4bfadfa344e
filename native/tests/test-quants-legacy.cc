// Tests for the legacy quant kernels (Q4_0, Q5_0 with Q8_0 activations; Q4_1, Q5_1 with Q8_1):
// the layouts against an independent decoder, the reference quantizers' bytes and error, the
// Q8_1 quantizer on both paths, the fast vec_dot against the reference and both against exact
// arithmetic on random and extreme blocks, and matmul == vec_dot bitwise (batch invariance).
// Plain executable: one line per check, a summary, non-zero exit on failure. Never times anything.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
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

const GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1};
const char* name(GgmlType t) { return weft::ggml_type_name(t); }
constexpr int QK = 32;
constexpr double kU = 0x1p-24;     // unit roundoff of f32
constexpr double kSub = 0x1p-149;  // spacing of f32 subnormals

bool has_min(GgmlType t) { return t == GgmlType::Q4_1 || t == GgmlType::Q5_1; }
bool five_bit(GgmlType t) { return t == GgmlType::Q5_0 || t == GgmlType::Q5_1; }
int offset(GgmlType t) { return has_min(t) ? 0 : five_bit(t) ? 16 : 8; }
int max_code(GgmlType t) { return five_bit(t) ? 31 : 15; }
GgmlType act_type(GgmlType t) { return has_min(t) ? GgmlType::Q8_1 : GgmlType::Q8_0; }
size_t block_bytes(GgmlType t) { return weft::ggml_type_traits(t).bytes; }
size_t row_bytes(GgmlType t, int64_t n) { return weft::ggml_row_bytes(t, n); }

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
uint16_t get16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
double half(const uint8_t* p) { return cpu::fp16_to_f32(get16(p)); }

// ---- an independent decoder of the GGUF layouts, by byte offset ----------------------------------
// Written from ggml's block structs: d first; m next for the _1 types; then qh (5-bit types) as a
// little-endian uint32; then qs, weight j in the low nibble of qs[j], weight j+16 in the high one.
struct Decoded {
  double d = 0, m = 0;
  int q[QK];  // codes minus the _0 types' offset
};

Decoded decode(GgmlType t, const uint8_t* blk) {
  Decoded r;
  r.d = half(blk);
  size_t at = 2;
  if (has_min(t)) {
    r.m = half(blk + 2);
    at = 4;
  }
  uint32_t qh = 0;
  if (five_bit(t)) {
    std::memcpy(&qh, blk + at, 4);
    at += 4;
  }
  const uint8_t* qs = blk + at;
  for (int j = 0; j < QK; ++j) {
    int code = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
    code |= static_cast<int>((qh >> j) & 1) << 4;
    r.q[j] = code - offset(t);
  }
  return r;
}

// Activation blocks: Q8_0 = [d][32 q], Q8_1 = [d][s][32 q].
size_t act_q_at(GgmlType at) { return at == GgmlType::Q8_1 ? 4 : 2; }
int act_q(GgmlType at, const uint8_t* blk, int j) { return static_cast<int8_t>(blk[act_q_at(at) + j]); }

// ---- raw blocks ------------------------------------------------------------------------------
enum class Kind { Random, Zero, MaxCodes, MinCodes, Tiny, Huge, Mixed };
const Kind kKinds[] = {Kind::Random, Kind::Zero, Kind::MaxCodes, Kind::MinCodes,
                       Kind::Tiny,   Kind::Huge, Kind::Mixed};
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Random: return "random";
    case Kind::Zero: return "zero";
    case Kind::MaxCodes: return "max codes";
    case Kind::MinCodes: return "min codes";
    case Kind::Tiny: return "tiny d";
    case Kind::Huge: return "huge d";
    case Kind::Mixed: return "mixed";
  }
  return "?";
}

uint16_t signed_half(float lo, float hi) {
  return cpu::f32_to_fp16(uniform(lo, hi) * ((g_rng() & 1) ? 1.0f : -1.0f));
}

// A weight row of n elements. MaxCodes / MinCodes set every code bit / none; Tiny puts d and m at
// fp16 subnormals, Huge at +-65504 (the largest half); Mixed draws a kind per block.
std::vector<uint8_t> raw_weights(GgmlType t, int64_t n, Kind kind) {
  const size_t bb = block_bytes(t);
  std::vector<uint8_t> row(row_bytes(t, n));
  for (size_t b = 0; b < row.size() / bb; ++b) {
    uint8_t* blk = row.data() + b * bb;
    Kind k = kind;
    if (k == Kind::Mixed) k = kKinds[irand(0, 5)];
    for (size_t i = 0; i < bb; ++i) blk[i] = static_cast<uint8_t>(g_rng());
    uint16_t d = signed_half(1e-4f, 0.5f), m = signed_half(1e-4f, 2.0f);
    const size_t codes_at = has_min(t) ? 4 : 2;
    switch (k) {
      case Kind::Zero: std::memset(blk, 0, bb); d = m = 0; break;
      case Kind::MaxCodes: std::memset(blk + codes_at, 0xFF, bb - codes_at); break;
      case Kind::MinCodes: std::memset(blk + codes_at, 0, bb - codes_at); break;
      case Kind::Tiny:
        d = static_cast<uint16_t>(irand(1, 0x3ff) | (g_rng() & 0x8000));
        m = static_cast<uint16_t>(irand(1, 0x3ff) | (g_rng() & 0x8000));
        break;
      case Kind::Huge:
        d = static_cast<uint16_t>(0x7bff | (g_rng() & 0x8000));
        m = static_cast<uint16_t>(0x7bff | (g_rng() & 0x8000));
        break;
      default: break;
    }
    put16(blk, d);
    if (has_min(t)) put16(blk + 2, m);
  }
  return row;
}

// An activation row of type at whose int8 codes may be anything, -128 included (quantize_row
// never writes it, but a caller's row may hold it). Q8_1's s is drawn freely too: the kernels
// use it as stored.
std::vector<uint8_t> raw_act(GgmlType at, int64_t n, Kind kind) {
  const size_t bb = weft::ggml_type_traits(at).bytes;
  std::vector<uint8_t> row(row_bytes(at, n));
  for (size_t b = 0; b < row.size() / bb; ++b) {
    uint8_t* blk = row.data() + b * bb;
    Kind k = kind;
    if (k == Kind::Mixed) k = kKinds[irand(0, 5)];
    uint16_t d = signed_half(1e-3f, 1.0f), s = signed_half(1e-2f, 100.0f);
    for (int j = 0; j < QK; ++j) {
      int q = static_cast<int8_t>(g_rng());
      if (k == Kind::Zero) q = 0;
      if (k == Kind::MaxCodes) q = j % 3 ? 127 : -128;
      if (k == Kind::MinCodes) q = j % 2 ? 1 : -1;
      blk[act_q_at(at) + j] = static_cast<uint8_t>(q);
    }
    if (k == Kind::Zero) d = s = 0;
    if (k == Kind::Tiny) d = static_cast<uint16_t>(irand(1, 0x3ff)), s = static_cast<uint16_t>(irand(1, 0x3ff));
    if (k == Kind::Huge) d = 0x7bff, s = 0xfbff;
    put16(blk, d);
    if (at == GgmlType::Q8_1) put16(blk + 2, s);
  }
  return row;
}

// An activation row as the forward pass makes it: random floats quantized on the active path.
std::vector<uint8_t> quantized_act(GgmlType at, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal() * std::exp(uniform(-2.0f, 2.0f));
  std::vector<uint8_t> row(row_bytes(at, n));
  cpu::quantize_row(at, x.data(), row.data(), n);
  return row;
}

// ---- exact dots and error bounds -------------------------------------------------------------
// value: the dot the kernels compute, in exact arithmetic (to double rounding): per block
// d_w d_a sum((q_w - off) q_a), plus m_w s_a for the _1 types (s as stored). abs: the same with
// every 4-element partial sum and every term taken in absolute value, which bounds every partial
// sum either path forms.
struct Exact {
  double value = 0, abs = 0;
};

Exact exact_dot(GgmlType t, const uint8_t* w, const uint8_t* a, int64_t n) {
  const GgmlType at = act_type(t);
  const size_t ab = weft::ggml_type_traits(at).bytes;
  Exact e;
  for (int64_t b = 0; b < n / QK; ++b) {
    const Decoded x = decode(t, w + b * block_bytes(t));
    const uint8_t* y = a + b * ab;
    const double da = half(y);
    double sumi = 0, absi = 0;
    for (int k = 0; k < 8; ++k) {
      double quad = 0;
      for (int j = 4 * k; j < 4 * k + 4; ++j) quad += static_cast<double>(x.q[j]) * act_q(at, y, j);
      sumi += quad;
      absi += std::fabs(quad);
    }
    e.value += x.d * da * sumi;
    e.abs += std::fabs(x.d * da) * absi;
    if (has_min(t)) {
      e.value += x.m * half(y + 2);
      e.abs += std::fabs(x.m * half(y + 2));
    }
  }
  return e;
}

// Fast path: per block the scale product (1 rounding) and an fma into the output's chain (Q4_0)
// or lane chain, the m s product and its running sum, then 4 adds: within (nb + 8) u abs.
// Reference: per block 2-3 roundings, then nb sequential f32 adds: within (nb + 4) u abs.
// Tiny scales can land among f32 subnormals: an absolute kSub per operation on top.
double bound_fast(int64_t n, const Exact& e) { return (n / QK + 8) * kU * e.abs + kSub * (4 * n + 16); }
double bound_ref(int64_t n, const Exact& e) { return (n / QK + 4) * kU * e.abs + kSub * (4 * n + 16); }

double vec_dot_on(bool ref, GgmlType t, int64_t n, const uint8_t* w, const uint8_t* a) {
  if (ref) return on_ref([&] { return cpu::vec_dot(t, n, w, a); });
  return cpu::vec_dot(t, n, w, a);
}

std::vector<float> dequantized(GgmlType t, const uint8_t* row, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  on_ref([&] {
    cpu::dequantize_row(t, row, x.data(), n);
    return 0;
  });
  return x;
}

// The fast path's arithmetic as quants-legacy-avx2.cc documents it (llama.cpp's on x86), replayed
// in scalar f32: Q4_0 one fma chain over exact block sums; the other types eight chains over
// exact 4-element sums, reduced as _mm256 -> _mm hsum does, plus the running m_w * s_a sum.
float ggml_order_dot(GgmlType t, const uint8_t* w, const uint8_t* a, int64_t n) {
  const GgmlType at = act_type(t);
  const size_t ab = weft::ggml_type_traits(at).bytes;
  float acc[8] = {}, summs = 0.0f;
  for (int64_t b = 0; b < n / QK; ++b) {
    const Decoded x = decode(t, w + b * block_bytes(t));
    const uint8_t* y = a + b * ab;
    const float dwda = static_cast<float>(x.d) * static_cast<float>(half(y));
    int lane[8] = {};
    for (int j = 0; j < QK; ++j) lane[j / 4] += x.q[j] * act_q(at, y, j);
    if (t == GgmlType::Q4_0) {
      int sumi = 0;
      for (int k = 0; k < 8; ++k) sumi += lane[k];
      acc[0] = std::fma(static_cast<float>(sumi), dwda, acc[0]);
      continue;
    }
    for (int k = 0; k < 8; ++k) acc[k] = std::fma(dwda, static_cast<float>(lane[k]), acc[k]);
    if (has_min(t)) summs += static_cast<float>(x.m) * static_cast<float>(half(y + 2));
  }
  if (t == GgmlType::Q4_0) return acc[0];
  const float s0 = acc[0] + acc[4], s1 = acc[1] + acc[5], s2 = acc[2] + acc[6], s3 = acc[3] + acc[7];
  return ((s0 + s2) + (s1 + s3)) + summs;
}

// ---- API -------------------------------------------------------------------------------------
void test_api() {
  bool ok = !cpu::type_supported(GgmlType::Q8_1);
  for (GgmlType t : kTypes) ok &= cpu::type_supported(t) && cpu::vec_dot_type(t) == act_type(t);
  check(ok, "Q4_0 Q5_0 -> Q8_0 and Q4_1 Q5_1 -> Q8_1 activations; Q8_1 is not a weight type");
  float f[64] = {};
  uint8_t bytes[256] = {};
  ok = throws_code([&] { cpu::vec_dot(GgmlType::Q5_0, 48, bytes, bytes); }, ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::quantize_row(GgmlType::Q8_1, f, bytes, 40); }, ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::dequantize_row(GgmlType::Q4_1, bytes, f, 16); }, ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::matmul(GgmlType::Q4_0, 32, bytes, 17, bytes, 34, 1, f, 1, 0, 1); },
                   ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::matmul(GgmlType::Q5_1, 32, bytes, 24, bytes, 35, 1, f, 1, 0, 1); },
                   ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::vec_dot(GgmlType::Q8_1, 32, bytes, bytes); }, ErrorCode::Unsupported);
  check(ok, "rows not a multiple of 32, short strides: E_INVALID_ARGUMENT; Q8_1 weights: E_UNSUPPORTED");
}

// ---- layouts and dequantization ---------------------------------------------------------------
// The reference dequantizer against the decoder above, bit for bit: ggml forms (q - off) * d for
// the _0 types and q * d + m (two f32 roundings) for the _1 types.
void test_dequantize() {
  for (GgmlType t : kTypes) {
    bool ok = true;
    for (Kind k : kKinds) {
      const std::vector<uint8_t> w = raw_weights(t, 256, k);
      const std::vector<float> deq = dequantized(t, w.data(), 256);
      for (int64_t b = 0; b < 8; ++b) {
        const Decoded x = decode(t, w.data() + b * block_bytes(t));
        for (int j = 0; j < QK; ++j) {
          float want = static_cast<float>(x.q[j]) * static_cast<float>(x.d);
          if (has_min(t)) want += static_cast<float>(x.m);
          const float got = deq[size_t(b * QK + j)];
          ok &= std::memcmp(&want, &got, 4) == 0 || (std::isnan(want) && std::isnan(got));
        }
      }
    }
    // And the other way: a hand-built block with known codes 0..max, for each element.
    std::vector<uint8_t> blk(block_bytes(t), 0);
    put16(blk.data(), cpu::f32_to_fp16(0.5f));
    if (has_min(t)) put16(blk.data() + 2, cpu::f32_to_fp16(-3.0f));
    uint8_t* qs = blk.data() + blk.size() - 16;
    uint32_t qh = 0;
    for (int j = 0; j < QK; ++j) {
      const int code = j % (max_code(t) + 1);
      qs[j % 16] |= static_cast<uint8_t>((code & 15) << (j < 16 ? 0 : 4));
      qh |= static_cast<uint32_t>(code >> 4) << j;
    }
    if (five_bit(t)) std::memcpy(blk.data() + (has_min(t) ? 4 : 2), &qh, 4);
    const std::vector<float> deq = dequantized(t, blk.data(), 32);
    for (int j = 0; j < QK; ++j) {
      const int code = j % (max_code(t) + 1);
      ok &= deq[size_t(j)] == (has_min(t) ? 0.5f * code - 3.0f : 0.5f * (code - offset(t)));
    }
    check(ok, std::string(name(t)) + ": dequantize_row matches an independent decoder of the layout, bitwise");
  }
  // Q8_1 rows dequantize as d * q (s is only for the dot).
  const std::vector<uint8_t> a = raw_act(GgmlType::Q8_1, 128, Kind::Random);
  const std::vector<float> deq = dequantized(GgmlType::Q8_1, a.data(), 128);
  bool ok = true;
  for (int64_t i = 0; i < 128; ++i) {
    const uint8_t* blk = a.data() + (i / QK) * 36;
    ok &= deq[size_t(i)] == static_cast<float>(act_q(GgmlType::Q8_1, blk, int(i % QK)) * half(blk));
  }
  check(ok, "Q8_1: dequantize_row gives d * q");
}

// ---- quantizers --------------------------------------------------------------------------------
// Rows for the quantizer tests, one block each of several shapes of data.
std::vector<float> quantizer_input(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t b = 0; b < n / QK; ++b) {
    float* v = x.data() + b * QK;
    const int shape = int(b % 6);
    const float scale = std::exp(uniform(-12.0f, 8.0f));
    for (int j = 0; j < QK; ++j) {
      switch (shape) {
        case 0: v[j] = normal() * scale; break;                              // Gaussian
        case 1: v[j] = 0.0f; break;                                          // all zero
        case 2: v[j] = 0.75f * scale; break;                                 // constant
        case 3: v[j] = j == 7 ? 50.0f * scale : normal() * scale; break;     // one outlier
        case 4: v[j] = uniform(0.0f, 1.0f) * scale + 3.0f * scale; break;    // all positive
        default: v[j] = static_cast<float>(irand(-16, 15)) * scale; break;   // a grid
      }
    }
  }
  return x;
}

// dequantize(quantize(x)) against x, per element, with the bound the rounding rule allows:
//   _0 types: d = max / -off in f32 and q = min(2 off - 1, trunc(x / d + off + 0.5)), so an
//   element is within d/2 of (q - off) d, or within d when it is capped at the top code (x / d in
//   (off - 1/2, off]); then d is stored as fp16, moving (q - off) d by |q - off| |d - d16|.
//   _1 types: d = (max - min) / (2^bits - 1), codes within d/2 of (x - min) / d; storing d and m
//   as fp16 moves the result by q |d - d16| + |min - m16|, and q d16 + m16 rounds twice in f32.
// Code errors carry a relative slack of 1e-4 for the f32 arithmetic that forms x / d.
void test_quantize_weights() {
  const int64_t n = 32 * 60;
  for (GgmlType t : kTypes) {
    const std::vector<float> x = quantizer_input(n);
    std::vector<uint8_t> q(row_bytes(t, n));
    cpu::quantize_row(t, x.data(), q.data(), n);
    const std::vector<float> back = dequantized(t, q.data(), n);
    bool ok = true;
    double worst = 0;  // largest error in units of its own block's d
    for (int64_t b = 0; b < n / QK; ++b) {
      const float* v = x.data() + b * QK;
      const Decoded dec = decode(t, q.data() + b * block_bytes(t));
      if (has_min(t)) {
        const float mn = *std::min_element(v, v + QK), mx = *std::max_element(v, v + QK);
        const double d = (mx - mn) / static_cast<float>(max_code(t));
        for (int j = 0; j < QK; ++j) {
          const double got = back[size_t(b * QK + j)];
          const double bound = 0.5001 * d + dec.q[j] * std::fabs(d - dec.d) + std::fabs(mn - dec.m) +
                               2 * kU * (dec.q[j] * std::fabs(dec.d) + std::fabs(dec.m)) + kSub;
          ok &= std::fabs(got - v[j]) <= bound;
          if (d > 0) worst = std::max(worst, std::fabs(got - v[j]) / d);
        }
      } else {
        float amax = 0, mx = 0;
        for (int j = 0; j < QK; ++j) {
          if (amax < std::fabs(v[j])) amax = std::fabs(v[j]), mx = v[j];
        }
        const int off = offset(t);
        const double d = mx / static_cast<float>(-off);
        for (int j = 0; j < QK; ++j) {
          const double got = back[size_t(b * QK + j)];
          const bool capped = d != 0 && v[j] / d > off - 0.5;
          const double bound = (capped ? 1.0001 : 0.5001) * std::fabs(d) +
                               std::abs(dec.q[j]) * std::fabs(d - dec.d) + kU * std::fabs(got) + kSub;
          ok &= std::fabs(got - v[j]) <= bound;
          if (d != 0) worst = std::max(worst, std::fabs(got - v[j]) / std::fabs(d));
        }
        // The element of largest magnitude gets code 0 (exactly -off after the offset).
        if (amax > 0) {
          const int first = int(std::find_if(v, v + QK, [&](float e) { return std::fabs(e) == amax; }) - v);
          ok &= dec.q[first] == -off;
        }
      }
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, " (worst %.3f d)", worst);
    check(ok, std::string(name(t)) + ": dequantize(quantize(x)) within the rounding bound per element" + buf);
  }

  // Bytes of hand-computed blocks: ggml's rule on data whose codes are known.
  {
    // Q4_0: x = j % 16 - 8 (first -8 at j = 0): max = -8, d = 1, q = x + 8 = j % 16.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j % 16 - 8);
    uint8_t b[18];
    cpu::quantize_row(GgmlType::Q4_0, x.data(), b, 32);
    bool ok = get16(b) == cpu::f32_to_fp16(1.0f);
    for (int j = 0; j < 16; ++j) ok &= b[2 + j] == (j | (j << 4));
    // Q5_0: x = j - 16: max = -16 at j = 0, d = 1, q = j: low nibbles j & 15, qh = 0xFFFF0000.
    for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j - 16);
    uint8_t c[22];
    cpu::quantize_row(GgmlType::Q5_0, x.data(), c, 32);
    uint32_t qh;
    std::memcpy(&qh, c + 2, 4);
    ok &= get16(c) == cpu::f32_to_fp16(1.0f) && qh == 0xFFFF0000u;
    for (int j = 0; j < 16; ++j) ok &= c[6 + j] == (j | (j << 4));
    // Q4_1: x = 2 + 0.25 * (j % 16): min 2, d = 0.25, q = j % 16.
    for (int j = 0; j < 32; ++j) x[size_t(j)] = 2.0f + 0.25f * float(j % 16);
    uint8_t e[20];
    cpu::quantize_row(GgmlType::Q4_1, x.data(), e, 32);
    ok &= get16(e) == cpu::f32_to_fp16(0.25f) && get16(e + 2) == cpu::f32_to_fp16(2.0f);
    for (int j = 0; j < 16; ++j) ok &= e[4 + j] == (j | (j << 4));
    // Q5_1: x = -1 + 0.5 * (31 - j): min -1, d = 0.5, q = 31 - j.
    for (int j = 0; j < 32; ++j) x[size_t(j)] = -1.0f + 0.5f * float(31 - j);
    uint8_t g[24];
    cpu::quantize_row(GgmlType::Q5_1, x.data(), g, 32);
    std::memcpy(&qh, g + 4, 4);
    ok &= get16(g) == cpu::f32_to_fp16(0.5f) && get16(g + 2) == cpu::f32_to_fp16(-1.0f) && qh == 0x0000FFFFu;
    for (int j = 0; j < 16; ++j) ok &= g[8 + j] == (((31 - j) & 15) | ((15 - j) << 4));
    // ggml truncates x / d + off + 0.5: a code exactly halfway rounds up (Q4_0: x / d = 0.5 -> 9).
    for (int j = 0; j < 32; ++j) x[size_t(j)] = j == 0 ? -8.0f : 0.5f;
    cpu::quantize_row(GgmlType::Q4_0, x.data(), b, 32);
    ok &= b[2] == (0 | (9 << 4)) && b[3] == (9 | (9 << 4));
    check(ok, "quantizers write ggml's bytes for hand-computed blocks (layout, scale, m, ties)");
  }

  // NaN / inf / huge input: defined bytes, no trap, identical whichever path is active.
  for (GgmlType t : kTypes) {
    std::vector<float> x = quantizer_input(128);
    x[3] = NAN, x[40] = INFINITY, x[70] = -INFINITY;
    for (int j = 96; j < 128; ++j) x[size_t(j)] = NAN;
    std::vector<uint8_t> a(row_bytes(t, 128)), b(row_bytes(t, 128));
    cpu::quantize_row(t, x.data(), a.data(), 128);
    on_ref([&] {
      cpu::quantize_row(t, x.data(), b.data(), 128);
      return 0;
    });
    check(a == b, std::string(name(t)) + ": quantize_row of NaN/inf gives the same bytes on both paths");
  }
}

// Q8_1 as ggml's x86 path: d = amax / 127 (stored as fp16), q = round-half-even(x * 127 / amax),
// s = fp16(d * sum q) with the f32 d; and the fast quantizer byte-identical to the reference.
void test_quantize_q8_1() {
  const int64_t n = 32 * 40;
  std::vector<float> x = quantizer_input(n);
  for (int j = 0; j < 32; ++j) x[size_t(32 * 5 + j)] = float(j % 2 ? 127 - j : -254 + 3 * j) * 0.5f;  // ties
  std::vector<uint8_t> q(row_bytes(GgmlType::Q8_1, n));
  on_ref([&] {
    cpu::quantize_row(GgmlType::Q8_1, x.data(), q.data(), n);
    return 0;
  });
  bool ok = true;
  for (int64_t b = 0; b < n / QK; ++b) {
    const float* v = x.data() + b * QK;
    const uint8_t* blk = q.data() + b * 36;
    float amax = 0;
    for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; ++j) {
      const int want = static_cast<int>(std::nearbyint(v[j] * id));
      ok &= act_q(GgmlType::Q8_1, blk, j) == want;
      sum += want;
    }
    ok &= get16(blk) == cpu::f32_to_fp16(d) && get16(blk + 2) == cpu::f32_to_fp16(d * static_cast<float>(sum));
  }
  check(ok, "Q8_1 reference quantizer: d = amax/127, ties to even, s = fp16(d * sum q)");

  if (!g_have_fast) return;
  std::vector<uint8_t> fast(q.size());
  cpu::quantize_row(GgmlType::Q8_1, x.data(), fast.data(), n);
  ok = fast == q;
  std::vector<float> y = quantizer_input(128);
  y[1] = NAN, y[33] = INFINITY, y[34] = -INFINITY, y[64] = 3e38f, y[65] = -3e38f;
  for (int j = 96; j < 128; ++j) y[size_t(j)] = NAN;
  std::vector<uint8_t> a(row_bytes(GgmlType::Q8_1, 128)), c(a.size());
  cpu::quantize_row(GgmlType::Q8_1, y.data(), a.data(), 128);
  on_ref([&] {
    cpu::quantize_row(GgmlType::Q8_1, y.data(), c.data(), 128);
    return 0;
  });
  check(ok && a == c, "Q8_1 fast quantizer is byte-identical to the reference (incl. ties, NaN, inf)");
}

// ---- vec_dot -----------------------------------------------------------------------------------
// Fast and reference dots against the exact value on every kind of weight and activation block,
// and the reference against a float64 dot of the dequantized rows.
void test_vec_dot() {
  const int64_t sizes[] = {32, 64, 96, 576, 4864};
  for (GgmlType t : kTypes) {
    const GgmlType at = act_type(t);
    bool ok_ref = true, ok_fast = true;
    double worst_ref = 0, worst_fast = 0;
    for (int64_t n : sizes) {
      for (Kind wk : kKinds) {
        for (int ak = -1; ak < int(std::size(kKinds)); ++ak) {
          const std::vector<uint8_t> w = raw_weights(t, n, wk);
          const std::vector<uint8_t> a = ak < 0 ? quantized_act(at, n) : raw_act(at, n, kKinds[ak]);
          const Exact e = exact_dot(t, w.data(), a.data(), n);
          const double r = vec_dot_on(true, t, n, w.data(), a.data());
          const double br = bound_ref(n, e);
          ok_ref &= std::fabs(r - e.value) <= br;
          worst_ref = std::max(worst_ref, std::fabs(r - e.value) / br);
          if (g_have_fast) {
            const double f = vec_dot_on(false, t, n, w.data(), a.data());
            const double bf = bound_fast(n, e);
            ok_fast &= std::fabs(f - e.value) <= bf;
            worst_fast = std::max(worst_fast, std::fabs(f - e.value) / bf);
          }
          if (!ok_ref || !ok_fast) {
            std::printf("     n=%lld weights %s acts %s: exact %.9g ref %.9g fast %.9g\n",
                        static_cast<long long>(n), kind_name(wk), ak < 0 ? "quantized" : kind_name(kKinds[ak]),
                        e.value, r, vec_dot_on(false, t, n, w.data(), a.data()));
            ok_ref = ok_fast = false;
            break;
          }
        }
      }
    }
    if (g_have_fast) {
      bool same = true;
      for (int64_t n : sizes) {
        for (Kind k : kKinds) {
          const std::vector<uint8_t> w = raw_weights(t, n, k);
          const std::vector<uint8_t> a = k == Kind::Random ? quantized_act(at, n) : raw_act(at, n, k);
          const float f = cpu::vec_dot(t, n, w.data(), a.data()), g = ggml_order_dot(t, w.data(), a.data(), n);
          same &= std::memcmp(&f, &g, 4) == 0;
        }
      }
      check(same, std::string(name(t)) + ": fast vec_dot is llama.cpp's x86 arithmetic, bit for bit" +
                      (t == GgmlType::Q4_0 ? " (repacked q4_0_8x8 order)" : " (ggml_vec_dot order)"));
    }
    char buf[128];
    std::snprintf(buf, sizeof buf, " (worst %.2f of the bound)", worst_ref);
    check(ok_ref, std::string(name(t)) + ": reference vec_dot within (nb+4)u of exact, every block kind" + buf);
    if (g_have_fast) {
      std::snprintf(buf, sizeof buf, " (worst %.2f of the bound)", worst_fast);
      check(ok_fast, std::string(name(t)) + ": fast vec_dot within (nb+8)u of exact, every block kind" + buf);
    }

    // The reference against the dequantized rows: float64 dot of dequantize_row() outputs. The
    // weights dequantize exactly for the _0 types and within 2u per element for the _1 types
    // (q d + m rounds twice); Q8_x activations exactly. For the _1 types the kernel uses the stored
    // s where the dequantized dot has d_a sum(q_a): their difference, times m_w, is added back.
    bool ok = true;
    for (int64_t n : sizes) {
      const std::vector<uint8_t> w = raw_weights(t, n, Kind::Random);
      const std::vector<uint8_t> a = quantized_act(at, n);
      const std::vector<float> wf = dequantized(t, w.data(), n), af = dequantized(at, a.data(), n);
      double dot = 0, mag = 0, deq_err = 0, s_fix = 0;
      for (int64_t i = 0; i < n; ++i) {
        dot += static_cast<double>(wf[size_t(i)]) * af[size_t(i)];
        mag += std::fabs(static_cast<double>(wf[size_t(i)]) * af[size_t(i)]);
      }
      for (int64_t b = 0; b < n / QK && has_min(t); ++b) {
        const Decoded x = decode(t, w.data() + b * block_bytes(t));
        const uint8_t* y = a.data() + b * 36;
        double sq = 0;
        for (int j = 0; j < QK; ++j) {
          sq += act_q(at, y, j);
          deq_err += 2 * kU * (std::fabs(x.q[j] * x.d) + std::fabs(x.m)) * std::fabs(af[size_t(b * QK + j)]);
        }
        s_fix += x.m * (half(y + 2) - half(y) * sq);
      }
      const Exact e = exact_dot(t, w.data(), a.data(), n);
      const double r = vec_dot_on(true, t, n, w.data(), a.data());
      const double bound = bound_ref(n, e) + deq_err + n * 0x1p-52 * mag;
      ok &= std::fabs(r - (dot + s_fix)) <= bound;
    }
    check(ok, std::string(name(t)) + ": reference vec_dot matches a float64 dot of the dequantized rows");
  }
}

// ---- matmul --------------------------------------------------------------------------------------
// matmul of rows x n weights of type t against n_tok activation rows, once whole and once split
// over 3 pool threads by rows: true where every output has the same bits.
bool split_matches_one_call(GgmlType t, int64_t n, const std::vector<uint8_t>& w, size_t wr,
                            const std::vector<uint8_t>& act, size_t ar, int n_tok, int64_t rows) {
  std::vector<float> y1(size_t(rows * n_tok)), y3(y1.size());
  cpu::matmul(t, n, w.data(), wr, act.data(), ar, n_tok, y1.data(), rows, 0, rows);
  cpu::ThreadPool pool(3);
  pool.run([&](int tid, int nth) {
    const int64_t r0 = rows * tid / nth, r1 = rows * (tid + 1) / nth;
    cpu::matmul(t, n, w.data(), wr, act.data(), ar, n_tok, y3.data(), rows, r0, r1);
  });
  return same_bits(y1, y3);
}

struct Shape {
  int64_t rows, n;
  int n_tok;
  int64_t r0, r1, y_stride;
};

// Every output of matmul equals vec_dot of its row pair bit for bit, across tile shapes
// (n_tok 1-4 decode a row once in registers, n_tok 1 two rows at a time and an odd one last, larger
// batches decode chunks of rows), row ranges
// that start and end mid-tile, chunk boundaries (4864-element rows: 13 rows per chunk), and output
// strides wider than the row count.
void test_matmul() {
  const Shape shapes[] = {
      {7, 32, 1, 0, 7, 7},        {9, 64, 2, 0, 9, 9},          {5, 96, 3, 1, 5, 6},
      {6, 576, 4, 0, 6, 6},       {11, 576, 5, 2, 11, 12},      {8, 96, 7, 0, 8, 8},
      {40, 4864, 6, 0, 40, 40},   {37, 4864, 9, 3, 35, 37},     {33, 896, 13, 0, 33, 40},
      {64, 128, 64, 0, 64, 64},   {3, 32, 17, 0, 3, 3},         {13, 896, 1, 2, 13, 13},
  };
  for (const char* backend : {"avx512", "avx2", "scalar"}) {
    if (!cpu::force_kernels(backend)) {
      std::printf("skip matmul == vec_dot on %s: not available on this CPU or build\n", backend);
      continue;
    }
    for (GgmlType t : kTypes) {
      const GgmlType at = act_type(t);
      bool ok = true;
      for (const Shape& s : shapes) {
        for (bool raw : {false, true}) {
          const size_t wr = row_bytes(t, s.n), ar = row_bytes(at, s.n);
          std::vector<uint8_t> w;
          for (int64_t r = 0; r < s.rows; ++r) {
            const std::vector<uint8_t> row = raw_weights(t, s.n, Kind::Mixed);
            w.insert(w.end(), row.begin(), row.end());
          }
          std::vector<uint8_t> act;
          for (int i = 0; i < s.n_tok; ++i) {
            const std::vector<uint8_t> row = raw ? raw_act(at, s.n, Kind::Mixed) : quantized_act(at, s.n);
            act.insert(act.end(), row.begin(), row.end());
          }
          std::vector<float> y(static_cast<size_t>(s.y_stride * s.n_tok), -7.0f);
          std::vector<float> want = y;
          auto run = [&] {
            cpu::matmul(t, s.n, w.data(), wr, act.data(), ar, s.n_tok, y.data(), s.y_stride, s.r0, s.r1);
            for (int i = 0; i < s.n_tok; ++i) {
              for (int64_t r = s.r0; r < s.r1; ++r) {
                want[size_t(i * s.y_stride + r)] = cpu::vec_dot(t, s.n, w.data() + r * wr, act.data() + i * ar);
              }
            }
            return 0;
          };
          run();
          ok &= same_bits(y, want);  // untouched outputs stay -7 in both
        }
      }
      check(ok, std::string(name(t)) + " " + backend +
                    " matmul == vec_dot bitwise for every output (12 shapes, quantized and raw activations)");
    }
  }
  cpu::force_kernels(nullptr);

  // Split over a thread pool as the forward pass does: identical to one call.
  for (GgmlType t : kTypes) {
    const GgmlType at = act_type(t);
    const int64_t rows = 50, n = 896;
    const int n_tok = 9;
    const size_t wr = row_bytes(t, n), ar = row_bytes(at, n);
    std::vector<uint8_t> w;
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<uint8_t> row = raw_weights(t, n, Kind::Random);
      w.insert(w.end(), row.begin(), row.end());
    }
    std::vector<uint8_t> act;
    for (int i = 0; i < n_tok; ++i) {
      const std::vector<uint8_t> row = quantized_act(at, n);
      act.insert(act.end(), row.begin(), row.end());
    }
    check(split_matches_one_call(t, n, w, wr, act, ar, n_tok, rows),
          std::string(name(t)) + " matmul split over 3 pool threads == one call, bitwise");
  }
}

// The AVX-512 build of these dots promises the AVX2 build's bits (quants-legacy-avx2.cc says
// why): matmul at 1-6 activation rows and vec_dot, every raw kind of weights and activations.
void test_avx512_matches_avx2() {
  if (!cpu::force_kernels("avx512")) {
    std::printf("skip AVX-512 == AVX2 checks: this CPU (or build) has no AVX-512 F/BW/VL/VNNI\n");
    return;
  }
  cpu::force_kernels(nullptr);
  const Kind kinds[] = {Kind::Random, Kind::Zero, Kind::MaxCodes, Kind::MinCodes, Kind::Tiny, Kind::Huge, Kind::Mixed};
  for (GgmlType t : kTypes) {
    const GgmlType at = act_type(t);
    bool same = true;
    int cases = 0;
    for (int64_t n : {32, 96, 576, 4864}) {
      for (Kind kind : kinds) {
        const int64_t rows = 9;
        const int n_tok = 6;
        const size_t wr = row_bytes(t, n), ar = row_bytes(at, n);
        std::vector<uint8_t> w, act;
        for (int64_t r = 0; r < rows; ++r) {
          const std::vector<uint8_t> row = raw_weights(t, n, r % 2 ? Kind::Mixed : kind);
          w.insert(w.end(), row.begin(), row.end());
        }
        for (int i = 0; i < n_tok; ++i) {
          const std::vector<uint8_t> row = raw_act(at, n, i % 2 ? Kind::Mixed : kind);
          act.insert(act.end(), row.begin(), row.end());
        }
        same &= avx512_matches_avx2(t, n, rows, w.data(), wr, act.data(), ar, n_tok);
        cases += n_tok;
      }
    }
    check(same, std::string(name(t)) + ": matmul and vec_dot on avx512 == avx2 bitwise (" +
                    std::to_string(cases) + " cases: 1-6 activation rows, every raw kind)");
  }
}

// The fifth bits of a Q5_0 block's qh as Q5_0_X8 holds them: bit 8m + v is bit 4v + m.
uint32_t spread_qh(uint32_t qh) {
  uint32_t out = 0;
  for (int v = 0; v < 8; ++v) {
    for (int m = 0; m < 4; ++m) out |= ((qh >> (4 * v + m)) & 1u) << (8 * m + v);
  }
  return out;
}

// Q4_0_X8 and Q5_0_X8, the packed layouts of Q4_0 and Q5_0 matmul weights (cpu::packed_type): the
// bytes where quants-legacy.h puts them, packing in place as out of it, and every backend's
// matmul on the packed rows == its matmul of the file type on the rows as stored, bitwise, for
// decode and batches, row ranges that cut groups, and a split over pool threads.
void test_packed(GgmlType t) {
  const GgmlType p = cpu::packed_type(t);
  const bool five = t == GgmlType::Q5_0;
  const std::string pn = name(p);
  const size_t blk_bytes = five ? 22 : 18, qs_at = five ? 6 : 2;
  check(p == (five ? GgmlType::Q5_0_X8 : GgmlType::Q4_0_X8) && cpu::row_group(p) == 8 && cpu::row_group(t) == 1 &&
            cpu::packed_type(GgmlType::Q8_0) == GgmlType::Q8_0 && cpu::packed_type(GgmlType::Q4_1) == GgmlType::Q4_1 &&
            cpu::packed_type(GgmlType::Q5_1) == GgmlType::Q5_1 && !cpu::type_supported(p) &&
            weft::ggml_type_traits(static_cast<uint32_t>(p)).name == nullptr,
        std::string(name(t)) + " packs as " + pn + " (groups of 8 rows), Q8_0/Q4_1/Q5_1 do not pack, and no file may name it");

  // Layout: 16 rows of 2 blocks whose bytes count up; qs byte 4j + k of row r's block lands at
  // vector j, lane r, byte k; Q5_0's qh, rearranged, then d, in row order.
  {
    const int64_t n = 64, rows = 16, nb = 2;
    std::vector<uint8_t> w(size_t(rows * nb) * blk_bytes);
    for (size_t i = 0; i < w.size(); ++i) w[i] = uint8_t(i * 7 + 3);
    std::vector<uint8_t> packed(w.size()), in_place = w;
    cpu::pack_rows(t, n, w.data(), packed.data(), rows);
    cpu::pack_rows(t, n, in_place.data(), in_place.data(), rows);
    bool ok = packed == in_place;
    for (int64_t g = 0; g < rows / 8; ++g) {
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* out = packed.data() + size_t(g * nb + b) * 8 * blk_bytes;
        for (int r = 0; r < 8; ++r) {
          const uint8_t* blk = w.data() + size_t((g * 8 + r) * nb + b) * blk_bytes;
          for (int j = 0; j < 4; ++j) ok &= std::memcmp(out + 32 * j + 4 * r, blk + qs_at + 4 * j, 4) == 0;
          ok &= std::memcmp(out + (five ? 160 : 128) + 2 * r, blk, 2) == 0;
          if (five) {
            uint32_t qh, got;
            std::memcpy(&qh, blk + 2, 4);
            std::memcpy(&got, out + 128 + 4 * r, 4);
            ok &= got == spread_qh(qh);
          }
        }
      }
    }
    check(ok, pn + ": pack_rows puts every byte where quants-legacy.h says, in place as out of it");
  }

  struct Case {
    int64_t rows, n;
    int n_tok;
    int64_t r0, r1;
  };
  const Case cases[] = {{8, 32, 1, 0, 8},      {16, 96, 1, 3, 13},    {24, 576, 1, 8, 16},   {40, 4864, 1, 5, 6},
                        {16, 576, 2, 0, 16},   {16, 96, 3, 7, 9},     {24, 896, 4, 1, 23},   {32, 576, 5, 0, 32},
                        {16, 4864, 6, 9, 16},  {8, 64, 9, 2, 8},      {48, 1536, 17, 16, 40}};
  const Kind kinds[] = {Kind::Random, Kind::MaxCodes, Kind::MinCodes, Kind::Mixed};
  for (const char* backend : {"avx512", "avx2", "scalar"}) {
    if (!cpu::force_kernels(backend)) {
      std::printf("skip %s matmul on %s: not available on this CPU or build\n", pn.c_str(), backend);
      continue;
    }
    bool ok = true;
    for (const Case& c : cases) {
      for (Kind kind : kinds) {
        const size_t wr = row_bytes(t, c.n), ar = row_bytes(GgmlType::Q8_0, c.n);
        std::vector<uint8_t> w, act;
        for (int64_t r = 0; r < c.rows; ++r) {
          const std::vector<uint8_t> row = raw_weights(t, c.n, r % 3 ? kind : Kind::Mixed);
          w.insert(w.end(), row.begin(), row.end());
        }
        for (int i = 0; i < c.n_tok; ++i) {
          const std::vector<uint8_t> row = i % 2 ? raw_act(GgmlType::Q8_0, c.n, Kind::Mixed) : quantized_act(GgmlType::Q8_0, c.n);
          act.insert(act.end(), row.begin(), row.end());
        }
        std::vector<uint8_t> packed(w.size());
        cpu::pack_rows(t, c.n, w.data(), packed.data(), c.rows);
        std::vector<float> want(size_t(c.rows * c.n_tok), -7.0f), got = want;
        cpu::matmul(t, c.n, w.data(), wr, act.data(), ar, c.n_tok, want.data(), c.rows, c.r0, c.r1);
        cpu::matmul(p, c.n, packed.data(), wr, act.data(), ar, c.n_tok, got.data(), c.rows, c.r0, c.r1);
        ok &= same_bits(got, want);
      }
    }
    check(ok, pn + " " + backend + " matmul == " + name(t) + " matmul on the unpacked rows bitwise (11 shapes x 4 kinds, 1-17 tokens, ranges that cut groups)");
  }
  cpu::force_kernels(nullptr);

  {
    const int64_t rows = 48, n = 896;
    const int n_tok = 3;
    const size_t wr = row_bytes(t, n), ar = row_bytes(GgmlType::Q8_0, n);
    std::vector<uint8_t> w, act;
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<uint8_t> row = raw_weights(t, n, Kind::Random);
      w.insert(w.end(), row.begin(), row.end());
    }
    for (int i = 0; i < n_tok; ++i) {
      const std::vector<uint8_t> row = quantized_act(GgmlType::Q8_0, n);
      act.insert(act.end(), row.begin(), row.end());
    }
    cpu::pack_rows(t, n, w.data(), w.data(), rows);
    bool ok = true;
    for (int tok : {1, n_tok}) ok &= split_matches_one_call(p, n, w, wr, act, ar, tok, rows);
    check(ok, pn + " matmul split over 3 pool threads == one call, bitwise (decode and a batch)");
  }

  std::vector<uint8_t> w(8 * blk_bytes * 2), a(size_t(34 * 2));
  std::vector<float> y(8);
  check(throws_code([&] { cpu::pack_rows(t, 64, w.data(), w.data(), 7); }, ErrorCode::InvalidArgument) &&
            throws_code([&] { cpu::pack_rows(GgmlType::Q8_0, 64, w.data(), w.data(), 8); }, ErrorCode::InvalidArgument) &&
            throws_code([&] { cpu::pack_rows(t, 48, w.data(), w.data(), 8); }, ErrorCode::InvalidArgument),
        "pack_rows refuses a partial group, a type with no packed layout and a bad row length");
  check(throws_code([&] { cpu::matmul(p, 64, w.data(), 2 * blk_bytes + 2, a.data(), 68, 1, y.data(), 8, 0, 8); }, ErrorCode::InvalidArgument) &&
            throws_code([&] { cpu::vec_dot(p, 64, w.data(), a.data()); }, ErrorCode::Unsupported) &&
            throws_code([&] { cpu::dequantize_row(p, w.data(), y.data(), 64); }, ErrorCode::Unsupported),
        pn + " rows have no stride of their own and cannot be read one by one (vec_dot, dequantize_row)");
}

}  // namespace

int main() {
  g_rng.seed(20250);
  g_have_fast = !on_scalar();
  std::printf("backend: %s%s\n", cpu::kernel_backend(),
              g_have_fast ? "" : " (no fast path on this CPU: fast-vs-reference checks skipped)");
  test_api();
  test_dequantize();
  test_quantize_weights();
  test_quantize_q8_1();
  test_vec_dot();
  test_matmul();
  test_avx512_matches_avx2();
  test_packed(GgmlType::Q4_0);
  test_packed(GgmlType::Q5_0);
  return summary();
}
