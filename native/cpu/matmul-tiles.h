// The matmul driver the float and Q8_0 kernels of kernels-avx2.cc and kernels-avx512.cc share
// (and the K-quant kernels of quants-k-avx2.cc, all but their decode GEMV):
// how rows are walked, split into tiles and chunked, given a kernel policy K that computes one
// NW x NA tile (K::run<NW, NA, PF>, with K::WT / K::AT its weight and activation element types
// and K::kTileRows its prefill tile height). Include it only from an ISA translation unit, after
// avx2-common.h: like that header it is all in an anonymous namespace, so each file gets its
// own copy compiled with its own flags.
#pragma once

#include <cstddef>
#include <cstdint>

#include "avx2-common.h"
#include "kernels-impl.h"

namespace weft::cpu::detail {
namespace {

inline int64_t min_rows(int64_t a, int64_t b) { return a < b ? a : b; }

// Rows [c0, c1) against NA activation rows, NW rows at a time while NW remain; y points at the
// first activation row's outputs. PF: one-row tiles prefetch as they go (dot_tile).
template <class K, int NW, int NA, bool PF = false>
void tile_rows(int64_t n, const char* w, size_t w_row_bytes, const typename K::AT* const* a,
               float* y, int64_t y_stride, int64_t c0, int64_t c1) {
  using WT = typename K::WT;
  int64_t r = c0;
  for (; r + NW <= c1; r += NW) {
    const WT* wr[NW];
    for (int i = 0; i < NW; ++i) wr[i] = reinterpret_cast<const WT*>(w + (r + i) * w_row_bytes);
    float out[NW * NA];
    K::template run<NW, NA, PF && NW == 1>(n, wr, a, out);
    for (int i = 0; i < NW; ++i) {
      for (int j = 0; j < NA; ++j) y[j * y_stride + r + i] = out[i * NA + j];
    }
  }
  for (; r < c1; ++r) {
    const WT* wr = reinterpret_cast<const WT*>(w + r * w_row_bytes);
    float out[NA];
    K::template run<1, NA, PF>(n, &wr, a, out);
    for (int j = 0; j < NA; ++j) y[j * y_stride + r] = out[j];
  }
}

// Decode (n_tok = 1) is a GEMV bound by the weight stream. F16/BF16 activation rows are read as
// stored (widening would double their L1 footprint for nothing), and Q8_0 rows go one at a time
// (float rows two far apart: far_pairs), which keeps the weights sequential streams for the
// prefetchers. Only when rows are so long that the weight stream evicts the activation row from
// L1 between rows do 4 rows share each activation load (measured on this Zen 3 VM: 4 interleaved
// short rows stream ~2x slower, 4 long ones ~1.5x faster than one at a time).
constexpr size_t kLongRowBytes = 16 * 1024;

// Float weights (K::kFarPairs) take row r with row r + half of the range instead: a lone row's dot
// is one chain of fmas, each waiting on the last (32 bytes of F16 a step), and two chains side by
// side fill those waits while the two rows, far apart, stay two plain streams, each asking ahead
// as it goes (as the Q5_0 GEMV does). bench-kernels F16 from cache (the four shapes, Zen 5 VM):
// one thread 37-52 -> 68-80 GB/s, two 71-106 -> 133-147 (AVX2 backend 39-51 -> 65-72); from
// memory unchanged (one thread 35-42 -> 40-43 in the slow mode). In-process A/B of SmolLM2 F16
// decode steps (alternating every 16 steps): in the VM's fast bandwidth modes, where one row's
// compute ceiling is close to the bandwidth, 0.86-0.99x (mean 0.95); in its slow mode 0.95-1.04x
// (mean 1.005). Not for Q8_0 (68 bytes a step): its steps were 0.95-1.09x.
template <class K>
void far_pairs(int64_t n, const char* w, size_t w_row_bytes, const typename K::AT* a, float* y,
               int64_t r0, int64_t r1) {
  using WT = typename K::WT;
  auto row = [&](int64_t r) { return reinterpret_cast<const WT*>(w + r * static_cast<int64_t>(w_row_bytes)); };
  const int64_t half = (r1 - r0) / 2;
  for (int64_t r = r0; r < r0 + half; ++r) {
    const WT* wr[2] = {row(r), row(r + half)};
    float out[2];
    K::template run<2, 1, true>(n, wr, &a, out);
    y[r] = out[0];
    y[r + half] = out[1];
  }
  if ((r1 - r0) % 2 != 0) {
    const WT* wr = row(r1 - 1);
    K::template run<1, 1, true>(n, &wr, &a, y + r1 - 1);
  }
}

// Weights kPrefetchBytes ahead are asked for (avx2-common.h): a single row as its dot reaches
// each line, a group of 4 long rows all at once before it starts.
template <class K, class Act>
void gemv(int64_t n, const char* w, size_t w_row_bytes, const char* act, float* y,
          int64_t r_begin, int64_t r_end) {
  float* buf = Act::kScratch ? scratch_floats(static_cast<size_t>(n)) : nullptr;
  const typename K::AT* a = static_cast<const typename K::AT*>(Act::row(act, n, buf));
  const int64_t rows = w_row_bytes >= kLongRowBytes ? 4 : 1;
  if constexpr (K::kFarPairs) {
    if (rows == 1) return far_pairs<K>(n, w, w_row_bytes, a, y, r_begin, r_end);
  }
  const char* end = w + r_end * static_cast<int64_t>(w_row_bytes);  // prefetch only what is read
  for (int64_t r = r_begin; r < r_end; r += rows) {
    const int64_t r1 = min_rows(r_end, r + rows);
    if (rows == 4) {
      prefetch_ahead(w + r * static_cast<int64_t>(w_row_bytes) + kPrefetchBytes,
                     w + r1 * static_cast<int64_t>(w_row_bytes) + kPrefetchBytes, end);
      tile_rows<K, 4, 1>(n, w, w_row_bytes, &a, y, 0, r, r1);
    } else {
      tile_rows<K, 1, 1, true>(n, w, w_row_bytes, &a, y, 0, r, r1);
    }
  }
}

// Several activation rows: weight rows in chunks of about kChunkBytes, and inside a chunk every
// tile of up to kTile activation rows, so a chunk stays in L2 while all tiles pass over it and
// each weight is read from memory once; each weight vector loaded feeds kTile accumulator sets
// (and K::kTileRows weight rows share each activation load). The first tile over a chunk reads
// it from memory, so it goes as gemv does, one weight row at a time asking kPrefetchBytes ahead:
// several rows in lockstep defeat the hardware prefetchers. Decode of B sequences that way
// against K::kTileRows-row tiles throughout (tok/s, bench/out/quick-b4.ts, medians of 3):
// B=4 SmolLM2 Q8_0 607 -> 860, F16 416 -> 579, Qwen2.5 Q8_0 203 -> 284; B=8 SmolLM2 Q8_0 890
// -> 1045, F16 526 -> 708; B=16 993 -> 1087 and 766 -> 866; pp512 unchanged. On the AVX2
// backend (WEFT_KERNELS=avx2, same VM): B=4 F16 245 -> 455, B=8 363 -> 562, Q8_0 +4-6 %.
// Float-type tiles read f32: F16/BF16 activation rows are widened once per tile into scratch.
// (Q8_0 rows are repacked into scratch, for decode as well.)
constexpr int kTile = 4;
constexpr int64_t kChunkBytes = 256 * 1024;

// How activation rows reach a kernel; kScratch: row() writes into a scratch row of n floats.
struct ActAsIs {
  static constexpr bool kScratch = false;
  static const void* row(const char* act_row, int64_t, float*) { return act_row; }
};

template <void (*widen)(const void*, float*, int64_t)>
struct ActWidened {
  static constexpr bool kScratch = true;
  static const void* row(const char* act_row, int64_t n, float* buf) {
    widen(act_row, buf, n);
    return buf;
  }
};

// Q8_0 rows in a kernel's own layout, which must fit in the n floats given.
template <void (*repack)(const void*, int64_t, uint8_t*)>
struct ActRepacked {
  static constexpr bool kScratch = true;
  static const void* row(const char* act_row, int64_t n, float* buf) {
    repack(act_row, n, reinterpret_cast<uint8_t*>(buf));
    return buf;
  }
};

// tile_rows with NA = nt (1..kTile) chosen at run time.
template <class K, int NW, bool PF>
void tile_rows_nt(int nt, int64_t n, const char* w, size_t w_row_bytes, const typename K::AT* const* a,
                  float* y, int64_t y_stride, int64_t c0, int64_t c1) {
  switch (nt) {
    case 1: tile_rows<K, NW, 1, PF>(n, w, w_row_bytes, a, y, y_stride, c0, c1); break;
    case 2: tile_rows<K, NW, 2, PF>(n, w, w_row_bytes, a, y, y_stride, c0, c1); break;
    case 3: tile_rows<K, NW, 3, PF>(n, w, w_row_bytes, a, y, y_stride, c0, c1); break;
    default: tile_rows<K, NW, kTile, PF>(n, w, w_row_bytes, a, y, y_stride, c0, c1); break;
  }
}

template <class K, class Act>
void tiled(int64_t n, const char* w, size_t w_row_bytes, const char* act, size_t act_row_bytes,
           int n_tok, float* y, int64_t y_stride, int64_t r_begin, int64_t r_end) {
  using AT = typename K::AT;
  const int64_t row_bytes = static_cast<int64_t>(w_row_bytes);
  const int64_t chunk_rows = n_tok <= kTile ? r_end - r_begin : 1 + (kChunkBytes - 1) / row_bytes;
  float* buf = Act::kScratch ? scratch_floats(static_cast<size_t>(kTile * n)) : nullptr;
  for (int64_t c0 = r_begin; c0 < r_end; c0 += chunk_rows) {
    const int64_t c1 = min_rows(r_end, c0 + chunk_rows);
    for (int i0 = 0; i0 < n_tok; i0 += kTile) {
      const int nt = n_tok - i0 < kTile ? n_tok - i0 : kTile;
      const AT* a[kTile];
      for (int j = 0; j < nt; ++j) {
        float* dst = Act::kScratch ? buf + j * n : nullptr;
        a[j] = static_cast<const AT*>(Act::row(act + (i0 + j) * act_row_bytes, n, dst));
      }
      float* yt = y + i0 * y_stride;
      if (i0 == 0) tile_rows_nt<K, 1, true>(nt, n, w, w_row_bytes, a, yt, y_stride, c0, c1);
      else tile_rows_nt<K, K::kTileRows, false>(nt, n, w, w_row_bytes, a, yt, y_stride, c0, c1);
    }
  }
}

// vec_dot: the 1 x 1 tile, with the activation row made as Act makes it for matmul, so each
// output of matmul is what vec_dot gives for its row.
template <class K, class Act>
float vec_dot_row(int64_t n, const void* w, const void* a) {
  float* buf = Act::kScratch ? scratch_floats(static_cast<size_t>(n)) : nullptr;
  const typename K::WT* wp = static_cast<const typename K::WT*>(w);
  const typename K::AT* ap = static_cast<const typename K::AT*>(Act::row(static_cast<const char*>(a), n, buf));
  float out;
  K::template run<1, 1>(n, &wp, &ap, &out);
  return out;
}

// KDecode reads what ActDecode makes of an activation row, KTiled what ActTiled makes of it.
template <class KDecode, class ActDecode, class KTiled, class ActTiled>
void matmul(int64_t n, const void* w, size_t w_row_bytes, const void* act, size_t act_row_bytes,
            int n_tok, float* y, int64_t y_stride, int64_t r_begin, int64_t r_end) {
  const char* wb = static_cast<const char*>(w);
  const char* ab = static_cast<const char*>(act);
  if (n_tok == 1 || w_row_bytes == 0) {  // (n = 0: every output is an empty sum)
    for (int i = 0; i < n_tok; ++i) {
      gemv<KDecode, ActDecode>(n, wb, w_row_bytes, ab + i * act_row_bytes, y + i * y_stride,
                               r_begin, r_end);
    }
    return;
  }
  tiled<KTiled, ActTiled>(n, wb, w_row_bytes, ab, act_row_bytes, n_tok, y, y_stride, r_begin,
                          r_end);
}

}  // namespace
}  // namespace weft::cpu::detail
