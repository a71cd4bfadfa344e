#include "model-wrap.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/forward.h"
#include "core/kv-cache.h"
#include "core/model.h"
#include "core/sampler.h"
#include "cpu/kernels.h"
#include "cpu/thread-pool.h"
#include "errors.h"
#include "metadata.h"

namespace weft::addon {

struct Engine {
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> kv;
  std::unique_ptr<cpu::ThreadPool> pool;
  std::unique_ptr<Forward> forward;
  std::vector<std::unique_ptr<Sampler>> samplers;  // one per pool thread
  // Logits of steps of up to kKeptLogitRows outputs (decode), kept from step to step (one step
  // is in flight at a time): a fresh buffer per step was a malloc and a zero-fill of up to a few
  // MB each time. A step with more outputs (a prompt scored with all its logits) gets its own,
  // freed with it, so that one such step does not pin hundreds of MB.
  static constexpr size_t kKeptLogitRows = 64;
  std::vector<float> logits;
  // Set by interrupt() (main thread), cleared as each step call is made: a run-ahead call stops
  // after the step in progress.
  std::atomic<bool> interrupted{false};
};

namespace {

// Fields of one row of StepBatch.sampling (Float64Array), in order.
enum SamplingField { kTemperature, kTopK, kTopP, kMinP, kSeed, kCounter, kSamplingFields };

struct LoadOptions {
  std::string path;
  int threads = 0;
  int64_t kv_tokens = 0;  // 0: min(context_length, 8192)
  int block_size = 16;
  KvType kv_type = KvType::F16;
  GgufFile::Access access = GgufFile::Access::Map;
};

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, LoadOptions o, Napi::Function ctor) : PromiseWorker(env), o_(std::move(o)), ctor_(Napi::Persistent(ctor)) {}

 protected:
  void Run() override {
    auto e = std::make_shared<Engine>();
    e->model = Model::load(o_.path, o_.access);
    const HParams& hp = e->model->hp();
    int64_t tokens = o_.kv_tokens > 0 ? o_.kv_tokens : std::min<int64_t>(hp.n_ctx_train, 8192);
    const int64_t n_blocks = (tokens + o_.block_size - 1) / o_.block_size;
    if (n_blocks > (int64_t(1) << 30)) fail(ErrorCode::InvalidArgument, "kvCacheTokens " + std::to_string(tokens) + " is too large");
    e->kv = std::make_unique<KvCache>(hp.n_layer, hp.n_head_kv, hp.head_dim, static_cast<int32_t>(n_blocks), o_.block_size, o_.kv_type);
    e->pool = std::make_unique<cpu::ThreadPool>(o_.threads > 0 ? o_.threads : cpu::physical_cores());
    e->forward = std::make_unique<Forward>(*e->model, *e->kv, *e->pool);
    for (int i = 0; i < e->pool->size(); ++i) e->samplers.push_back(std::make_unique<Sampler>(hp.n_vocab));
    engine_ = std::move(e);
  }
  Napi::Value Result(Napi::Env env) override {
    auto* holder = new std::shared_ptr<Engine>(std::move(engine_));
    auto ext = Napi::External<std::shared_ptr<Engine>>::New(env, holder, [](Napi::Env, std::shared_ptr<Engine>* p) { delete p; });
    return ctor_.Value().New({ext});
  }

 private:
  LoadOptions o_;
  Napi::FunctionReference ctor_;
  std::shared_ptr<Engine> engine_;
};

template <typename T>
std::vector<T> copy_array(Napi::Env env, const Napi::Object& o, const char* key, napi_typedarray_type kind, const char* kind_name, bool optional = false) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && optional) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kind) {
    throw_invalid(env, std::string("step batch field '") + key + "' must be a " + kind_name);
  }
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  std::vector<T> out(ta.ElementLength());
  if (!out.empty()) std::memcpy(out.data(), static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), out.size() * sizeof(T));
  return out;
}

