// Tests for native/cpu: every fast kernel against the scalar reference, batch invariance of
// matmul, fp16/bf16 conversions on special values, and the thread pool.
// Plain executable: one line per check, a summary, non-zero exit on failure. Never times anything.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
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

// ---- test data -------------------------------------------------------------------------------
enum class Fill { Normal, Mixed, Integers, Zeros, Equal, Huge, Tiny, Extremes };

// Values for rows of type t whose products and sums stay finite in f32 for n <= 4096.
//   Huge:     2^50 for f32/bf16 (products 2^100), 2^14 for F16, 2^20 for Q8_0 (d ~ 2^13).
//   Tiny:     2^-70 for f32/bf16 (products are f32 subnormals), fp16 subnormals for F16, and
//             2^-20 for Q8_0 (d is an fp16 subnormal).
//   Extremes: the largest magnitude the type holds without overflowing a sum: 65504 for F16,
//             65504 * 127 for Q8_0 (d = 65504, the largest fp16), 2^57 otherwise.
std::vector<float> make_floats(Fill fill, int64_t n, GgmlType t) {
  const bool f16 = t == GgmlType::F16, q8 = t == GgmlType::Q8_0;
  const int huge_exp = f16 ? 14 : q8 ? 20 : 50;
  const int tiny_exp = f16 ? -22 : q8 ? -20 : -70;
  const float extreme = f16 ? 65504.0f : q8 ? 65504.0f * 127.0f : std::ldexp(1.0f, 57);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) {
    const float sign = (g_rng() & 1) ? 1.0f : -1.0f;
    switch (fill) {
      case Fill::Normal: v = std::normal_distribution<float>(0.0f, 1.0f)(g_rng); break;
      case Fill::Mixed: v = sign * std::exp(uniform(-9.0f, 9.0f)); break;
      case Fill::Integers: v = static_cast<float>(static_cast<int>(g_rng() % 17) - 8); break;
      case Fill::Zeros: v = 0.0f; break;
      case Fill::Equal: v = 0.3125f; break;
      case Fill::Huge: v = sign * std::ldexp(uniform(1.0f, 2.0f), huge_exp); break;
      case Fill::Tiny: v = sign * std::ldexp(uniform(1.0f, 2.0f), tiny_exp); break;
      case Fill::Extremes: v = sign * extreme; break;
    }
  }
  return x;
}

// A row of type t holding x (quantized by the reference).
std::vector<uint8_t> to_type(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> row(weft::ggml_row_bytes(t, static_cast<int64_t>(x.size())));
  on_ref([&] {
    cpu::quantize_row(t, x.data(), row.data(), static_cast<int64_t>(x.size()));
    return 0;
  });
  return row;
}

std::vector<float> widen(GgmlType t, const std::vector<uint8_t>& row, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  on_ref([&] {
    cpu::dequantize_row(t, row.data(), x.data(), n);
    return 0;
  });
  return x;
}

// Raw Q8_0 blocks: any int8 including -128 (a file may hold it) and scales d from fp16.
std::vector<uint8_t> raw_q8_0(int64_t n, float d_lo, float d_hi) {
  std::vector<uint8_t> row(weft::ggml_row_bytes(GgmlType::Q8_0, n));
  for (int64_t b = 0; b < n / 32; ++b) {
    uint8_t* blk = row.data() + b * 34;
    const uint16_t d = cpu::f32_to_fp16(uniform(d_lo, d_hi));
    std::memcpy(blk, &d, 2);
    for (int j = 0; j < 32; ++j) blk[2 + j] = static_cast<uint8_t>(g_rng());
  }
  return row;
}

// Q8_0 blocks on which every dot is exact in f32: d a power of two in [1/4, 4], q in [-8, 8].
std::vector<uint8_t> exact_q8_0(int64_t n) {
  std::vector<uint8_t> row(weft::ggml_row_bytes(GgmlType::Q8_0, n));
  for (int64_t b = 0; b < n / 32; ++b) {
    uint8_t* blk = row.data() + b * 34;
    const uint16_t d = cpu::f32_to_fp16(std::ldexp(1.0f, static_cast<int>(g_rng() % 5) - 2));
    std::memcpy(blk, &d, 2);
    for (int j = 0; j < 32; ++j) blk[2 + j] = static_cast<uint8_t>(static_cast<int>(g_rng() % 17) - 8);
  }
  return row;
}

// ---- error bounds --------------------------------------------------------------------------
// exact = the dot in double over the exactly widened values; S = sum |w_i a_i|.
struct Exact {
  double value = 0, abs_sum = 0;
};

Exact exact_dot(const std::vector<float>& w, const std::vector<float>& a) {
  Exact e;
  for (size_t i = 0; i < w.size(); ++i) {
    const double p = static_cast<double>(w[i]) * a[i];  // exact: 24+24 bits < 53
    e.value += p;
    e.abs_sum += std::fabs(p);
  }
  return e;
}

// Q8_0: block scale d_w * d_a is exact in f32 (11-bit significands), sums are exact integers.
Exact exact_dot_q8_0(const uint8_t* w, const uint8_t* a, int64_t n) {
  Exact e;
  for (int64_t b = 0; b < n / 32; ++b) {
    uint16_t dw, da;
    std::memcpy(&dw, w + b * 34, 2);
    std::memcpy(&da, a + b * 34, 2);
    const double s = static_cast<double>(cpu::fp16_to_f32(dw)) * cpu::fp16_to_f32(da);
    int64_t sumi = 0, sumabs = 0;
    for (int j = 0; j < 32; ++j) {
      const int p = static_cast<int8_t>(w[b * 34 + 2 + j]) * static_cast<int8_t>(a[b * 34 + 2 + j]);
      sumi += p;
      sumabs += p < 0 ? -p : p;
    }
    e.value += s * static_cast<double>(sumi);
    e.abs_sum += std::fabs(s) * static_cast<double>(sumabs);
  }
  return e;
}

constexpr double kU = 0x1p-24;      // unit roundoff of f32
constexpr double kSub = 0x1p-149;   // f32 subnormal spacing: absolute error of a rounding there

// Bounds (standard recursive-summation bounds, each rounding costing at most u * |partial|):
//   AVX2 float dot: a lane adds about n/16 + 1 fmas, then acc0+acc1 and 3 hsum adds, then up to 7
//     tail fmas, so |err| <= (n/16 + 13) u S. Products of F16/BF16 values are exact in f32.
//   AVX2 Q8_0 dot: a lane adds ceil(nb/2) fmas of exact int sums, then 4 adds: (nb/2 + 6) u S.
//   Reference float dots round once from a double sum: u |exact| + n 2^-53 S.
//   Reference Q8_0 dot: one rounding per block product and one per add: (2 nb + 1) u S.
// Each gets (rounding count) * 2^-149 for roundings that land in the f32 subnormal range.
double bound_fast(GgmlType t, int64_t n, const Exact& e) {
  const double steps = t == GgmlType::Q8_0 ? std::ceil(n / 64.0) + 6 : n / 16.0 + 13;
  return steps * kU * e.abs_sum + (n + 16) * kSub;
}

double bound_ref(GgmlType t, int64_t n, const Exact& e) {
  if (t == GgmlType::Q8_0) return (2.0 * (n / 32) + 1) * kU * e.abs_sum + (n + 2) * kSub;
  return kU * std::fabs(e.value) + n * 0x1p-53 * e.abs_sum + kSub;
}

