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

// Q4_0_X8 (cpu::packed_type of Q4_0 matmul weights): rows in groups of eight, the group's blocks
// in order. Vector j (32 bytes) holds bytes 4j..4j+3 of qs of row 0, then of row 1, .. row 7, so
// its low nibbles are weights 4j..4j+3 of each row and its high nibbles weights 16+4j..19+4j,
// lane r (a dword) row r's: one load, an and, a shift and an and give the lane-major codes from
// which one block's eight integer sums come out lane by lane, with no transposing reduction
// (quants-legacy-avx2.cc). Then the rows' d in row order. 144 bytes: the eight rows' own blocks.
struct BlockQ4_0x8 {
  uint8_t qs[4][8][4];
  uint16_t d[8];
};
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0), "a packed group block is its rows' blocks");

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

// Q5_0_X8 (cpu::packed_type of Q5_0 matmul weights): Q4_0_X8's arrangement of qs, the eight rows'
// fifth bits, then their d. The fifth bits of vector j's low nibbles (weights 4j..4j+3) and high
// nibbles (16+4j..19+4j) are those of code vector v = j and v = j + 4 of q4_0_lanes's layout:
// weights 4v..4v+3. qh[r] holds row r's 32 bits rearranged so that bit 8m + v is the fifth bit of
// weight 4v + m: for code vector v, one shift and one and put them at bit 4 of each byte m, where
// they join the nibbles. 176 bytes: the eight rows' own blocks.
struct BlockQ5_0x8 {
  uint8_t qs[4][8][4];
  uint32_t qh[8];
  uint16_t d[8];
};
static_assert(sizeof(BlockQ5_0x8) == 8 * sizeof(BlockQ5_0), "a packed group block is its rows' blocks");

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