int32_t int_field(Napi::Env env, const Napi::Object& o, const char* key, int32_t lo, int32_t hi, int32_t dflt, bool optional) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && optional) return dflt;
  if (!v.IsNumber()) throw_invalid(env, std::string("'") + key + "' must be an integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || std::floor(d) != d) {
    throw_invalid(env, std::string("'") + key + "' = " + std::to_string(d) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return static_cast<int32_t>(d);
}

// Steps one crossing may run (StepBatch.runAhead).
constexpr int32_t kMaxRunAhead = 64;

class StepWorker : public PromiseWorker {
 public:
  StepWorker(Napi::Env env, NativeModel* owner, Napi::Object owner_obj, std::shared_ptr<Engine> e, const Napi::Object& batch)
      : PromiseWorker(env), owner_(owner), owner_ref_(Napi::Persistent(owner_obj)), e_(std::move(e)) {
    tokens_ = copy_array<int32_t>(env, batch, "tokens", napi_int32_array, "Int32Array");
    positions_ = copy_array<int32_t>(env, batch, "positions", napi_int32_array, "Int32Array");
    seq_idx_ = copy_array<int32_t>(env, batch, "seqIdx", napi_int32_array, "Int32Array");
    tables_ = copy_array<int32_t>(env, batch, "blockTables", napi_int32_array, "Int32Array");
    out_idx_ = copy_array<int32_t>(env, batch, "outIdx", napi_int32_array, "Int32Array");
    sampling_ = copy_array<double>(env, batch, "sampling", napi_float64_array, "Float64Array");
    want_logits_ = copy_array<uint8_t>(env, batch, "wantLogits", napi_uint8_array, "Uint8Array", true);
    copies_ = copy_array<int32_t>(env, batch, "copies", napi_int32_array, "Int32Array", true);
    const int32_t n_vocab = e_->model->hp().n_vocab;
    max_blocks_ = int_field(env, batch, "maxBlocks", 1, 1 << 24, 0, false);
    top_n_ = int_field(env, batch, "topN", 0, std::min(n_vocab, 1024), 0, true);
    steps_ = int_field(env, batch, "runAhead", 1, kMaxRunAhead, 1, true);

    const size_t n = tokens_.size(), n_out = out_idx_.size();
    if (n == 0) throw_invalid(env, "step batch has no tokens");
    if (positions_.size() != n || seq_idx_.size() != n) throw_invalid(env, "tokens, positions and seqIdx must have the same length");
    if (tables_.empty() || tables_.size() % size_t(max_blocks_) != 0) throw_invalid(env, "blockTables length must be a non-zero multiple of maxBlocks");
    if (sampling_.size() != n_out * kSamplingFields) throw_invalid(env, "sampling must hold 6 numbers per output row");
    if (!want_logits_.empty() && want_logits_.size() != n_out) throw_invalid(env, "wantLogits must hold one flag per output row");
    if (copies_.size() % 2 != 0) throw_invalid(env, "copies must hold (src, dst) pairs");
    if (steps_ > 1) {
      // Each later step feeds row i's sampled token back as token i: every token must be a
      // sampled row of its own, in order, with no logits wanted.
      bool rows_ok = n_out == n;
      for (size_t i = 0; rows_ok && i < n; ++i) rows_ok = out_idx_[i] == int32_t(i);
      for (uint8_t w : want_logits_) rows_ok = rows_ok && w == 0;
      if (!rows_ok) throw_invalid(env, "runAhead > 1 needs one sampled output row per token, in token order, and no logits");
    }
    for (size_t o = 0; o < n_out; ++o) {
      const double* s = &sampling_[o * kSamplingFields];
      SamplingParams p;
      if (!std::isfinite(s[kTemperature]) || s[kTemperature] < 0) throw_invalid(env, "temperature must be a finite number >= 0");
      if (!(s[kTopK] >= 0 && s[kTopK] <= n_vocab) || std::floor(s[kTopK]) != s[kTopK]) throw_invalid(env, "topK must be an integer in [0, n_vocab]");
      if (!(s[kTopP] > 0 && s[kTopP] <= 1)) throw_invalid(env, "topP must be in (0, 1]");
      if (!(s[kMinP] >= 0 && s[kMinP] <= 1)) throw_invalid(env, "minP must be in [0, 1]");
      if (!(s[kSeed] >= 0 && s[kSeed] <= 9007199254740991.0) || std::floor(s[kSeed]) != s[kSeed]) throw_invalid(env, "seed must be a safe non-negative integer");
      if (!(s[kCounter] >= 0 && s[kCounter] <= 9007199254740991.0)) throw_invalid(env, "sampling counter must be a safe non-negative integer");
      p.temperature = static_cast<float>(s[kTemperature]);
      p.top_k = static_cast<int32_t>(s[kTopK]);
      p.top_p = static_cast<float>(s[kTopP]);
      p.min_p = static_cast<float>(s[kMinP]);
      p.seed = static_cast<uint64_t>(s[kSeed]);
      p.counter = static_cast<uint64_t>(s[kCounter]);
      p.n_top = top_n_;
      params_.push_back(p);
    }
    batch_.n_tokens = static_cast<int32_t>(n);
    batch_.tokens = tokens_.data();
    batch_.positions = positions_.data();
    batch_.seq_idx = seq_idx_.data();
    batch_.n_seqs = static_cast<int32_t>(tables_.size() / size_t(max_blocks_));
    batch_.max_blocks = max_blocks_;
    batch_.block_tables = tables_.data();
    batch_.n_out = static_cast<int32_t>(n_out);
    batch_.out_idx = out_idx_.data();
    batch_.n_copies = static_cast<int32_t>(copies_.size() / 2);
    batch_.copies = copies_.data();
  }

 protected:
  void Run() override {
    const HParams& hp = e_->model->hp();
    const size_t n_out = size_t(batch_.n_out), V = size_t(hp.n_vocab), k = size_t(steps_);
    std::vector<float>& buf = n_out <= Engine::kKeptLogitRows ? e_->logits : own_logits_;
    if (buf.size() < n_out * V) buf.resize(n_out * V);
    logits_ = buf.data();
    out_tokens_.resize(k * n_out);
    out_logprobs_.resize(k * n_out);
    out_conf_.resize(k * n_out);
    top_ids_.resize(k * n_out * size_t(top_n_));
    top_lp_.resize(k * n_out * size_t(top_n_));
    for (size_t j = 0; j < k; ++j) {
      if (j > 0) {  // the next step of a run-ahead: each token is followed by its sample
        if (e_->interrupted.load(std::memory_order_relaxed)) {
          steps_ = int32_t(j);  // the outputs of steps [0, j) are what the call returns
          break;
        }
        for (size_t i = 0; i < n_out; ++i) {
          tokens_[i] = out_tokens_[(j - 1) * n_out + i];
          positions_[i] += 1;
          params_[i].counter += 1;
        }
        batch_.n_copies = 0;  // copies precede the first step only
      }
      const auto t0 = std::chrono::steady_clock::now();
      validate_batch(batch_, hp, *e_->kv);
      const bool more = j + 1 < k;  // another step of this call follows its sampling
      e_->forward->run(batch_, logits_, more || n_out > 1);  // (or the pool samples right after)
      const auto t1 = std::chrono::steady_clock::now();
      const size_t at = j * n_out;
      auto sample_rows = [&](int tid, int nth) {
        Sampler& s = *e_->samplers[size_t(tid)];
        for (size_t o = n_out * tid / nth; o < n_out * (tid + 1) / nth; ++o) {
          const size_t top = (at + o) * size_t(top_n_);
          const SampleResult r = s.sample(&logits_[o * V], params_[o], top_n_ ? &top_ids_[top] : nullptr, top_n_ ? &top_lp_[top] : nullptr);
          out_tokens_[at + o] = r.token;
          out_logprobs_[at + o] = r.logprob;
          out_conf_[at + o] = r.confidence;
        }
      };
      // One row needs one thread: waking the pool for it would only add a wake-up.
      if (n_out <= 1) sample_rows(0, 1);
      else e_->pool->run(sample_rows, more);
      const auto t2 = std::chrono::steady_clock::now();
      forward_ms_ += std::chrono::duration<double, std::milli>(t1 - t0).count();
      sample_ms_ += std::chrono::duration<double, std::milli>(t2 - t1).count();
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    const size_t rows = size_t(steps_) * size_t(batch_.n_out), top = rows * size_t(top_n_);
    r.Set("tokens", to_js<int32_t, Napi::Int32Array>(env, out_tokens_, rows));
    r.Set("logprobs", to_js<float, Napi::Float32Array>(env, out_logprobs_, rows));
    r.Set("confidences", to_js<float, Napi::Float32Array>(env, out_conf_, rows));
    if (top_n_ > 0) {
      r.Set("topIds", to_js<int32_t, Napi::Int32Array>(env, top_ids_, top));
      r.Set("topLogprobs", to_js<float, Napi::Float32Array>(env, top_lp_, top));
    }
    if (!want_logits_.empty()) {
      const size_t V = size_t(e_->model->hp().n_vocab);
      size_t rows = 0;
      for (uint8_t w : want_logits_) rows += w ? 1 : 0;
      Napi::Float32Array l = Napi::Float32Array::New(env, rows * V);
      size_t k = 0;
      for (size_t o = 0; o < want_logits_.size(); ++o) {
        if (want_logits_[o]) std::memcpy(l.Data() + (k++) * V, &logits_[o * V], V * sizeof(float));
      }
      r.Set("logits", l);
    }
    r.Set("steps", Napi::Number::New(env, steps_));
    r.Set("forwardMs", forward_ms_);
    r.Set("sampleMs", sample_ms_);
    return r;
  }

  void Finish() override { owner_->step_finished(); }

 private:
  // The first n elements of v.
  template <typename T, typename A>
  static A to_js(Napi::Env env, const std::vector<T>& v, size_t n) {
    A a = A::New(env, n);
    if (n > 0) std::memcpy(a.Data(), v.data(), n * sizeof(T));
    return a;
  }

  NativeModel* owner_;
  Napi::ObjectReference owner_ref_;  // keeps the JS object (and owner_) alive while in flight
  std::shared_ptr<Engine> e_;
  std::vector<int32_t> tokens_, positions_, seq_idx_, tables_, out_idx_, copies_;
  std::vector<double> sampling_;
  std::vector<uint8_t> want_logits_;
  std::vector<SamplingParams> params_;
  int32_t max_blocks_ = 0, top_n_ = 0, steps_ = 1;
  StepBatch batch_;
  std::vector<float> own_logits_;
  float* logits_ = nullptr;  // e_->logits or own_logits_
  std::vector<int32_t> out_tokens_, top_ids_;
  std::vector<float> out_logprobs_, out_conf_, top_lp_;
  double forward_ms_ = 0, sample_ms_ = 0;
};

}  // namespace

Napi::Function NativeModel::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeModel", {
    InstanceMethod<&NativeModel::Info>("info"),
    InstanceMethod<&NativeModel::Metadata>("metadata"),
    InstanceMethod<&NativeModel::Step>("step"),
    InstanceMethod<&NativeModel::Profile>("profile"),
    InstanceMethod<&NativeModel::Interrupt>("interrupt"),
    InstanceMethod<&NativeModel::Dispose>("dispose"),
  });
  // LoadWorker builds instances from this once the model is ready.
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(ctor)));
  return ctor;
}

