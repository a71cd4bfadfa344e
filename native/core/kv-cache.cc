#include "kv-cache.h"

#include <cstring>
#include <string>

#include "error.h"
#include "ggml-types.h"

namespace weft {

KvCache::KvCache(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t n_blocks, int32_t block_size, KvType type)
    : n_layer_(n_layer), n_head_kv_(n_head_kv), head_dim_(head_dim), n_blocks_(n_blocks), block_size_(block_size), type_(type) {
  if (n_blocks < 1 || block_size < 1 || block_size > 4096 || n_layer < 1 || n_head_kv < 1 || head_dim < 1) {
    fail(ErrorCode::InvalidArgument, "KV cache of " + std::to_string(n_blocks) + " blocks of " + std::to_string(block_size) +
                                         " tokens is impossible");
  }
  if (type == KvType::Q8_0 && head_dim % 32 != 0) {
    fail(ErrorCode::InvalidArgument, "a q8_0 KV cache needs a head size that is a multiple of 32; this model's is " + std::to_string(head_dim));
  }
  const GgmlType stored = type == KvType::F16 ? GgmlType::F16 : type == KvType::F32 ? GgmlType::F32 : GgmlType::Q8_0;
  row_bytes_ = ggml_row_bytes(stored, head_dim);
  size_t rows = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(n_layer) * 2 * static_cast<size_t>(n_head_kv), static_cast<size_t>(n_blocks), &rows) ||
      __builtin_mul_overflow(rows, static_cast<size_t>(block_size), &rows) ||
      __builtin_mul_overflow(rows, row_bytes_, &bytes_)) {
    fail(ErrorCode::InvalidArgument, "KV cache size overflows");
  }
  // On 2 MiB pages: attention streams the K/V of every attended position each step, 377 MB of it
  // at 8 sequences of 2,000 tokens on the SmolLM2 shape, and on 4 KiB pages that is a page walk
  // every 4 KiB.
  data_ = HugeRegion(bytes_);
  if (!data_.data()) {
    fail(ErrorCode::InvalidArgument, "cannot allocate a KV cache of " + std::to_string(bytes_ >> 20) + " MiB");
  }
  // Touch the pool now so the first steps do not pay for page faults.
  std::memset(data_.data(), 0, bytes_);
}

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F16: return "f16";
    case KvType::F32: return "f32";
    case KvType::Q8_0: return "q8_0";
  }
  return "?";
}

void KvCache::copy_block(int32_t src, int32_t dst) {
  const size_t block_bytes = static_cast<size_t>(block_size_) * row_bytes_;
  for (int32_t l = 0; l < n_layer_; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int32_t h = 0; h < n_head_kv_; ++h) std::memcpy(row(kv, l, h, dst, 0), row(kv, l, h, src, 0), block_bytes);
    }
  }
}

}  // namespace weft
