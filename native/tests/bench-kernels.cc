// Microbenchmark of cpu::matmul (not a test): GB/s of weights streamed at n_tok = 1 (decode)
// and GFLOP/s at n_tok = 64 (prefill), on 1 thread and on all physical cores.
//
// Weights are cycled over enough copies of the matrix (>= 256 MiB) that each call reads them
// from memory, as a forward pass over a model far larger than L3 does. Activations are
// converted to vec_dot_type once, outside the timed loop, as the forward pass does. With `hot`,
// one copy is read over and over from cache instead: the kernel's compute ceiling, which tells
// whether a decode GEMV short of the bandwidth is waiting on memory or on arithmetic.
// A type with a packed layout (cpu::packed_type: Q4_0, Q5_0) is measured again packed, as models run it.
//   usage: bench-kernels [seconds per measurement, default 0.4] [type name, default all] [hot]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/ggml-types.h"
#include "cpu/kernels.h"
#include "cpu/thread-pool.h"

using weft::GgmlType;
namespace cpu = weft::cpu;

namespace {

struct Shape {
  int64_t rows, n_in;
  const char* what;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Calls per second of body(), timed over at least `seconds` after one warm-up call.
template <class F>
double rate(double seconds, F body) {
  body();
  int calls = 0;
  const double t0 = now_s();
  double t = t0;
  do {
    body();
    ++calls;
    t = now_s();
  } while (t - t0 < seconds);
  return calls / (t - t0);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.4;
  const char* only = argc > 2 && std::strcmp(argv[2], "all") != 0 ? argv[2] : nullptr;
  const bool hot = argc > 3 && std::strcmp(argv[3], "hot") == 0;
  const int cores = cpu::physical_cores();
  std::printf("backend %s, %d physical cores; %s\n", cpu::kernel_backend(), cores,
              hot ? "one copy of the weights, read from cache" : "weights cycled over >= 256 MiB");
  std::printf("%-7s %-28s %7s %14s %16s\n", "type", "shape [rows x n_in]", "threads",
              "n_tok=1 GB/s", "n_tok=64 GFLOP/s");

  const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                            GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                            GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  const Shape shapes[] = {{1536, 576, "smollm2 ffn_up"}, {576, 1536, "smollm2 ffn_down"},
                          {4864, 896, "qwen2.5 ffn_up"}, {896, 4864, "qwen2.5 ffn_down"}};
  std::mt19937 rng(1);
  for (GgmlType t : types) {
    if (only != nullptr && std::strcmp(only, weft::ggml_type_name(t)) != 0) continue;
    const GgmlType at = cpu::vec_dot_type(t);
    for (const Shape& s : shapes) {
      if (s.n_in % weft::ggml_type_traits(t).block != 0) continue;  // K-quants: rows of 256s only
      const size_t w_row = weft::ggml_row_bytes(t, s.n_in), a_row = weft::ggml_row_bytes(at, s.n_in);
      const size_t w_bytes = w_row * static_cast<size_t>(s.rows);
      const size_t copies = hot ? 1 : (size_t{256} << 20) / w_bytes + 1;
      // Random finite weights: quantize random floats into one copy, replicate it.
      std::vector<float> x(static_cast<size_t>(s.n_in) * 64);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (float& v : x) v = normal(rng);
      std::vector<uint8_t> w(w_bytes * copies);
      for (int64_t r = 0; r < s.rows; ++r) {
        cpu::quantize_row(t, x.data() + (r % 64) * s.n_in, w.data() + r * w_row, s.n_in);
      }
      for (size_t c = 1; c < copies; ++c) std::memcpy(w.data() + c * w_bytes, w.data(), w_bytes);
      std::vector<uint8_t> act(a_row * 64);
      for (int i = 0; i < 64; ++i) {
        cpu::quantize_row(at, x.data() + i * s.n_in, act.data() + i * a_row, s.n_in);
      }
      std::vector<float> y(static_cast<size_t>(s.rows) * 64);

      const GgmlType layouts[2] = {t, cpu::packed_type(t)};
      for (int li = 0; li < (layouts[1] == t ? 1 : 2); ++li) {
        const GgmlType wt = layouts[li];
        if (li == 1) {
          for (size_t c = 0; c < copies; ++c) cpu::pack_rows(t, s.n_in, w.data() + c * w_bytes, w.data() + c * w_bytes, s.rows);
        }
        const int64_t group = cpu::row_group(wt);
        for (int nth : {1, cores}) {
          cpu::ThreadPool pool(nth);
          size_t copy = 0;
          auto call = [&](int n_tok) {
            const uint8_t* wc = w.data() + (copy++ % copies) * w_bytes;
            pool.run([&](int tid, int n) {
              const int64_t r0 = s.rows / group * tid / n * group, r1 = tid + 1 == n ? s.rows : s.rows / group * (tid + 1) / n * group;
              cpu::matmul(wt, s.n_in, wc, w_row, act.data(), a_row, n_tok, y.data(), s.rows, r0, r1);
            });
          };
          const double gbs = rate(seconds, [&] { call(1); }) * static_cast<double>(w_bytes) / 1e9;
          const double gflops = rate(seconds, [&] { call(64); }) * 2.0 * s.rows * s.n_in * 64 / 1e9;
          char shape[64];
          std::snprintf(shape, sizeof shape, "%lld x %lld (%s)", static_cast<long long>(s.rows),
                        static_cast<long long>(s.n_in), s.what);
          std::printf("%-7s %-28s %7d %14.1f %16.1f\n", weft::ggml_type_name(wt), shape, nth, gbs, gflops);
          if (cores == 1) break;
        }
      }
    }
  }
  return 0;
}