NativeModel::NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeModel is created by loadModel()");
  }
  engine_ = *info[0].As<Napi::External<std::shared_ptr<Engine>>>().Data();
}

const std::shared_ptr<Engine>& NativeModel::engine(Napi::Env env) const {
  if (!engine_) throw make_error(env, "E_DISPOSED", "the model has been disposed");
  return engine_;
}

Napi::Value NativeModel::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "loadModel(path: string, options: object)");
  }
  LoadOptions o;
  o.path = info[0].As<Napi::String>().Utf8Value();
  const Napi::Object opts = info[1].As<Napi::Object>();
  o.threads = int_field(env, opts, "threads", 0, 256, 0, true);
  o.block_size = int_field(env, opts, "blockSize", 1, 4096, 16, true);
  o.kv_tokens = int_field(env, opts, "kvCacheTokens", 0, 1 << 30, 0, true);
  const Napi::Value kt = opts.Get("kvType");
  if (!kt.IsUndefined()) {
    const std::string s = kt.IsString() ? kt.As<Napi::String>().Utf8Value() : "";
    if (s == "f16") o.kv_type = KvType::F16;
    else if (s == "f32") o.kv_type = KvType::F32;
    else if (s == "q8_0") o.kv_type = KvType::Q8_0;
    else throw_invalid(env, "kvType must be one of f16, f32, q8_0");
  }
  const Napi::Value mm = opts.Get("useMmap");
  if (!mm.IsUndefined()) {
    if (!mm.IsBoolean()) throw_invalid(env, "useMmap must be a boolean");
    if (!mm.As<Napi::Boolean>().Value()) o.access = GgufFile::Access::Read;
  }
  auto* w = new LoadWorker(env, std::move(o), env.GetInstanceData<Napi::FunctionReference>()->Value());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value NativeModel::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Engine& e = *engine(env);
  const HParams& hp = e.model->hp();
  Napi::Object o = Napi::Object::New(env);
  o.Set("arch", hp.arch);
  o.Set("vocabSize", hp.n_vocab);
  o.Set("embeddingLength", hp.n_embd);
  o.Set("layers", hp.n_layer);
  o.Set("heads", hp.n_head);
  o.Set("kvHeads", hp.n_head_kv);
  o.Set("headDim", hp.head_dim);
  o.Set("feedForwardLength", hp.n_ff);
  o.Set("contextLength", hp.n_ctx_train);
  o.Set("ropeTheta", hp.rope_theta);
  o.Set("rmsEps", hp.rms_eps);
  o.Set("tiedOutput", hp.tied_output);
  o.Set("fileBytes", Napi::Number::New(env, static_cast<double>(e.model->file().file_size())));
  o.Set("useMmap", e.model->file().access() == GgufFile::Access::Map);
  std::map<std::string, std::pair<int, double>> types;
  double tensor_bytes = 0;
  for (const GgufTensor& t : e.model->file().tensors()) {
    auto& slot = types[ggml_type_name(t.type)];
    slot.first++;
    slot.second += static_cast<double>(t.n_bytes);
    tensor_bytes += static_cast<double>(t.n_bytes);
  }
  Napi::Object tt = Napi::Object::New(env);
  for (const auto& [name, cb] : types) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("count", cb.first);
    c.Set("bytes", cb.second);
    tt.Set(name, c);
  }
  o.Set("tensorTypes", tt);
  o.Set("tensorBytes", tensor_bytes);
  Napi::Object kv = Napi::Object::New(env);
  kv.Set("blocks", e.kv->n_blocks());
  kv.Set("blockSize", e.kv->block_size());
  kv.Set("type", kv_type_name(e.kv->type()));
  kv.Set("bytes", Napi::Number::New(env, static_cast<double>(e.kv->bytes())));
  o.Set("kvCache", kv);
  o.Set("threads", e.pool->size());
  o.Set("kernels", cpu::kernel_backend());
  return o;
}

