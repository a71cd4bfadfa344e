// ggml tensor types as stored in GGUF files: ids, block sizes and bytes per block.
// The table knows every type a GGUF may name, so the reader can validate sizes of tensors
// weft cannot run yet; whether a type has kernels is a separate question (cpu/kernels.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35,
  // weft's own in-memory layouts of file types (cpu::packed_type), never read from a file: the
  // raw-id lookup below does not know them, so the GGUF reader refuses the id.
  Q4_0_X8 = 64,
  Q5_0_X8 = 65,
};

struct GgmlTypeTraits {
  const char* name;  // nullptr: id not a known type
  int64_t block;     // elements per block
  size_t bytes;      // bytes per block
};

// Traits of a raw type id from a file; name == nullptr when the id is unknown.
GgmlTypeTraits ggml_type_traits(uint32_t id);
// Traits of a type, weft's layouts included (Q4_0_X8, Q5_0_X8: their file type's blocks, eight
// rows interleaved).
inline GgmlTypeTraits ggml_type_traits(GgmlType t) {
  if (t == GgmlType::Q4_0_X8) return {"Q4_0_X8", 32, 18};
  if (t == GgmlType::Q5_0_X8) return {"Q5_0_X8", 32, 22};
  return ggml_type_traits(static_cast<uint32_t>(t));
}

const char* ggml_type_name(GgmlType t);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline size_t ggml_row_bytes(GgmlType t, int64_t n) {
  const GgmlTypeTraits tr = ggml_type_traits(t);
  return static_cast<size_t>(n / tr.block) * tr.bytes;
}

}  // namespace weft
