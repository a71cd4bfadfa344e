// A loaded model: hyperparameters from GGUF metadata and typed views of its weights, which stay
// in the file's memory map (nothing is copied at load).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ggml-types.h"
#include "gguf.h"
#include "huge-pages.h"

namespace weft {

enum class RopeType { Norm, Neox };  // Norm: rotate pairs (2i, 2i+1); Neox: (i, i + d/2)

struct HParams {
  std::string arch;
  int32_t n_vocab = 0;
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;
  int32_t n_rot = 0;        // leading dims of each head that RoPE rotates
  int32_t n_ff = 0;
  int32_t n_ctx_train = 0;
  float rope_theta = 10000.0f;
  // RoPE scaling: pair i at position p turns by p * rope_freq_scale * theta^(-2i/n_rot) /
  // rope_freq_factors[i], as llama.cpp's ggml_rope_ext computes it (no factors: 1).
  float rope_freq_scale = 1.0f;              // linear scaling: 1 / factor
  std::vector<float> rope_freq_factors;      // [n_rot/2] or empty (Llama 3.x "llama3" scaling)
  float rms_eps = 1e-5f;
  RopeType rope_type = RopeType::Norm;
  bool tied_output = false;
};

// A 2-D weight matrix: n_out rows of n_in elements of `type`, row_bytes apart.
struct Weight {
  GgmlType type = GgmlType::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  size_t row_bytes = 0;
  const uint8_t* data = nullptr;
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd]
  Weight wq, wk, wv, wo;             // [n_head*hd, n_embd], [n_kv*hd, n_embd] x2, [n_embd, n_head*hd]
  const float* bq = nullptr;         // optional biases (qwen2): [n_head*hd], [n_kv*hd], [n_kv*hd]
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;     // qwen3: per-head RMSNorm of Q and K before RoPE, [hd] each
  const float* k_norm = nullptr;
  const float* ffn_norm = nullptr;   // [n_embd]
  Weight w_gate, w_up, w_down;       // [n_ff, n_embd] x2, [n_embd, n_ff]
};

class Model {
 public:
  // Opens (maps or reads, see GgufFile::Access) and validates the model. Throws weft::Error.
  static std::unique_ptr<Model> load(const std::string& path, GgufFile::Access access = GgufFile::Access::Map);

  const GgufFile& file() const { return *file_; }
  const HParams& hp() const { return hp_; }

  Weight tok_embd;             // [n_vocab, n_embd]
  Weight output;               // [n_vocab, n_embd]; == tok_embd when tied
  const float* output_norm = nullptr;
  std::vector<LayerWeights> layers;

 private:
  Model() = default;
  void pack_weights();
  std::unique_ptr<GgufFile> file_;
  HParams hp_;
  HugeRegion packed_;  // packed weights of a mapped file (pack_weights)
};

}  // namespace weft