const GgmlType kWeightTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0};

// ---- conversions ---------------------------------------------------------------------------
void test_fp16_conversions() {
  // Every fp16 bit pattern: F16C (dequantize_row on the fast path) agrees with the scalar
  // conversion, and converting back gives the same bits (NaN: stays a quiet NaN).
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> scalar(65536), fast(65536);
  for (uint32_t i = 0; i < 65536; ++i) scalar[i] = cpu::fp16_to_f32(all[i]);
  cpu::dequantize_row(GgmlType::F16, all.data(), fast.data(), 65536);
  check(same_bits(scalar, fast), std::string("fp16->f32: all 65536 patterns, ") +
                                     cpu::kernel_backend() + " == scalar bitwise");
  bool round_trip = true;
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t back = cpu::f32_to_fp16(scalar[i]);
    const bool is_nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff) != 0;
    round_trip &= is_nan ? (back == (i | 0x200)) : (back == i);
  }
  check(round_trip, "fp16 -> f32 -> fp16 is the identity (NaNs come back quieted)");

  struct Case {
    float in;
    uint16_t out;
    const char* what;
  };
  const Case cases[] = {
      {0.0f, 0x0000, "+0"},
      {-0.0f, 0x8000, "-0"},
      {INFINITY, 0x7c00, "+inf"},
      {-INFINITY, 0xfc00, "-inf"},
      {65504.0f, 0x7bff, "max half"},
      {65519.996f, 0x7bff, "just below the inf threshold"},
      {65520.0f, 0x7c00, "65520 ties to even -> inf"},
      {1e10f, 0x7c00, "overflow -> inf"},
      {0x1p-14f, 0x0400, "smallest normal"},
      {0x1p-14f - 0x1p-26f, 0x0400, "rounds up into the normals"},
      {0x1p-24f, 0x0001, "smallest subnormal"},
      {0x1p-25f, 0x0000, "half the smallest subnormal ties to 0"},
      {0x1.000002p-25f, 0x0001, "just above that rounds up"},
      {3 * 0x1p-25f, 0x0002, "1.5 subnormal units tie to 2"},
      {5 * 0x1p-25f, 0x0002, "2.5 subnormal units tie to 2"},
      {1e-10f, 0x0000, "underflow -> 0"},
      {-1e-10f, 0x8000, "underflow keeps the sign"},
      {1.0f + 0x1p-11f, 0x3c00, "1 + half ulp ties to even (down)"},
      {1.0f + 3 * 0x1p-11f, 0x3c02, "1 + 1.5 ulp ties to even (up)"},
      {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01, "just above a tie rounds up"},
      {-2.0f, 0xc000, "-2"},
  };
  bool ok = true;
  for (const Case& c : cases) {
    const uint16_t got = cpu::f32_to_fp16(c.in);
    if (got != c.out) {
      ok = false;
      std::printf("     f32_to_fp16(%s): got 0x%04x want 0x%04x\n", c.what, got, c.out);
    }
  }
  const uint16_t qnan = cpu::f32_to_fp16(NAN), snan = cpu::f32_to_fp16(from_bits(0x7f800001u));
  ok &= (qnan & 0x7c00) == 0x7c00 && (qnan & 0x200) && (snan & 0x7c00) == 0x7c00 && (snan & 0x200);
  check(ok, "f32_to_fp16: zeros, infinities, NaN, overflow, subnormals, ties to even");

  // Random f32 patterns (and the cases above): the row converter (F16C when available) matches.
  std::vector<float> in(1 << 20);
  for (float& v : in) v = from_bits(static_cast<uint32_t>(g_rng()));
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) in[i] = cases[i].in;
  const size_t n = in.size() - 3;  // not a multiple of 8: the row converter's scalar tail runs
  std::vector<uint16_t> a(n), b(n);
  for (size_t i = 0; i < n; ++i) a[i] = cpu::f32_to_fp16(in[i]);
  cpu::f32_to_fp16_row(in.data(), b.data(), static_cast<int64_t>(n));
  check(a == b, "f32_to_fp16_row == f32_to_fp16 on 2^20 random bit patterns");
}

void test_bf16_conversions() {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> scalar(65536), fast(65536);
  for (uint32_t i = 0; i < 65536; ++i) scalar[i] = cpu::bf16_to_f32(all[i]);
  cpu::dequantize_row(GgmlType::BF16, all.data(), fast.data(), 65536);
  bool round_trip = true;
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t back = cpu::f32_to_bf16(scalar[i]);
    const bool is_nan = (i & 0x7f80) == 0x7f80 && (i & 0x7f) != 0;
    round_trip &= is_nan ? (back == (i | 0x40)) : (back == i);
  }
  check(same_bits(scalar, fast) && round_trip,
        "bf16: all 65536 patterns widen identically on both paths and round-trip");
  bool ok = cpu::f32_to_bf16(0.0f) == 0x0000 && cpu::f32_to_bf16(-0.0f) == 0x8000 &&
            cpu::f32_to_bf16(INFINITY) == 0x7f80 && cpu::f32_to_bf16(-INFINITY) == 0xff80 &&
            (cpu::f32_to_bf16(NAN) & 0x7fc0) == 0x7fc0 &&
            (cpu::f32_to_bf16(from_bits(0x7f800001u)) & 0x7fc0) == 0x7fc0 &&  // sNaN stays NaN
            cpu::f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80 &&       // tie -> even (down)
            cpu::f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82 &&   // tie -> even (up)
            cpu::f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81 &&
            cpu::f32_to_bf16(from_bits(0x7f7fffffu)) == 0x7f80 &&  // FLT_MAX rounds to inf
            cpu::f32_to_bf16(from_bits(0x00010000u)) == 0x0001;    // subnormals are kept
  check(ok, "f32_to_bf16: zeros, infinities, NaN, ties to even, overflow, subnormals");
}

