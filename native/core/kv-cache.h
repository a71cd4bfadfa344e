// The physical paged KV pool, allocated once at load.
//
// Storage per layer, for K and for V: [n_blocks][block_size][n_kv_dim] where n_kv_dim =
// n_head_kv * head_dim, in f16 (default) or f32. Which block holds which positions of which
// sequence is decided by the TypeScript block manager and handed over as block tables each step;
// this class only stores rows and copies blocks (copy-on-write of a shared, partly filled block).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace weft {

enum class KvType { F16, F32 };

class KvCache {
 public:
  // Throws weft::Error(InvalidArgument) for impossible sizes or when the pool cannot be allocated.
  KvCache(int32_t n_layer, int32_t n_kv_dim, int32_t n_blocks, int32_t block_size, KvType type);

  int32_t n_blocks() const { return n_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t n_kv_dim() const { return n_kv_dim_; }
  KvType type() const { return type_; }
  size_t elem_bytes() const { return type_ == KvType::F16 ? 2 : 4; }
  size_t bytes() const { return bytes_; }

  // Row of n_kv_dim elements for (layer, block, slot).
  uint8_t* k_row(int32_t layer, int32_t block, int32_t slot) { return row(0, layer, block, slot); }
  uint8_t* v_row(int32_t layer, int32_t block, int32_t slot) { return row(1, layer, block, slot); }

  // Copies every layer's K and V of block src into block dst. Ids are validated by the caller.
  void copy_block(int32_t src, int32_t dst);

 private:
  uint8_t* row(int kv, int32_t layer, int32_t block, int32_t slot) {
    const size_t idx = ((static_cast<size_t>(layer) * 2 + kv) * n_blocks_ + block) * block_size_ + slot;
    return data_.get() + idx * row_bytes_;
  }

  int32_t n_layer_, n_kv_dim_, n_blocks_, block_size_;
  KvType type_;
  size_t row_bytes_;
  size_t bytes_;
  std::unique_ptr<uint8_t[]> data_;
};

}  // namespace weft
