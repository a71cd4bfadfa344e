// NativeModel: one loaded model with its KV pool, thread pool and samplers, as a JS object.
//
// JS surface (typed in lib/native.ts):
//   loadModel(path, {threads, kvCacheTokens, blockSize, kvType}) -> Promise<NativeModel>
//   model.info()                 hyperparameters, KV pool geometry, tensor type counts
//   model.metadata()             GGUF metadata object (for the tokenizer)
//   model.step(batch)            -> Promise<StepResult>; at most one in flight (else E_BUSY)
//   model.profile()              per-phase forward time since the last call (E_BUSY during a step)
//   model.dispose()              idempotent; frees once any in-flight step has finished
#pragma once

#include <napi.h>

#include <memory>

namespace weft::addon {

struct Engine;

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Value Load(const Napi::CallbackInfo& info);
  explicit NativeModel(const Napi::CallbackInfo& info);

  void step_finished() { busy_ = false; }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Metadata(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Profile(const Napi::CallbackInfo& info);
  Napi::Value Interrupt(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  const std::shared_ptr<Engine>& engine(Napi::Env env) const;

  // Shared with an in-flight step worker, so dispose() never frees what a step still uses.
  std::shared_ptr<Engine> engine_;
  bool busy_ = false;
};

}  // namespace weft::addon