// ---- quantize / dequantize -----------------------------------------------------------------
void test_quantize() {
  const int64_t sizes[] = {32, 64, 576, 1536, 4096};
  const Fill fills[] = {Fill::Normal, Fill::Mixed, Fill::Integers, Fill::Zeros, Fill::Equal,
                        Fill::Huge, Fill::Tiny, Fill::Extremes};
  for (GgmlType t : kWeightTypes) {
    double worst = 0;  // max |roundtrip error| / allowed
    bool same_q = true, same_dq = true;
    for (int64_t n : sizes) {
      for (Fill f : fills) {
        std::vector<float> x = make_floats(f, n, t);
        const bool ties = t == GgmlType::Q8_0 && n == 64 && f == Fill::Integers;
        if (ties) {
          // Ties round to even (ggml's x86 activation quantizer): amax 127 gives id = 1, x * id = x.
          x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.5f, x[5] = 126.5f;
        }
        const std::vector<uint8_t> ref = to_type(t, x);
        std::vector<uint8_t> fast(ref.size());
        cpu::quantize_row(t, x.data(), fast.data(), n);
        same_q &= fast == ref;
        std::vector<float> back_ref = widen(t, ref, n), back(static_cast<size_t>(n));
        cpu::dequantize_row(t, ref.data(), back.data(), n);
        same_dq &= same_bits(back, back_ref);
        if (ties) {
          const int8_t* q = reinterpret_cast<const int8_t*>(ref.data() + 2);
          same_q &= q[0] == 127 && q[1] == 2 && q[2] == -2 && q[3] == 0 && q[4] == 0 && q[5] == 126;
        }
        // Round-trip error: F16/BF16 half an ulp (relative 2^-11 / 2^-8, or half the smallest
        // fp16 subnormal 2^-25); Q8_0 half a step d (d = amax / 127) plus q times the fp16
        // rounding error of d (relative 2^-11, or absolute 2^-25 when d is subnormal), |q| <= 127.
        for (int64_t b = 0; b < n / 32; ++b) {
          float amax = 0;
          for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
          for (int j = 0; j < 32; ++j) {
            const size_t i = static_cast<size_t>(b * 32 + j);
            double allowed = 0;
            switch (t) {
              case GgmlType::F32: allowed = 0; break;
              case GgmlType::F16: allowed = std::fabs(x[i]) * 0x1p-11 + 0x1p-25; break;
              case GgmlType::BF16: allowed = std::fabs(x[i]) * 0x1p-8 + 1e-45; break;
              default: allowed = (amax / 127.0) * (0.5 + 127 * 0x1p-11) * 1.0001 + 128 * 0x1p-25; break;
            }
            const double err = std::fabs(static_cast<double>(back[i]) - x[i]);
            if (err > allowed) worst = std::fmax(worst, allowed > 0 ? err / allowed : INFINITY);
          }
        }
      }
    }
    const std::string name = weft::ggml_type_name(t);
    check(same_q, name + ": quantize_row " + cpu::kernel_backend() +
                      " == reference bitwise (incl. ties, zeros, huge, tiny)");
    check(same_dq, name + ": dequantize_row " + cpu::kernel_backend() + " == reference bitwise");
    check(worst == 0, name + ": quantize->dequantize error within bounds");
  }

  // Q8_0 edge inputs: NaN/inf, a row past the fp16 range of d, -128 in stored weights.
  std::vector<float> x(64, 1.0f);
  x[3] = NAN, x[40] = INFINITY, x[41] = -1e30f;
  const std::vector<uint8_t> ref = to_type(GgmlType::Q8_0, x);
  std::vector<uint8_t> fast(ref.size());
  cpu::quantize_row(GgmlType::Q8_0, x.data(), fast.data(), 64);
  check(fast == ref, "Q8_0: quantize_row of NaN/inf/huge gives the same bytes on both paths");
  const std::vector<uint8_t> raw = raw_q8_0(4096, -2.0f, 2.0f);
  std::vector<float> a = widen(GgmlType::Q8_0, raw, 4096), b(4096);
  cpu::dequantize_row(GgmlType::Q8_0, raw.data(), b.data(), 4096);
  check(same_bits(a, b), "Q8_0: dequantize_row of raw blocks (all int8, +-d) bitwise equal");
}

// ---- dots ----------------------------------------------------------------------------------
void test_vec_dot() {
  const int64_t float_sizes[] = {1, 7, 8, 9, 16, 23, 32, 64, 100, 576, 1536, 4096};
  const int64_t q_sizes[] = {32, 64, 96, 576, 1536, 4096};
  const Fill fills[] = {Fill::Normal, Fill::Mixed, Fill::Integers, Fill::Zeros, Fill::Equal,
                        Fill::Huge, Fill::Tiny, Fill::Extremes};
  for (GgmlType t : kWeightTypes) {
    const GgmlType at = cpu::vec_dot_type(t);
    const bool quant = t == GgmlType::Q8_0;
    double worst_fast = 0, worst_ref = 0;
    bool exact_equal = true;
    int cases = 0;
    for (int64_t n : quant ? std::vector<int64_t>(std::begin(q_sizes), std::end(q_sizes))
                           : std::vector<int64_t>(std::begin(float_sizes), std::end(float_sizes))) {
      for (Fill fw : fills) {
        for (int rep = 0; rep < 2; ++rep) {
          const Fill fa = rep == 0 ? fw : Fill::Normal;
          const bool exact = fw == Fill::Integers && fa == Fill::Integers;
          std::vector<uint8_t> w = to_type(t, make_floats(fw, n, t));
          std::vector<uint8_t> a = to_type(at, make_floats(fa, n, at));
          if (quant && fw == Fill::Mixed) w = raw_q8_0(n, 1e-3f, 2.0f);  // includes -128
          if (quant && exact) w = exact_q8_0(n), a = exact_q8_0(n);
          const Exact e = quant ? exact_dot_q8_0(w.data(), a.data(), n)
                                : exact_dot(widen(t, w, n), widen(at, a, n));
          const float r = on_ref([&] { return cpu::vec_dot(t, n, w.data(), a.data()); });
          const float f = cpu::vec_dot(t, n, w.data(), a.data());
          const double bf = bound_fast(t, n, e), br = bound_ref(t, n, e);
          worst_fast = std::fmax(worst_fast, std::fabs(f - e.value) / bf);
          worst_ref = std::fmax(worst_ref, std::fabs(r - e.value) / br);
          if (exact) exact_equal &= bits(f) == bits(r) && f == e.value;
          ++cases;
        }
      }
    }
    const std::string name = weft::ggml_type_name(t);
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s: vec_dot %s within bound on %d rows (worst err/bound %.3f)",
                  name.c_str(), cpu::kernel_backend(), cases, worst_fast);
    check(worst_fast <= 1.0, buf);
    std::snprintf(buf, sizeof buf, "%s: vec_dot reference within bound (worst err/bound %.3f)",
                  name.c_str(), worst_ref);
    check(worst_ref <= 1.0, buf);
    check(exact_equal, name + ": vec_dot on small integers (every sum exact) identical on both paths");
  }
}

