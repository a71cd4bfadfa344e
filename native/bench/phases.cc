// What a decode step's phase structure costs the weight stream, without the arithmetic: 2
// threads (cpu::ThreadPool, its barrier and read-ahead) read the bytes of a model's matrices the
// way the forward pass does at batch 1 (per layer Q/K/V, O, gate+up, down, then the output; each
// split in two row halves, a barrier after each), against one plain read of the same bytes in two
// halves. The forward pass reaches 68-77 % of bench-membw in the dev VM's fast bandwidth mode
// (its two vCPUs on two core complexes) and 84-97 % in the slow one; this says how much of the
// fast mode's shortfall the barriers alone explain. On that VM (2026-12-05), fast mode: phases
// with barriers 0.99-1.02x one read, with the read-ahead 1.06-1.08x, for either kernel: the
// stream's structure costs nothing there, so the shortfall is the work between the matmuls.
//
// Each repetition runs every variant once, interleaved, and is put in the mode its own barrier
// latency says (2,000 barriers timed first: > 0.2 us = apart, the fast mode; over 0.45 us a vCPU
// was descheduled and the repetition is dropped). Two read kernels: "fast" (four independent
// sums, ~150 GB/s a thread from cache) and "GEMV-paced" (one dependent chain, ~50 GB/s from
// cache, about what the F16/Q8_0 decode GEMVs compute at), both asking 8 KiB ahead as they do.
// Prints, per mode and kernel, the one-read GB/s and each variant's speed relative to it.
//
// usage: bench-phases [repetitions, default 30]   (SmolLM2-135M's Q8_0 bytes, 143 MB a step)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/thread-pool.h"

namespace cpu = weft::cpu;

namespace {

// 8 floats (GCC/Clang vector extension): one AVX register, as CMake builds this file with -mavx2
// on x86-64 (elsewhere pairs of 128-bit vectors, and other speeds).
typedef float F8 __attribute__((vector_size(32)));

volatile float g_one = 1.0f;  // read at run time, so the chain's multiply by it stays

template <bool kChain>
float read_range(const char* p, size_t n) {
  F8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  const float one = g_one;
  for (size_t i = 0; i < n; i += 128) {
    __builtin_prefetch(p + i + 8192);
    __builtin_prefetch(p + i + 8256);
    const F8* f = reinterpret_cast<const F8*>(p + i);
    if (kChain) {
      a0 = ((((a0 + f[0]) + f[1]) + f[2]) + f[3]) * one;
    } else {
      a0 += f[0];
      a1 += f[1];
      a2 += f[2];
      a3 += f[3];
    }
  }
  const F8 s = (a0 + a1) + (a2 + a3);
  return s[0];
}

size_t up128(double x) { return (static_cast<size_t>(x) + 127) / 128 * 128; }

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

enum Variant { kOneRead, kPhases, kReadAhead, kNoBarriers, kVariants };
const char* const kNames[kVariants] = {"one read", "phases + barriers", "+ read-ahead", "phases, no barriers"};

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
  if (reps < 1) {
    std::fprintf(stderr, "usage: bench-phases [repetitions >= 1]\n");
    return 2;
  }
  // SmolLM2-135M: 30 layers, 576 wide, FFN 1536, 49,152-token tied output; Q8_0 is 34 bytes a 32.
  const double q8 = 34.0 / 32;
  std::vector<size_t> phases;
  for (int l = 0; l < 30; ++l) {
    for (double rows_x_in : {960.0 * 576, 576.0 * 576, 3072.0 * 576, 576.0 * 1536}) phases.push_back(up128(rows_x_in * q8));
  }
  phases.push_back(up128(49152.0 * 576 * q8));
  size_t total = 0;
  for (size_t s : phases) total += s;
  const size_t slack = size_t{1} << 20;  // the last read-ahead runs past the end
  std::vector<char> mem(total + slack + 64);
  char* buf = mem.data() + (64 - reinterpret_cast<uintptr_t>(mem.data()) % 64) % 64;  // F8 loads: 32-aligned
  std::memset(buf, 1, total + slack);

