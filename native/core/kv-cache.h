// The physical paged KV pool, allocated once at load.
//
// Storage per layer, for K and for V: [n_head_kv][n_blocks][block_size][head_dim], in f16
// (default), f32, or ggml's Q8_0 blocks (32 int8 codes and an f16 scale: 34 bytes per 32 values,
// 53 % of f16's, as llama.cpp's --cache-type-k/v q8_0; for head sizes that are multiples of 32).
// Head-major, so that the rows attention reads for one KV head, over a run of blocks with
// consecutive ids, are one contiguous stretch of memory, which the hardware prefetcher
// streams. With each slot's heads side by side instead ([n_blocks][block_size][n_kv_dim]), one
// head's rows were 128 bytes out of every 384 (SmolLM2), read from memory about half as fast per
// position (Zen 5, with other data streaming in between, as the weights do), and a SmolLM2 decode
// at 1k context spent 20-35 % longer in attention. Which block holds which positions of which
// sequence is decided by the TypeScript block manager and handed over as block tables each step;
// this class only stores rows and copies blocks (copy-on-write of a shared, partly filled block).
#pragma once

#include <cstddef>
#include <cstdint>

#include "huge-pages.h"

namespace weft {

enum class KvType { F16, F32, Q8_0 };

const char* kv_type_name(KvType t);

class KvCache {
 public:
  // Throws weft::Error(InvalidArgument) for impossible sizes or when the pool cannot be allocated.
  KvCache(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t n_blocks, int32_t block_size, KvType type);

  int32_t n_blocks() const { return n_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t head_dim() const { return head_dim_; }
  KvType type() const { return type_; }
  size_t row_bytes() const { return row_bytes_; }
  size_t bytes() const { return bytes_; }

  // Row of head_dim values (row_bytes() bytes) for (layer, KV head, block, slot). Slot s + 1's
  // row follows slot s's, and block b + 1's first row follows block b's last.
  uint8_t* k_row(int32_t layer, int32_t head, int32_t block, int32_t slot) { return row(0, layer, head, block, slot); }
  uint8_t* v_row(int32_t layer, int32_t head, int32_t block, int32_t slot) { return row(1, layer, head, block, slot); }

  // Copies every layer's K and V of block src into block dst. Ids are validated by the caller.
  void copy_block(int32_t src, int32_t dst);

 private:
  uint8_t* row(int kv, int32_t layer, int32_t head, int32_t block, int32_t slot) {
    const size_t idx = (((static_cast<size_t>(layer) * 2 + kv) * n_head_kv_ + head) * n_blocks_ + block) * block_size_ + slot;
    return data_.data() + idx * row_bytes_;
  }

  int32_t n_layer_, n_head_kv_, head_dim_, n_blocks_, block_size_;
  KvType type_;
  size_t row_bytes_;
  size_t bytes_;
  HugeRegion data_;
};

}  // namespace weft