// ---- attention kernels -----------------------------------------------------------------------
// Scores within the float-dot bounds and values within a per-step rounding bound, on both paths;
// on the active path, every row's result identical bit for bit whatever other rows share the call
// and whatever positions share it (n_pos spans several of the fast path's blocks of positions).
void test_attention() {
  const int64_t head_sizes[] = {1, 7, 8, 9, 16, 23, 64, 100, 128};
  const int n_qs[] = {1, 2, 3, 4, 5, 7, 9};
  const int n_pos = 21;
  double worst = 0;
  bool values_ok = true, invariant = true;
  for (int64_t n : head_sizes) {
    const int64_t stride = n + 3;  // K/V rows sit apart, as a cache slot's row holds every KV head
    const std::vector<float> kv32 = make_floats(Fill::Mixed, n_pos * stride, GgmlType::F16);
    const std::vector<uint8_t> kv16b = to_type(GgmlType::F16, kv32);
    const uint16_t* kv16 = reinterpret_cast<const uint16_t*>(kv16b.data());
    const std::vector<float> kv16w = widen(GgmlType::F16, kv16b, n_pos * stride);  // what f16 rows hold
    for (int n_q : n_qs) {
      std::vector<std::vector<float>> q(static_cast<size_t>(n_q));
      std::vector<const float*> qp;
      for (auto& row : q) {
        row = make_floats(Fill::Normal, n, GgmlType::F32);
        qp.push_back(row.data());
      }
      for (int f16 = 0; f16 < 2; ++f16) {
        const std::vector<float>& kv = f16 ? kv16w : kv32;
        // Rows [r0, r0 + nq) against positions [j0, j0 + np).
        auto scores = [&](int r0, int nq, std::vector<float>& s, int j0, int np) {
          float* out = s.data() + r0 * n_pos + j0;
          if (f16) cpu::attn_scores_f16(n, qp.data() + r0, nq, kv16 + j0 * stride, stride, np, out, n_pos);
          else cpu::attn_scores_f32(n, qp.data() + r0, nq, kv32.data() + j0 * stride, stride, np, out, n_pos);
          return 0;
        };
        std::vector<float> all(static_cast<size_t>(n_q * n_pos)), one(all.size()), ref(all.size());
        std::vector<float> by_pos(all.size());
        scores(0, n_q, all, 0, n_pos);
        for (int r = 0; r < n_q; ++r) scores(r, 1, one, 0, n_pos);
        for (int j = 0; j < n_pos; ++j) scores(0, n_q, by_pos, j, 1);
        on_ref([&] { return scores(0, n_q, ref, 0, n_pos); });
        invariant &= same_bits(all, one) && same_bits(all, by_pos);
        for (int r = 0; r < n_q; ++r) {
          for (int j = 0; j < n_pos; ++j) {
            const std::vector<float> kj(kv.begin() + j * stride, kv.begin() + j * stride + n);
            const Exact e = exact_dot(q[size_t(r)], kj);
            worst = std::fmax(worst, std::fabs(all[size_t(r * n_pos + j)] - e.value) / bound_fast(GgmlType::F32, n, e));
            worst = std::fmax(worst, std::fabs(ref[size_t(r * n_pos + j)] - e.value) / bound_ref(GgmlType::F32, n, e));
          }
        }

        // Values: weights in [0, 1) like softmax outputs, outputs starting from a random state.
        std::vector<float> p(static_cast<size_t>(n_q * n_pos));
        for (float& x : p) x = uniform(0.0f, 1.0f);
        const std::vector<float> o0 = make_floats(Fill::Normal, n * n_q, GgmlType::F32);
        // Rows [r0, r0 + nq) over positions [j0, j0 + np).
        auto values = [&](int r0, int nq, std::vector<float>& o, int j0, int np) {
          std::vector<float*> op;
          for (int r = 0; r < n_q; ++r) op.push_back(o.data() + r * n);
          const float* pj = p.data() + r0 * n_pos + j0;
          if (f16) cpu::attn_values_f16(n, pj, n_pos, nq, kv16 + j0 * stride, stride, np, op.data() + r0);
          else cpu::attn_values_f32(n, pj, n_pos, nq, kv32.data() + j0 * stride, stride, np, op.data() + r0);
          return 0;
        };
        std::vector<float> oa = o0, ob = o0, oc = o0, orf = o0;
        values(0, n_q, oa, 0, n_pos);
        for (int r = 0; r < n_q; ++r) values(r, 1, ob, 0, n_pos);
        values(0, n_q, oc, 0, 5);
        values(0, n_q, oc, 5, n_pos - 5);
        on_ref([&] { return values(0, n_q, orf, 0, n_pos); });
        invariant &= same_bits(oa, ob) && same_bits(oa, oc);
        for (int r = 0; r < n_q; ++r) {
          for (int64_t e = 0; e < n; ++e) {
            double want = o0[size_t(r * n + e)], mag = std::fabs(want);
            for (int j = 0; j < n_pos; ++j) {
              const double t = static_cast<double>(p[size_t(r * n_pos + j)]) * kv[size_t(j * stride + e)];
              want += t;
              mag += std::fabs(t);
            }
            // One rounding per step on the fast path (fma), two on the reference (multiply, add).
            const double tol = 2.0 * n_pos * kU * mag + 2.0 * n_pos * kSub;
            values_ok &= std::fabs(oa[size_t(r * n + e)] - want) <= tol && std::fabs(orf[size_t(r * n + e)] - want) <= tol;
          }
        }
      }
    }
  }
  // attn_exp: x - shift over [-100, 0] (the underflow edge included) and exact zeros; every element
  // the same whatever n and wherever it sits, and the sum within a few ulp of the exact one.
  double worst_exp = 0;
  bool exp_sum_ok = true, exp_invariant = true;
  for (int64_t n : {1, 5, 8, 13, 64, 100}) {
    std::vector<float> x0(static_cast<size_t>(n));
    for (float& v : x0) v = uniform(-100.0f, 0.0f);
    x0[0] = 0.0f;
    const float shift = uniform(-3.0f, 3.0f);
    for (float& v : x0) v += shift;
    std::vector<float> x = x0, xr = x0;
    const float sum = cpu::attn_exp(x.data(), n, shift);
    const float sum_ref = on_ref([&] { return cpu::attn_exp(xr.data(), n, shift); });
    double exact_sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double want = std::exp(static_cast<double>(x0[size_t(j)] - shift));
      exact_sum += want;
      // Below FLT_MIN the fast path may flush to 0: an absolute error under 2^-126.
      for (float got : {x[size_t(j)], xr[size_t(j)]}) {
        const double err = std::fabs(got - want);
        worst_exp = std::fmax(worst_exp, want < 0x1p-126 ? err / 0x1p-126 : err / (3 * kU * 2 * want));
      }
      std::vector<float> one{x0[size_t(j)]};
      cpu::attn_exp(one.data(), 1, shift);
      exp_invariant &= bits(one[0]) == bits(x[size_t(j)]);
    }
    for (float s : {sum, sum_ref}) exp_sum_ok &= std::fabs(s - exact_sum) <= (n + 4) * 4 * kU * exact_sum;
  }
  // attn_scale_max: bit-identical to the reference over every n % 8 tail, with the max in the
  // body, in the tail, or the init.
  bool scale_max_ok = true;
  for (int64_t n : {0, 1, 7, 8, 9, 16, 23, 64}) {
    for (int where = 0; where < 3; ++where) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float& v : x) v = uniform(-50.0f, 50.0f);
      if (n > 0) x[where == 0 ? 0 : size_t(n - 1)] = 80.0f;
      const float init = where == 2 ? 1e9f : -INFINITY;
      const std::vector<float> orig = x;
      std::vector<float> xr = x;
      const float got = cpu::attn_scale_max(x.data(), n, 0.125f, init);
      const float want = on_ref([&] { return cpu::attn_scale_max(xr.data(), n, 0.125f, init); });
      float expect = init;
      for (float v : xr) expect = std::max(expect, v);
      scale_max_ok &= bits(got) == bits(want) && got == expect && std::memcmp(x.data(), xr.data(), x.size() * sizeof(float)) == 0;
      for (size_t j = 0; j < x.size(); ++j) scale_max_ok &= x[j] == orig[j] * 0.125f;
    }
  }
  check(scale_max_ok, std::string("attn_scale_max on ") + cpu::kernel_backend() + ": scaled row and max bit-identical to the reference");

  char buf[160];
  std::snprintf(buf, sizeof buf, "attn_exp within 3 ulp of exp on both paths (worst err/bound %.3f)", worst_exp);
  check(worst_exp <= 1.0, buf);
  check(exp_sum_ok, "attn_exp sums within (n + 4) * 4u of the exact sum on both paths");
  check(exp_invariant, std::string("attn_exp on ") + cpu::kernel_backend() + ": each element bit-identical alone and in a row");

  std::snprintf(buf, sizeof buf, "attn_scores f32/f16 within bound on both paths (worst err/bound %.3f)", worst);
  check(worst <= 1.0, buf);
  check(values_ok, "attn_values f32/f16 within one rounding per step of the exact sum on both paths");
  check(invariant, std::string("attn_scores / attn_values on ") + cpu::kernel_backend() +
                       ": each row bit-identical alone and grouped with others");
}

