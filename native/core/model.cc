#include "model.h"

#include <sys/mman.h>

#include <cmath>

#include "../cpu/kernels.h"
#include "error.h"

namespace weft {

namespace {

constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE (Linux 5.14), which older headers lack

// Architectures whose graph forward.cc implements: decoder-only transformers with RMSNorm, RoPE,
// GQA and SwiGLU. qwen2 adds q/k/v biases and the neox RoPE layout; qwen3 has no biases but
// RMS-normalizes every Q and K head before RoPE (neox as well), and its head size is its own
// (attention.key_length), not n_embd / n_head.
struct Arch {
  const char* name;
  RopeType rope;
  bool qk_norm;
};
constexpr Arch kArchs[] = {
    {"llama", RopeType::Norm, false},
    {"qwen2", RopeType::Neox, false},
    {"qwen3", RopeType::Neox, true},
};

const Arch& find_arch(const std::string& name, const std::string& path) {
  std::string known;
  for (const Arch& a : kArchs) {
    if (name == a.name) return a;
    known += (known.empty() ? "" : ", ") + std::string(a.name);
  }
  fail(ErrorCode::Unsupported, "model '" + path + "' has architecture '" + name + "', which weft does not support (it runs " + known + ")");
}

class Loader {
 public:
  Loader(const GgufFile& f, const std::string& arch) : f_(f), arch_(arch) {}

  const GgufValue& require(const std::string& key) const {
    const GgufValue* v = f_.find(key);
    if (!v) fail(ErrorCode::ModelFormat, "model '" + f_.path() + "' lacks required metadata '" + key + "'");
    return *v;
  }
  int32_t u32(const std::string& suffix, int64_t max = int64_t(1) << 24) const {
    const std::string key = arch_ + "." + suffix;
    return checked(key, require(key).as_int(key), max);
  }
  int32_t u32_or(const std::string& suffix, int32_t dflt, int64_t max = int64_t(1) << 24) const {
    const std::string key = arch_ + "." + suffix;
    const GgufValue* v = f_.find(key);
    return v ? checked(key, v->as_int(key), max) : dflt;
  }
  float f32(const std::string& suffix) const {
    const std::string key = arch_ + "." + suffix;
    return positive(key, require(key).as_double(key));
  }
  float f32_or(const std::string& suffix, float dflt) const {
    const std::string key = arch_ + "." + suffix;
    const GgufValue* v = f_.find(key);
    return v ? positive(key, v->as_double(key)) : dflt;
  }

  const GgufTensor* tensor(const std::string& name, bool required = true) const {
    const GgufTensor* t = f_.find_tensor(name);
    if (!t && required) fail(ErrorCode::ModelFormat, "model '" + f_.path() + "' lacks tensor '" + name + "'");
    return t;
  }

  Weight matrix(const std::string& name, int64_t n_in, int64_t n_out) const {
    const GgufTensor* t = tensor(name);
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out) {
      fail(ErrorCode::ModelFormat, "tensor '" + name + "' has shape " + shape(*t) + ", expected [" + std::to_string(n_in) +
                                       ", " + std::to_string(n_out) + "]");
    }
    if (!cpu::type_supported(t->type)) {
      fail(ErrorCode::Unsupported, "tensor '" + name + "' has type " + ggml_type_name(t->type) + ", which weft cannot run yet");
    }
    Weight w;
    w.type = t->type;
    w.n_in = n_in;
    w.n_out = n_out;
    w.row_bytes = ggml_row_bytes(t->type, n_in);
    w.data = t->data;
    return w;
  }

  const float* vector(const std::string& name, int64_t n, bool required = true) const {
    const GgufTensor* t = tensor(name, required);
    if (!t) return nullptr;
    if (t->n_elements() != n) fail(ErrorCode::ModelFormat, "tensor '" + name + "' has shape " + shape(*t) + ", expected [" + std::to_string(n) + "]");
    if (t->type != GgmlType::F32) fail(ErrorCode::Unsupported, "tensor '" + name + "' is " + ggml_type_name(t->type) + "; 1-D tensors must be F32");
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0) fail(ErrorCode::ModelFormat, "tensor '" + name + "' is misaligned");
    return reinterpret_cast<const float*>(t->data);
  }

