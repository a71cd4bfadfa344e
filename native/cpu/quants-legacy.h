// ggml's "legacy" 32-weight blocks, byte for byte as GGUF stores them (internal to native/cpu).
//   Q4_0: w = d * (q - 8),  q in [0, 15]      Q4_1: w = d * q + m, q in [0, 15]
//   Q5_0: w = d * (q - 16), q in [0, 31]      Q5_1: w = d * q + m, q in [0, 31]
// qs[j] holds weight j in its low nibble and weight j + 16 in its high nibble; for the 5-bit
// types bit j of qh (read as a little-endian uint32) is the fifth bit of weight j. d and m are
// fp16 bits. Q4_0/Q5_0 meet activations as Q8_0, Q4_1/Q5_1 as Q8_1 (as in ggml), whose s field
// lets the m term cost one multiply per block.
//
// Structs only: kernels-impl.h explains why nothing inline is shared with the AVX2 TU.
#pragma once

#include <cstdint>

namespace weft::cpu::detail {

constexpr int kQL = 32;  // weights per legacy block

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQL / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must match the GGUF layout");

struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQL / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block must match the GGUF layout");

struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQL / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block must match the GGUF layout");

struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQL / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block must match the GGUF layout");

// a = d * q; s = d * sum(q) rounded to fp16, with d the f32 scale before its own rounding.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQL];
};
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block must match ggml's layout");

}  // namespace weft::cpu::detail
