// ggml's K-quant super-blocks, byte for byte as GGUF stores them (internal to native/cpu and its
// tests). Every K type packs 256 weights; only the element encoding differs:
//   Q4_K: w = d * sc[j] * q - dmin * m[j], q in [0, 15], 8 sub-blocks of 32 with 6-bit sc/m
//   Q5_K: the same with q in [0, 31]; the fifth bit of each q lives in qh
//   Q6_K: w = d * sc[k] * (q - 32), q in [0, 63], 16 sub-blocks of 16 with int8 sc
// Activations meet them as Q8_K: a = d * q, q in [-127, 127], plus the sums of q over each
// 16-element group, which turn the min and offset terms into one multiply per group.
//
// Structs only: kernels-impl.h explains why nothing inline is shared with the AVX2 TU.
#pragma once

#include <cstdint>

namespace weft::cpu::detail {

constexpr int kQK = 256;  // weights per K-quant super-block

// Q4_K / Q5_K scales[12]: sc[0..3] = low 6 bits of bytes 0..3, m[0..3] = low 6 bits of bytes
// 4..7; sc[4..7] = low nibble of bytes 8..11 | (top 2 bits of bytes 0..3) << 4, and
// m[4..7] = high nibble of bytes 8..11 | (top 2 bits of bytes 4..7) << 4.
// qs: the 64 weights of sub-blocks 2i and 2i+1 share bytes qs[32i..32i+32): low nibbles hold
// sub-block 2i, high nibbles sub-block 2i+1. d and dmin are fp16 bits.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block must match the GGUF layout");

// As Q4_K, plus qh: bit 2i of qh[l] is the fifth bit of weight l of sub-block 2i, bit 2i+1 that
// of weight l of sub-block 2i+1 (l in [0, 32)).
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK / 8];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block must match the GGUF layout");

// Each half h (128 weights) uses ql[64h..64h+64) and qh[32h..32h+32). For l in [0, 32), weights
// 128h + l + 32c (c = 0..3) take their low nibble from ql[64h + l] (c = 0: low, c = 2: high)
// or ql[64h + 32 + l] (c = 1: low, c = 3: high), and bits 2c..2c+1 of qh[32h + l] on top.
// scales[k] belongs to weights [16k, 16k + 16). d is fp16 bits.
struct BlockQ6_K {
  uint8_t ql[kQK / 2];
  uint8_t qh[kQK / 4];
  int8_t scales[kQK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block must match the GGUF layout");

// bsums[g] = sum of qs[16g..16g+16). d is a plain float (it may be negative: see the quantizer).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK];
  int16_t bsums[kQK / 16];
};
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block must match ggml's layout");

}  // namespace weft::cpu::detail