// swiglu: silu(g) * u on both paths within 8 ulp of the exact value (plus an absolute 2^-110 where
// exp(-|g|) underflows), every element the same alone and in a row, over gates that overflow a
// naive exp(-g) (|g| up to 100), exact zeros, and lengths with every n % 8 tail.
void test_swiglu() {
  double worst = 0;
  bool invariant = true;
  for (int64_t n : {1, 5, 8, 13, 64, 100}) {
    std::vector<float> g0(static_cast<size_t>(n)), u(static_cast<size_t>(n));
    for (float& v : g0) v = uniform(-12.0f, 12.0f);
    for (float& v : u) v = uniform(-3.0f, 3.0f);
    const float edges[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.5f, -88.5f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < g0.size() && i < 8; ++i) g0[i] = edges[(i + size_t(n)) % 8];
    std::vector<float> g = g0, gr = g0;
    cpu::swiglu(g.data(), u.data(), n);
    on_ref([&] { cpu::swiglu(gr.data(), u.data(), n); return 0; });
    for (int64_t i = 0; i < n; ++i) {
      const double x = g0[size_t(i)];
      const double want = x / (1.0 + std::exp(-x)) * u[size_t(i)];
      for (float got : {g[size_t(i)], gr[size_t(i)]}) {
        worst = std::fmax(worst, std::fabs(got - want) / (8 * kU * std::fabs(want) + 0x1p-110));
      }
      float one = g0[size_t(i)];
      cpu::swiglu(&one, &u[size_t(i)], 1);
      invariant &= bits(one) == bits(g[size_t(i)]);
    }
  }
  char buf[120];
  std::snprintf(buf, sizeof buf, "swiglu within 8 ulp of silu(g) * u on both paths (worst err/bound %.3f)", worst);
  check(worst <= 1.0, buf);
  check(invariant, std::string("swiglu on ") + cpu::kernel_backend() + ": each element bit-identical alone and in a row");
}

// sum_squares: the backend's bits are the reference's, and the reference is the 8-lane sum that
// kernels.h describes (written out again here), within a relative 2^-45 of the exact sum, with and
// without the added row, for every n % 8 tail, over squares from f32 subnormals to near f32's
// largest.
void test_sum_squares() {
  auto dbits = [](double d) {
    uint64_t u;
    std::memcpy(&u, &d, sizeof u);
    return u;
  };
  bool same = true, lanes_ok = true, close = true;
  for (int64_t n : {0, 1, 7, 8, 9, 64, 576, 901}) {
    for (int scale_exp : {0, -60, 50}) {
      std::vector<float> x(static_cast<size_t>(n)), a(static_cast<size_t>(n));
      // Magnitudes over e^18, so that the order of the additions shows in the bits.
      for (float& v : x) v = std::ldexp(std::exp(uniform(-9.0f, 9.0f)) * (g_rng() & 1 ? 1 : -1), scale_exp);
      for (float& v : a) v = std::ldexp(uniform(-2.0f, 2.0f), scale_exp);
      for (const float* add : {static_cast<const float*>(nullptr), static_cast<const float*>(a.data())}) {
        const double got = cpu::sum_squares(x.data(), add, n);
        const double ref = on_ref([&] { return cpu::sum_squares(x.data(), add, n); });
        double lane[8] = {}, want = 0;
        long double exact = 0;
        int64_t i = 0;
        auto square = [&](int64_t k) {
          const float v = add ? x[size_t(k)] + add[size_t(k)] : x[size_t(k)];
          return static_cast<double>(v * v);
        };
        for (; i + 8 <= n; i += 8) {
          for (int j = 0; j < 8; ++j) lane[j] += square(i + j);
        }
        for (double l : lane) want += l;
        for (; i < n; ++i) want += square(i);
        for (int64_t k = 0; k < n; ++k) exact += square(k);
        same &= dbits(got) == dbits(ref);
        lanes_ok &= dbits(ref) == dbits(want);
        close &= std::fabs(static_cast<double>(exact) - ref) <= 0x1p-45 * static_cast<double>(exact);
      }
    }
  }
  check(same, std::string("sum_squares on ") + cpu::kernel_backend() + ": the reference's bits");
  check(lanes_ok, "sum_squares reference: the 8-lane double sum kernels.h describes");
  check(close, "sum_squares within 2^-45 of the exact sum of the float squares");
}

// ---- matmul batch invariance -----------------------------------------------------------------
// y[i][r] must equal vec_dot(row r, act i) bit for bit, for any n_tok, row split and strides.
bool matmul_invariant(GgmlType t, int64_t n, int64_t rows, int n_tok, bool random_splits) {
  const GgmlType at = cpu::vec_dot_type(t);
  const size_t w_row = weft::ggml_row_bytes(t, n), a_row = weft::ggml_row_bytes(at, n) + 8;  // padded, aligned
  std::vector<uint8_t> w(w_row * static_cast<size_t>(rows)), act(a_row * static_cast<size_t>(n_tok));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<uint8_t> row = to_type(t, make_floats(r % 3 ? Fill::Normal : Fill::Mixed, n, t));
    std::memcpy(w.data() + r * w_row, row.data(), w_row);
  }
  for (int i = 0; i < n_tok; ++i) {
    std::vector<float> x = make_floats(Fill::Normal, n, at);
    std::vector<uint8_t> row(weft::ggml_row_bytes(at, n));
    cpu::quantize_row(at, x.data(), row.data(), n);
    std::memcpy(act.data() + i * a_row, row.data(), row.size());
  }
  const int64_t y_stride = rows + 3;
  std::vector<float> y(static_cast<size_t>(y_stride) * n_tok, NAN);
  if (random_splits) {
    int64_t r0 = 0;
    while (r0 < rows) {
      const int64_t r1 = std::min<int64_t>(rows, r0 + 1 + static_cast<int64_t>(g_rng() % 23));
      cpu::matmul(t, n, w.data(), w_row, act.data(), a_row, n_tok, y.data(), y_stride, r0, r1);
      r0 = r1;
    }
  } else {
    cpu::matmul(t, n, w.data(), w_row, act.data(), a_row, n_tok, y.data(), y_stride, 0, rows);
  }
  for (int i = 0; i < n_tok; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      const float want = cpu::vec_dot(t, n, w.data() + r * w_row, act.data() + i * a_row);
      if (bits(y[i * y_stride + r]) != bits(want)) return false;
    }
    for (int64_t r = rows; r < y_stride; ++r) {
      if (!std::isnan(y[i * y_stride + r])) return false;  // wrote outside [r_begin, r_end)
    }
  }
  return true;
}

