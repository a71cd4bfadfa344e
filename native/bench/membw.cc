// Read bandwidth of this machine, the roofline the bench compares decode speed against: decode
// at batch 1 streams every weight once per token, so tok/s x weight bytes cannot beat this.
//
// Sums a 1 GiB float buffer with N threads (default 2, the bench's thread count), each thread
// reading its own contiguous half that it also initialised (first touch), best of 5 passes, and
// the same again with software prefetch 4 KiB and 8 KiB ahead (weft's GEMVs ask 8 KiB ahead,
// which on some VMs streams faster than the hardware prefetchers alone): the figure is the best.
// Prints one line: "read GB/s <value>" (GB = 1e9 bytes), plus the per-pass figures.
//
// usage: bench-membw [threads] [MiB]
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

// 16 independent accumulators let the compiler vectorize without reassociating a single sum,
// so the loop runs at memory speed rather than at one add's latency.
constexpr size_t kLanes = 16;

// ahead_bytes 0: no software prefetch.
float sum_range(const float* p, size_t n, size_t ahead_bytes) {
  const size_t ahead = ahead_bytes / sizeof(float);
  float acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    if (ahead != 0 && i + ahead < n) __builtin_prefetch(p + i + ahead);  // one line per 16 floats
    for (size_t j = 0; j < kLanes; ++j) acc[j] += p[i + j];
  }
  float s = 0;
  for (; i < n; ++i) s += p[i];
  for (float a : acc) s += a;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const size_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
  if (threads < 1 || threads > 256 || mib < 1) {
    std::fprintf(stderr, "usage: bench-membw [threads 1..256] [MiB >= 1]\n");
    return 2;
  }
  const size_t n = mib * (size_t{1} << 20) / sizeof(float);
  std::vector<float> buf(n);  // zero-filled by the main thread; each worker rewrites its part
  const size_t per = (n + threads - 1) / threads;
  auto part = [&](int t, size_t& lo, size_t& hi) {
    lo = std::min(n, per * t);
    hi = std::min(n, lo + per);
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      size_t lo, hi;
      part(t, lo, hi);
      for (size_t i = lo; i < hi; ++i) buf[i] = static_cast<float>(i & 1023) * 1e-3f;
    });
  for (auto& th : pool) th.join();

  std::vector<float> sums(threads);
  double best = 0;
  std::printf("passes GB/s:");
  for (int pass = 0; pass < 15; ++pass) {
    const size_t ahead = pass < 5 ? 0 : pass < 10 ? 4096 : 8192;
    if (pass % 5 == 0 && pass > 0) std::printf(" | %zu KiB ahead:", ahead / 1024);
    pool.clear();
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t lo, hi;
        part(t, lo, hi);
        sums[t] = sum_range(buf.data() + lo, hi - lo, ahead);
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gbs = static_cast<double>(n * sizeof(float)) / s / 1e9;
    best = std::max(best, gbs);
    std::printf(" %.2f", gbs);
  }
  float total = 0;
  for (float s : sums) total += s;
  // Printing the sum keeps the reads from being optimised away.
  std::printf("\nchecksum %.3e\nread GB/s %.2f\n", static_cast<double>(total), best);
  return 0;
}