  // Each kernel's speed from cache (1 MiB, one thread), so the labels above can be checked.
  std::printf("from cache, one thread:");
  for (int k = 0; k < 2; ++k) {
    volatile size_t at = 0;  // keeps the compiler from hoisting the identical calls
    float s = 0;
    const double t0 = now_us();
    for (int i = 0; i < 500; ++i) s += k ? read_range<true>(buf + at, 1 << 20) : read_range<false>(buf + at, 1 << 20);
    std::printf(" %s kernel %.1f GB/s (%g)", k ? "GEMV-paced" : "fast", 500.0 * (1 << 20) / (now_us() - t0) / 1e3, s);
  }
  std::printf("\n");

  cpu::ThreadPool pool(2);
  // [kernel][fast mode][variant]: per repetition, GB/s for kOneRead, else speed relative to it.
  std::vector<double> res[2][2][kVariants];
  float sink[2] = {0, 0};
  for (int r = 0; r < reps; ++r) {
    double lat = 0, t[2][kVariants] = {};
    pool.run([&](int tid, int) {
      float sum = 0;  // this thread's (a shared array written every phase would bounce a line)
      const double b0 = now_us();
      for (int i = 0; i < 2000; ++i) pool.barrier();
      if (tid == 0) lat = (now_us() - b0) / 2000;
      for (int k = 0; k < 2; ++k) {
        auto read = [&](const char* p, size_t n) { sum += k ? read_range<true>(p, n) : read_range<false>(p, n); };
        for (int v = 0; v < kVariants; ++v) {
          pool.barrier();
          const double t0 = now_us();
          if (v == kOneRead) {
            read(buf + tid * (total / 2), total / 2);
          } else {
            size_t off = 0;
            for (size_t p = 0; p < phases.size(); ++p) {
              const size_t half = up128(phases[p] / 2.0);
              read(buf + off + (tid ? half : 0), tid ? phases[p] - half : half);
              off += phases[p];
              if (v == kNoBarriers) continue;
              cpu::ThreadPool::ReadAhead ahead;
              if (v == kReadAhead) {  // this thread's share of the next phase, up to 256 KiB
                ahead.next = buf + off + (tid && p + 1 < phases.size() ? up128(phases[p + 1] / 2.0) : 0);
                ahead.end = ahead.next + (256 << 10);
              }
              pool.barrier(v == kReadAhead ? &ahead : nullptr);
            }
          }
          pool.barrier();
          if (tid == 0) t[k][v] = now_us() - t0;
        }
      }
      sink[tid] += sum;
    });
    if (lat > 0.45) continue;
    const int fast = lat > 0.2;
    for (int k = 0; k < 2; ++k) {
      res[k][fast][kOneRead].push_back(static_cast<double>(total) / t[k][kOneRead] / 1e3);
      for (int v = 1; v < kVariants; ++v) res[k][fast][v].push_back(t[k][kOneRead] / t[k][v]);
    }
  }
  std::printf("%zu MB a step in %zu phases; per repetition, speed relative to one read (median, range)\n",
              total / 1000000, phases.size());
  for (int fast = 0; fast < 2; ++fast) {
    for (int k = 0; k < 2; ++k) {
      if (res[k][fast][kOneRead].empty()) continue;
      std::printf("%s mode, %s kernel (%zu reps):", fast ? "fast" : "slow", k ? "GEMV-paced" : "fast",
                  res[k][fast][kOneRead].size());
      for (int v = 0; v < kVariants; ++v) {
        std::vector<double> x = res[k][fast][v];
        std::sort(x.begin(), x.end());
        if (v == kOneRead) {
          std::printf(" %s %.1f GB/s;", kNames[v], x[x.size() / 2]);
        } else {
          std::printf(" %s %.3f (%.2f-%.2f);", kNames[v], x[x.size() / 2], x.front(), x.back());
        }
      }
      std::printf("\n");
    }
  }
  std::printf("(checksum %g)\n", static_cast<double>(sink[0] + sink[1]));
  return 0;
}