void test_matmul() {
  const int tok_counts[] = {1, 2, 3, 4, 5, 7, 8, 13};
  struct Shape {
    int64_t n, rows;
  };
  // {1536, 190} has more than one 256 KiB chunk of weight rows for every type; the last shape
  // has rows of at least 16 KiB, which decode takes 4 at a time (11 = 2 * 4 + 3 leftovers), and
  // for float types a leftover 8-chunk and a 5-element tail (8205 = 512 * 16 + 8 + 5).
  const Shape float_shapes[] = {{23, 9}, {64, 37}, {576, 21}, {1536, 190}, {8205, 11}};
  const Shape q_shapes[] = {{32, 9}, {64, 37}, {576, 21}, {1536, 190}, {16384, 11}};
  for (const char* backend : {"avx512", "avx2", "scalar"}) {
    if (!cpu::force_kernels(backend)) {
      std::printf("skip matmul invariance on %s: not available on this CPU or build\n", backend);
      continue;
    }
    const bool ref = std::strcmp(backend, "scalar") == 0;
    for (GgmlType t : kWeightTypes) {
      bool ok = true;
      for (const Shape& s : t == GgmlType::Q8_0 ? q_shapes : float_shapes) {
        for (int n_tok : tok_counts) {
          if (ref && s.rows * s.n > 40 * 576 && n_tok > 5) continue;  // the reference is slow
          ok &= matmul_invariant(t, s.n, s.rows, n_tok, false);
          ok &= matmul_invariant(t, s.n, s.rows, n_tok, true);
        }
      }
      check(ok, std::string(weft::ggml_type_name(t)) + ": matmul (" + backend +
                    ") == vec_dot bitwise for n_tok in {1,2,3,4,5,7,8,13} and random row splits");
    }
  }
  cpu::force_kernels(nullptr);
}

// The AVX-512 kernels promise the AVX2 kernels' bits (kernels-avx512.cc says why): matmul at
// every tile shape and vec_dot, on random, extreme and raw rows (Q8_0 weights of -128, odd
// block counts whose last block is alone), compared bit for bit. A model's logits then do not
// depend on which of the two a CPU gets.
void test_avx512_matches_avx2() {
  if (!cpu::force_kernels("avx512")) {
    std::printf("skip AVX-512 == AVX2 checks: this CPU (or build) has no AVX-512 F/BW/VL/VNNI\n");
    return;
  }
  cpu::force_kernels(nullptr);
  const Fill fills[] = {Fill::Normal, Fill::Mixed, Fill::Huge, Fill::Tiny, Fill::Extremes};
  const int64_t float_sizes[] = {1, 8, 23, 100, 576, 8205};
  const int64_t q_sizes[] = {32, 96, 576, 1568, 16384};  // 1, 3, 18, 49, 512 blocks
  for (GgmlType t : kWeightTypes) {
    const GgmlType at = cpu::vec_dot_type(t);
    const bool quant = t == GgmlType::Q8_0;
    bool same = true;
    int cases = 0;
    for (int64_t n : quant ? std::vector<int64_t>(std::begin(q_sizes), std::end(q_sizes))
                           : std::vector<int64_t>(std::begin(float_sizes), std::end(float_sizes))) {
      for (Fill fill : fills) {
        const int64_t rows = n >= 8192 ? 9 : 23;
        const int n_tok = 6;
        const size_t w_row = weft::ggml_row_bytes(t, n), a_row = weft::ggml_row_bytes(at, n);
        std::vector<uint8_t> w(w_row * rows), act(a_row * n_tok);
        for (int64_t r = 0; r < rows; ++r) {
          const std::vector<uint8_t> row = quant && fill == Fill::Mixed
                                               ? raw_q8_0(n, 1e-3f, 2.0f)
                                               : to_type(t, make_floats(fill, n, t));
          std::memcpy(w.data() + r * w_row, row.data(), w_row);
        }
        for (int i = 0; i < n_tok; ++i) {
          const std::vector<uint8_t> row = to_type(at, make_floats(i % 2 ? fill : Fill::Normal, n, at));
          std::memcpy(act.data() + i * a_row, row.data(), a_row);
        }
        same &= avx512_matches_avx2(t, n, rows, w.data(), w_row, act.data(), a_row, n_tok);
        cases += n_tok;
      }
    }
    check(same, std::string(weft::ggml_type_name(t)) + ": matmul and vec_dot on avx512 == avx2 bitwise (" +
                    std::to_string(cases) + " cases: 1-6 activation rows, extreme and raw rows)");
  }
}

// The attention kernels too: scores and values of 1-9 query rows (decode's GQA groups and
// prefill's many rows, which skip the blocks) over 37 positions, every head size's n % 16 and
// n % 8 tails, f16 and f32 K/V rows, mixed magnitudes, on avx512 and avx2, bit for bit.
void test_attention_avx512_matches_avx2() {
  if (!cpu::force_kernels("avx512")) {
    std::printf("skip AVX-512 == AVX2 attention checks: this CPU (or build) has no AVX-512 F/BW/VL/VNNI\n");
    return;
  }
  cpu::force_kernels(nullptr);
  const int n_pos = 37;
  bool same = true;
  int cases = 0;
  for (int64_t n : {1, 7, 8, 9, 16, 23, 24, 40, 64, 100, 128}) {
    const int64_t stride = n + 5;
    const std::vector<float> kv32 = make_floats(Fill::Mixed, n_pos * stride, GgmlType::F16);
    const std::vector<uint8_t> kv16b = to_type(GgmlType::F16, kv32);
    const uint16_t* kv16 = reinterpret_cast<const uint16_t*>(kv16b.data());
    for (int n_q : {1, 2, 3, 4, 5, 7, 8, 9, 13}) {
      std::vector<float> q = make_floats(Fill::Normal, n * n_q, GgmlType::F32);
      std::vector<const float*> qp;
      for (int r = 0; r < n_q; ++r) qp.push_back(q.data() + r * n);
      std::vector<float> p(static_cast<size_t>(n_q * n_pos));
      for (float& x : p) x = uniform(0.0f, 1.0f);
      const std::vector<float> o0 = make_floats(Fill::Normal, n * n_q, GgmlType::F32);
      for (int f16 = 0; f16 < 2; ++f16) {
        std::vector<float> s[2], o[2];
        for (int k = 0; k < 2; ++k) {
          cpu::force_kernels(k == 0 ? "avx2" : "avx512");
          s[k].assign(static_cast<size_t>(n_q * n_pos), 0.0f);
          o[k] = o0;
          std::vector<float*> op;
          for (int r = 0; r < n_q; ++r) op.push_back(o[k].data() + r * n);
          if (f16) {
            cpu::attn_scores_f16(n, qp.data(), n_q, kv16, stride, n_pos, s[k].data(), n_pos);
            cpu::attn_values_f16(n, p.data(), n_pos, n_q, kv16, stride, n_pos, op.data());
          } else {
            cpu::attn_scores_f32(n, qp.data(), n_q, kv32.data(), stride, n_pos, s[k].data(), n_pos);
            cpu::attn_values_f32(n, p.data(), n_pos, n_q, kv32.data(), stride, n_pos, op.data());
          }
        }
        cpu::force_kernels(nullptr);
        same &= same_bits(s[0], s[1]) && same_bits(o[0], o[1]);
        ++cases;
      }
    }
  }
  check(same, "attn_scores / attn_values on avx512 == avx2 bitwise (" + std::to_string(cases) +
                  " cases: head sizes 1-128, 1-13 query rows, f16 and f32 rows)");
}

