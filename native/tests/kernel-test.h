// What the C++ kernel tests (test-kernels, test-quants-legacy, test-quants-k) share: a tally of
// named checks, one seeded random stream per test program, running a call on the scalar
// reference path, comparing the AVX-512 backend with the AVX2 one, and asserting the error code a
// call throws.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/kernels.h"

namespace weft::test {

inline int g_checks = 0;
inline int g_failures = 0;

inline void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) ++g_failures;
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

// Prints the tally; the process exit code.
inline int summary() {
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}

// Each program seeds it first thing in main(), so its draws are its own and reproducible.
inline std::mt19937 g_rng;

inline float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g_rng); }
inline int irand(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_rng); }
inline float normal() { return std::normal_distribution<float>(0.0f, 1.0f)(g_rng); }

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Whether the automatic backend is a fast path, not the reference; each main() sets it.
inline bool g_have_fast = false;

inline bool on_scalar() { return std::strcmp(cpu::kernel_backend(), "scalar") == 0; }

// Runs f on the reference path, then puts back the path that was active.
template <class F>
auto on_ref(F f) {
  const std::string was = cpu::kernel_backend();
  cpu::force_kernels("scalar");
  auto r = f();
  cpu::force_kernels(was.c_str());
  return r;
}

// Whether matmul of the rows x n weights w (type t, w_row bytes a row) against the first 1, 2, ..
// n_tok rows of act (a_row bytes a row), and vec_dot against each of them, give the same bits on
// the "avx512" backend as on "avx2" (which the caller has checked are both available).
inline bool avx512_matches_avx2(GgmlType t, int64_t n, int64_t rows, const uint8_t* w, size_t w_row,
                                const uint8_t* act, size_t a_row, int n_tok) {
  bool same = true;
  for (int tok = 1; tok <= n_tok; ++tok) {
    std::vector<float> y[2];
    float dot[2];
    for (int k = 0; k < 2; ++k) {
      cpu::force_kernels(k == 0 ? "avx2" : "avx512");
      y[k].assign(static_cast<size_t>(rows * tok), 0.0f);
      cpu::matmul(t, n, w, w_row, act, a_row, tok, y[k].data(), rows, 0, rows);
      dot[k] = cpu::vec_dot(t, n, w, act + (tok - 1) * a_row);
    }
    same &= same_bits(y[0], y[1]) && bits(dot[0]) == bits(dot[1]);
  }
  cpu::force_kernels(nullptr);
  return same;
}

// True when f throws a weft::Error with this code.
template <class F>
bool throws_code(F f, ErrorCode code) {
  try {
    f();
  } catch (const Error& e) {
    return e.code() == code;
  }
  return false;
}

}  // namespace weft::test