 private:
  static float positive(const std::string& key, double d) {
    if (!std::isfinite(d) || d <= 0) fail(ErrorCode::ModelFormat, "metadata '" + key + "' = " + std::to_string(d) + " must be positive");
    return static_cast<float>(d);
  }
  int32_t checked(const std::string& key, int64_t v, int64_t max) const {
    if (v < 0 || v > max) fail(ErrorCode::ModelFormat, "metadata '" + key + "' = " + std::to_string(v) + " is out of range");
    return static_cast<int32_t>(v);
  }
  static std::string shape(const GgufTensor& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
  }

  const GgufFile& f_;
  const std::string& arch_;
};

// The per-pair angle divisors that Llama 3.x's "llama3" RoPE scaling implies, computed as
// llama.cpp's converter computes the rope_freqs.weight tensor it writes for such models: pairs
// whose wavelength is short next to the original context keep their frequency, long ones are
// slowed by `factor`, and those in between are interpolated smoothly.
std::vector<float> llama3_freq_factors(const Loader& L, const HParams& hp) {
  constexpr double kPi = 3.14159265358979323846;
  const double factor = L.f32("rope.scaling.factor");
  const double low = L.f32_or("rope.scaling.low_freq_factor", 1.0f);
  const double high = L.f32_or("rope.scaling.high_freq_factor", 4.0f);
  const double orig_ctx = L.u32_or("rope.scaling.original_context_length", 8192);
  if (low == high || orig_ctx < 1) {
    fail(ErrorCode::ModelFormat, "llama3 RoPE scaling needs low_freq_factor != high_freq_factor and original_context_length >= 1");
  }
  const double low_wavelen = orig_ctx / low, high_wavelen = orig_ctx / high;
  std::vector<float> out(static_cast<size_t>(hp.n_rot / 2));
  for (size_t i = 0; i < out.size(); ++i) {
    const double wavelen = 2 * kPi / std::pow(double(hp.rope_theta), -2.0 * double(i) / hp.n_rot);
    if (wavelen < high_wavelen) {
      out[i] = 1.0f;
    } else if (wavelen > low_wavelen) {
      out[i] = static_cast<float>(factor);
    } else {
      const double smooth = (orig_ctx / wavelen - low) / (high - low);
      out[i] = static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth));
    }
  }
  return out;
}