// The q8_0 cache's kernels read Q8_0 rows directly; on every backend each output must be the
// f32 kernel's on the rows dequantized, bit for bit: head sizes 32-128, rows contiguous (as a
// run of cache slots) and apart, 1-13 query rows, mixed magnitudes.
void test_attention_q8_0() {
  const int n_pos = 37;
  for (const char* name : {"scalar", "avx2", "avx512"}) {
    if (!cpu::force_kernels(name)) {
      std::printf("skip q8_0 attention checks on %s: not available here\n", name);
      continue;
    }
    bool same = true;
    int cases = 0;
    for (int64_t n : {32, 64, 96, 128}) {
      for (int64_t stride : {n, n + 64}) {
        const std::vector<float> x = make_floats(Fill::Mixed, n_pos * stride, GgmlType::F32);
        std::vector<uint8_t> rows(weft::ggml_row_bytes(GgmlType::Q8_0, n_pos * stride));
        cpu::quantize_row(GgmlType::Q8_0, x.data(), rows.data(), n_pos * stride);
        std::vector<float> rows32(x.size());
        cpu::dequantize_row(GgmlType::Q8_0, rows.data(), rows32.data(), n_pos * stride);
        for (int n_q : {1, 2, 3, 4, 5, 7, 9, 13}) {
          const std::vector<float> q = make_floats(Fill::Normal, n * n_q, GgmlType::F32);
          std::vector<const float*> qp;
          for (int r = 0; r < n_q; ++r) qp.push_back(q.data() + r * n);
          std::vector<float> p(static_cast<size_t>(n_q * n_pos));
          for (float& v : p) v = uniform(0.0f, 1.0f);
          const std::vector<float> o0 = make_floats(Fill::Normal, n * n_q, GgmlType::F32);
          std::vector<float> s[2], o[2];
          for (int k = 0; k < 2; ++k) {
            s[k].assign(static_cast<size_t>(n_q * n_pos), 0.0f);
            o[k] = o0;
            std::vector<float*> op;
            for (int r = 0; r < n_q; ++r) op.push_back(o[k].data() + r * n);
            if (k == 0) {
              cpu::attn_scores_f32(n, qp.data(), n_q, rows32.data(), stride, n_pos, s[k].data(), n_pos);
              cpu::attn_values_f32(n, p.data(), n_pos, n_q, rows32.data(), stride, n_pos, op.data());
            } else {
              cpu::attn_scores_q8_0(n, qp.data(), n_q, rows.data(), stride, n_pos, s[k].data(), n_pos);
              cpu::attn_values_q8_0(n, p.data(), n_pos, n_q, rows.data(), stride, n_pos, op.data());
            }
          }
          same &= same_bits(s[0], s[1]) && same_bits(o[0], o[1]);
          ++cases;
        }
      }
    }
    check(same, std::string("attn_scores / attn_values on q8_0 rows == f32 on them dequantized, ") + name +
                    ", bitwise (" + std::to_string(cases) + " cases: head sizes 32-128, 1-13 query rows)");
  }
  cpu::force_kernels(nullptr);
}

// Threads split the rows; results must equal the single-threaded call bit for bit.
void test_matmul_threads() {
  cpu::ThreadPool pool(3);
  const int64_t n = 576, rows = 301;
  const int n_tok = 6;
  std::vector<uint8_t> w(weft::ggml_row_bytes(GgmlType::Q8_0, n) * rows);
  for (uint8_t& b : w) b = static_cast<uint8_t>(g_rng() & 0x3f);  // d bytes small: finite scales
  std::vector<float> x = make_floats(Fill::Normal, n * n_tok, GgmlType::F32);
  const size_t a_row = weft::ggml_row_bytes(GgmlType::Q8_0, n);
  std::vector<uint8_t> act(a_row * n_tok);
  for (int i = 0; i < n_tok; ++i) {
    cpu::quantize_row(GgmlType::Q8_0, x.data() + i * n, act.data() + i * a_row, n);
  }
  std::vector<float> y1(rows * n_tok), y3(rows * n_tok);
  cpu::matmul(GgmlType::Q8_0, n, w.data(), a_row, act.data(), a_row, n_tok, y1.data(), rows, 0, rows);
  pool.run([&](int tid, int nth) {
    const int64_t r0 = rows * tid / nth, r1 = rows * (tid + 1) / nth;
    cpu::matmul(GgmlType::Q8_0, n, w.data(), a_row, act.data(), a_row, n_tok, y3.data(), rows, r0, r1);
  });
  check(same_bits(y1, y3), "Q8_0 matmul split over 3 pool threads == one call, bitwise");
}

// ---- API contract --------------------------------------------------------------------------
void test_api() {
  bool ok = cpu::type_supported(GgmlType::F32) && cpu::type_supported(GgmlType::F16) &&
            cpu::type_supported(GgmlType::BF16) && cpu::type_supported(GgmlType::Q8_0) &&
            !cpu::type_supported(GgmlType::IQ4_NL) && !cpu::type_supported(GgmlType::Q2_K) &&
            !cpu::type_supported(GgmlType::I32) && !cpu::type_supported(static_cast<GgmlType>(99));
  check(ok, "type_supported: F32 F16 BF16 Q8_0 yes; IQ4_NL Q2_K I32 and unknown ids no");
  ok = true;
  for (GgmlType t : kWeightTypes) ok &= cpu::vec_dot_type(t) == t;
  check(ok, "vec_dot_type: F32->F32, F16->F16, BF16->BF16, Q8_0->Q8_0");
  float dummy[64] = {};
  uint8_t bytes[256] = {};
  ok = throws_code([&] { cpu::vec_dot_type(GgmlType::Q2_K); }, ErrorCode::Unsupported) &&
       throws_code([&] { cpu::dequantize_row(GgmlType::IQ4_NL, bytes, dummy, 32); }, ErrorCode::Unsupported) &&
       throws_code([&] { cpu::quantize_row(GgmlType::Q3_K, dummy, bytes, 256); }, ErrorCode::Unsupported) &&
       throws_code([&] { cpu::vec_dot(GgmlType::IQ4_NL, 32, bytes, bytes); }, ErrorCode::Unsupported) &&
       throws_code([&] { cpu::matmul(GgmlType::Q2_K, 256, bytes, 84, bytes, 292, 1, dummy, 1, 0, 1); },
                   ErrorCode::Unsupported);
  check(ok, "unsupported types throw E_UNSUPPORTED from every entry point");
  try {
    cpu::matmul(GgmlType::IQ4_NL, 32, bytes, 18, bytes, 34, 1, dummy, 1, 0, 1);
    ok = false;
  } catch (const weft::Error& e) {
    ok = std::string(e.what()).find("IQ4_NL") != std::string::npos;
  }
  check(ok, "the E_UNSUPPORTED message names the type");
  ok = throws_code([&] { cpu::vec_dot(GgmlType::Q8_0, 40, bytes, bytes); }, ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::matmul(GgmlType::Q8_0, 32, bytes, 33, bytes, 34, 1, dummy, 1, 0, 1); },
                   ErrorCode::InvalidArgument) &&
       throws_code([&] { cpu::matmul(GgmlType::F32, 4, bytes, 16, bytes, 16, 2, dummy, 1, 0, 2); },
                   ErrorCode::InvalidArgument);
  check(ok, "bad row length, row stride or output stride throws E_INVALID_ARGUMENT");
  const std::string automatic = cpu::kernel_backend();
  ok = cpu::force_kernels("scalar") && std::strcmp(cpu::kernel_backend(), "scalar") == 0;
  ok &= !cpu::force_kernels("sse9") && std::strcmp(cpu::kernel_backend(), "scalar") == 0;
  ok &= cpu::force_kernels(nullptr) && cpu::kernel_backend() == automatic;
  check(ok, "force_kernels picks the reference, refuses an unknown name, and nullptr restores the "
            "automatic backend (" + automatic + ")");
}