Napi::Value NativeModel::Metadata(const Napi::CallbackInfo& info) {
  return metadata_to_js(info.Env(), engine(info.Env())->model->file());
}

Napi::Value NativeModel::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& e = engine(env);
  if (busy_) throw make_error(env, "E_BUSY", "a step is already in flight on this model");
  if (info.Length() != 1 || !info[0].IsObject()) throw_invalid(env, "step(batch) takes one object");
  auto* w = new StepWorker(env, this, Value(), e, info[0].As<Napi::Object>());
  e->interrupted.store(false, std::memory_order_relaxed);  // only an interrupt() after this call counts
  busy_ = true;
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value NativeModel::Profile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& e = engine(env);
  // The step worker writes the profile; reading it meanwhile would race.
  if (busy_) throw make_error(env, "E_BUSY", "profile() cannot be read while a step is in flight");
  const Forward::Profile p = e->forward->take_profile();
  Napi::Object ops = Napi::Object::New(env);
  for (int op = 0; op < Forward::kOps; ++op) ops.Set(Forward::op_name(op), p.ms[op]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("steps", Napi::Number::New(env, double(p.steps)));
  o.Set("tokens", Napi::Number::New(env, double(p.tokens)));
  o.Set("ms", ops);
  return o;
}

Napi::Value NativeModel::Interrupt(const Napi::CallbackInfo& info) {
  engine(info.Env())->interrupted.store(true, std::memory_order_relaxed);
  return info.Env().Undefined();
}

Napi::Value NativeModel::Dispose(const Napi::CallbackInfo& info) {
  engine_.reset();
  return info.Env().Undefined();
}

}  // namespace weft::addon