// RoPE scaling as llama.cpp reads it. A rope_freqs.weight tensor (per-pair angle divisors) is
// honoured whatever the keys say, as llama.cpp does; rope.scaling.type defaults to linear when
// only a factor is given (again as llama.cpp); "llama3" given only as keys becomes the divisors
// the converter would have baked in (a file with the tensor already has them). YaRN and LongRoPE
// change more than the angles (attention factor, ramps, two factor sets), so they are refused
// rather than run wrong.
void read_rope_scaling(const GgufFile& f, const Loader& L, HParams& hp) {
  const size_t n_pairs = static_cast<size_t>(hp.n_rot / 2);
  if (const float* t = L.vector("rope_freqs.weight", int64_t(n_pairs), false)) {
    for (size_t i = 0; i < n_pairs; ++i) {
      if (!std::isfinite(t[i]) || t[i] <= 0) {
        fail(ErrorCode::ModelFormat, "rope_freqs.weight[" + std::to_string(i) + "] = " + std::to_string(t[i]) + " must be positive");
      }
    }
    hp.rope_freq_factors.assign(t, t + n_pairs);
  }

  const std::string type_key = hp.arch + ".rope.scaling.type";
  const bool has_factor = f.find(hp.arch + ".rope.scaling.factor") || f.find(hp.arch + ".rope.scale_linear");
  std::string type = has_factor ? "linear" : "none";
  if (const GgufValue* v = f.find(type_key)) {
    if (v->type != GgufType::STRING) fail(ErrorCode::ModelFormat, "metadata '" + type_key + "' must be a string");
    type = v->s;
  }
  if (type == "none") return;
  if (type == "linear") {
    hp.rope_freq_scale = 1.0f / L.f32_or("rope.scaling.factor", L.f32_or("rope.scale_linear", 1.0f));
  } else if (type == "llama3") {
    if (hp.rope_freq_factors.empty()) hp.rope_freq_factors = llama3_freq_factors(L, hp);
  } else {
    fail(ErrorCode::Unsupported, "RoPE scaling type '" + type + "' (" + type_key + ") is not supported; weft runs none, linear and llama3");
  }
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, GgufFile::Access access) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = GgufFile::open(path, access);
  const GgufFile& f = *m->file_;

  const GgufValue* archv = f.find("general.architecture");
  if (!archv || archv->type != GgufType::STRING) {
    fail(ErrorCode::ModelFormat, "model '" + path + "' lacks 'general.architecture'");
  }
  HParams& hp = m->hp_;
  hp.arch = archv->s;
  const Arch& arch = find_arch(hp.arch, path);
  const Loader L(f, hp.arch);

  hp.n_embd = L.u32("embedding_length");
  hp.n_layer = L.u32("block_count", 4096);
  hp.n_head = L.u32("attention.head_count", 4096);
  hp.n_head_kv = L.u32_or("attention.head_count_kv", hp.n_head, 4096);
  hp.n_ff = L.u32("feed_forward_length");
  hp.n_ctx_train = L.u32_or("context_length", 2048, int64_t(1) << 30);
  if (hp.n_embd < 1 || hp.n_layer < 1 || hp.n_head < 1 || hp.n_head_kv < 1 || hp.n_ff < 1) {
    fail(ErrorCode::ModelFormat, "model '" + path + "' has a zero dimension in its hyperparameters");
  }
  if (hp.n_head % hp.n_head_kv != 0) {
    fail(ErrorCode::ModelFormat, "head_count " + std::to_string(hp.n_head) + " is not a multiple of head_count_kv " + std::to_string(hp.n_head_kv));
  }
  if (hp.n_embd % hp.n_head != 0 && !f.find(hp.arch + ".attention.key_length")) {
    fail(ErrorCode::ModelFormat, "embedding_length is not a multiple of head_count and no key_length is given");
  }
  hp.head_dim = L.u32_or("attention.key_length", hp.n_embd / hp.n_head, 65536);
  if (L.u32_or("attention.value_length", hp.head_dim, 65536) != hp.head_dim) {
    fail(ErrorCode::Unsupported, "models whose key and value head sizes differ are not supported");
  }
  if (hp.head_dim < 2 || hp.head_dim % 2 != 0) fail(ErrorCode::ModelFormat, "head size " + std::to_string(hp.head_dim) + " must be even");
  hp.n_rot = L.u32_or("rope.dimension_count", hp.head_dim, 65536);
  if (hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0) fail(ErrorCode::ModelFormat, "rope.dimension_count " + std::to_string(hp.n_rot) + " is invalid");
  hp.rope_theta = L.f32_or("rope.freq_base", 10000.0f);
  hp.rms_eps = L.f32_or("attention.layer_norm_rms_epsilon", 1e-5f);
  hp.rope_type = arch.rope;
  read_rope_scaling(f, L, hp);

  const GgufTensor* emb = L.tensor("token_embd.weight");
  if (emb->n_dims != 2 || emb->ne[0] != hp.n_embd) fail(ErrorCode::ModelFormat, "token_embd.weight does not have n_embd columns");
  if (emb->ne[1] > (int64_t(1) << 31) - 1) fail(ErrorCode::ModelFormat, "vocabulary too large");
  hp.n_vocab = static_cast<int32_t>(emb->ne[1]);

  const int64_t q_dim = int64_t(hp.n_head) * hp.head_dim;
  const int64_t kv_dim = int64_t(hp.n_head_kv) * hp.head_dim;
  m->tok_embd = L.matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
  m->output_norm = L.vector("output_norm.weight", hp.n_embd);
  hp.tied_output = L.tensor("output.weight", false) == nullptr;
  m->output = hp.tied_output ? m->tok_embd : L.matrix("output.weight", hp.n_embd, hp.n_vocab);

  m->layers.resize(static_cast<size_t>(hp.n_layer));
  for (int32_t l = 0; l < hp.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights& w = m->layers[static_cast<size_t>(l)];
    w.attn_norm = L.vector(p + "attn_norm.weight", hp.n_embd);
    w.wq = L.matrix(p + "attn_q.weight", hp.n_embd, q_dim);
    w.wk = L.matrix(p + "attn_k.weight", hp.n_embd, kv_dim);
    w.wv = L.matrix(p + "attn_v.weight", hp.n_embd, kv_dim);
    w.wo = L.matrix(p + "attn_output.weight", q_dim, hp.n_embd);
    w.bq = L.vector(p + "attn_q.bias", q_dim, false);
    w.bk = L.vector(p + "attn_k.bias", kv_dim, false);
    w.bv = L.vector(p + "attn_v.bias", kv_dim, false);
    if (arch.qk_norm) {
      w.q_norm = L.vector(p + "attn_q_norm.weight", hp.head_dim);
      w.k_norm = L.vector(p + "attn_k_norm.weight", hp.head_dim);
    }
    w.ffn_norm = L.vector(p + "ffn_norm.weight", hp.n_embd);
    w.w_gate = L.matrix(p + "ffn_gate.weight", hp.n_embd, hp.n_ff);
    w.w_up = L.matrix(p + "ffn_up.weight", hp.n_embd, hp.n_ff);
    w.w_down = L.matrix(p + "ffn_down.weight", hp.n_ff, hp.n_embd);
  }
  m->pack_weights();
  return m;
}