// ---- thread pool ---------------------------------------------------------------------------
void test_thread_pool() {
  check(cpu::physical_cores() >= 1, "physical_cores() = " + std::to_string(cpu::physical_cores()));
  check(throws_code([] { cpu::ThreadPool p(0); }, ErrorCode::InvalidArgument),
        "ThreadPool(0) throws E_INVALID_ARGUMENT");

  for (int nth : {1, 2, 3, 4}) {
    cpu::ThreadPool pool(nth);
    const std::string tag = " (" + std::to_string(nth) + " threads)";
    check(pool.size() == nth, "size()" + tag);

    // Many barriers per region: after each barrier every thread sees every other's write.
    const int kRounds = 2000;
    std::vector<int> slot(nth, -1);
    std::atomic<int> mismatches{0};
    pool.run([&](int tid, int n) {
      for (int round = 0; round < kRounds; ++round) {
        slot[tid] = round;
        pool.barrier();
        for (int j = 0; j < n; ++j) mismatches += slot[j] != round;
        pool.barrier();
      }
    });
    check(mismatches == 0, "2x2000 barriers in one region keep threads in lockstep" + tag);

    // Thousands of regions: each runs every tid exactly once.
    std::atomic<int64_t> sum{0};
    std::atomic<int> bad_nth{0};
    const int kRegions = 5000;
    for (int i = 0; i < kRegions; ++i) {
      pool.run([&](int tid, int n) {
        sum += tid + 1;
        bad_nth += n != nth;
        pool.barrier();
      });
    }
    check(sum == static_cast<int64_t>(kRegions) * nth * (nth + 1) / 2 && bad_nth == 0,
          "5000 regions, each tid once per region" + tag);

    // An exception on any thread reaches run()'s caller, after barriers on the others.
    for (int thrower = 0; thrower < nth; ++thrower) {
      bool caught = false;
      try {
        pool.run([&](int tid, int) {
          for (int k = 0; k < 10; ++k) {
            if (tid == thrower && k == 5) throw std::runtime_error("boom " + std::to_string(tid));
            pool.barrier();
          }
        });
      } catch (const std::runtime_error& e) {
        caught = std::string(e.what()) == "boom " + std::to_string(thrower);
      }
      check(caught, "exception from tid " + std::to_string(thrower) + " rethrown by run()" + tag);
    }
    bool typed = false;
    try {
      pool.run([&](int tid, int) {
        if (tid == nth - 1) weft::fail(ErrorCode::KvExhausted, "full");
      });
    } catch (const weft::Error& e) {
      typed = e.code() == ErrorCode::KvExhausted;
    }
    check(typed, "weft::Error keeps its type and code through run()" + tag);

    // Still usable after failures, and after the workers went to sleep.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> after{0};
    pool.run([&](int, int) {
      pool.barrier();
      ++after;
      pool.barrier();
    });
    check(after == nth, "regions run normally after exceptions and an idle sleep" + tag);

    // Regions said to follow soon (workers poll for them instead of sleeping): each runs every
    // tid once, right away or after the workers stopped lingering and went to sleep.
    std::atomic<int> soon{0};
    for (int i = 0; i < 1000; ++i) pool.run([&](int, int) { ++soon; pool.barrier(); }, true);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));  // past the linger
    pool.run([&](int, int) { ++soon; }, true);
    check(soon == 1001 * nth, "1000 regions with next_soon, then one after the workers' linger ran out" + tag);

    // Barriers that read ahead while they wait: a thread that arrives early loads its range
    // while the last one sleeps, and never past the end; lockstep holds as with barrier().
    if (nth > 1) {
      std::vector<char> mem(300 * 1024 + 100, 1);
      std::vector<cpu::ThreadPool::ReadAhead> ahead(nth, {mem.data(), mem.data() + mem.size()});
      std::vector<int> seen(nth, -1);
      pool.run([&](int tid, int n) {
        if (tid == n - 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        seen[tid] = 1;
        pool.barrier(&ahead[tid]);
        for (int j = 0; j < n; ++j) seen[tid] &= seen[j] == 1;
      });
      bool early_read_all = true, in_range = true, lockstep = true;
      for (int t = 0; t < nth; ++t) {
        const ptrdiff_t left = ahead[t].end - ahead[t].next;
        in_range = in_range && left >= 0 && ahead[t].next >= mem.data();
        if (t < nth - 1) early_read_all = early_read_all && left < 512;
        lockstep = lockstep && seen[t] == 1;
      }
      check(early_read_all && in_range && lockstep,
            "barrier(ReadAhead): early threads read their 300 KiB while waiting, not past its end" + tag);
      std::atomic<int> bad{0};
      pool.run([&](int tid, int n) {
        cpu::ThreadPool::ReadAhead mine{mem.data(), mem.data() + 4096};
        for (int round = 0; round < kRounds; ++round) {
          slot[tid] = round;
          pool.barrier(&mine);
          for (int j = 0; j < n; ++j) bad += slot[j] != round;
          pool.barrier(round % 2 ? &mine : nullptr);
          mine.next = mem.data();
        }
      });
      check(bad == 0, "2x2000 read-ahead barriers keep threads in lockstep" + tag);
    }

    bool nested = false;
    try {
      pool.run([&](int tid, int) {
        if (tid == 0) pool.run([](int, int) {});
      });
    } catch (const weft::Error& e) {
      nested = e.code() == ErrorCode::Internal;
    }
    check(nested, "nested run() is refused with E_INTERNAL" + tag);
  }
  // Destroyed while its workers linger after a next_soon region: the destructor returns once
  // they stop (the linger is 0.5 ms).
  auto pool = std::make_unique<cpu::ThreadPool>(3);
  std::atomic<int> ran{0};
  pool->run([&](int, int) { ++ran; }, true);
  const auto t0 = std::chrono::steady_clock::now();
  pool.reset();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  check(ran == 3 && ms < 100, "a pool destroyed while its workers linger shuts down (" + std::to_string(ms) + " ms)");
}

}  // namespace

int main() {
  g_rng.seed(12345);
  cpu::force_kernels(nullptr);
  g_have_fast = std::strcmp(cpu::kernel_backend(), "scalar") != 0;
  std::printf("kernel backend: %s\n", cpu::kernel_backend());
  if (!g_have_fast) {
    std::printf("note: no fast backend here (no AVX2 or WEFT_KERNELS=scalar); fast-vs-reference "
                "checks compare the reference with itself\n");
  }
  test_api();
  test_fp16_conversions();
  test_bf16_conversions();
  test_quantize();
  test_vec_dot();
  test_attention();
  test_swiglu();
  test_sum_squares();
  test_matmul();
  test_avx512_matches_avx2();
  test_attention_avx512_matches_avx2();
  test_attention_q8_0();
  test_matmul_threads();
  test_thread_pool();
  return summary();
}