// Matmul weights whose kernels read another layout faster (cpu::packed_type: Q4_0, Q5_0), rewritten
// into it once: in place where the file was read into memory, else into packed_ (a mapped file's
// pages are the page cache's), whose source pages then leave the process, so that its memory
// holds the weights once. Not the token embeddings, which are read a row at a time, nor an output
// matrix tied to them.
void Model::pack_weights() {
  std::vector<Weight*> ws;
  for (LayerWeights& l : layers) {
    for (Weight* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) ws.push_back(w);
  }
  if (!hp_.tied_output) ws.push_back(&output);
  auto packs = [](const Weight& w) {
    const GgmlType p = cpu::packed_type(w.type);
    return p != w.type && w.n_out % cpu::row_group(p) == 0;
  };
  auto bytes = [](const Weight& w) { return (size_t(w.n_out) * w.row_bytes + 63) / 64 * 64; };
  const bool in_place = file_->access() == GgufFile::Access::Read;
  size_t total = 0;
  for (const Weight* w : ws) total += packs(*w) && !in_place ? bytes(*w) : 0;
  if (total > 0) {
    packed_ = HugeRegion(total);
    if (!packed_.data()) fail(ErrorCode::InvalidArgument, "cannot allocate " + std::to_string(total) + " bytes for packed weights");
    // Its pages faulted in by one call rather than one fault each as the packing first writes
    // them (advice: kernels before 5.14 refuse it). Loading the Qwen2.5-shape Q4_0 file mapped
    // (201 MB packed), nine loads each way: 134-332 ms, median 149, against 139-600, median 223.
    madvise(packed_.data(), total, kPopulateWrite);
  }
  uint8_t* at = packed_.data();
  for (Weight* w : ws) {
    if (!packs(*w)) continue;
    uint8_t* dst = in_place ? file_->writable(w->data) : at;
    cpu::pack_rows(w->type, w->n_in, w->data, dst, w->n_out);
    if (!in_place) file_->release(w->data, size_t(w->n_out) * w->row_bytes);
    w->data = dst;
    w->type = cpu::packed_type(w->type);
    if (!in_place) at += bytes(*w);
  }
  file_->seal();
  if (total > 0) mprotect(packed_.data(), total, PROT_READ);  // read-only, as the file's weights are
}

}  // namespace weft
