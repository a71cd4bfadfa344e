// Turning core failures into JS errors with a stable `code`, and the promise-returning worker
// every async call is built on (sharp's pattern: inputs copied into the worker on the main
// thread, Run() touches only C++ state, Result() builds JS values back on the main thread).
#pragma once

#include <napi.h>

#include <string>

namespace weft::addon {

// An Error whose `code` is one of the E_* codes; lib/native.ts rewraps it as a WeftError.
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message);
[[noreturn]] void throw_invalid(Napi::Env env, const std::string& message);

// Runs f, converting weft::Error and std::exception into thrown JS errors.
template <typename F>
auto guard(Napi::Env env, F&& f) -> decltype(f());

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;                          // worker thread: no JS here
  virtual Napi::Value Result(Napi::Env env) = 0;   // main thread, after Run() succeeded
  virtual void Finish() {}                         // main thread, after success or failure

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error& e) final;

  Napi::Promise::Deferred deferred_;
  std::string code_ = "E_INTERNAL";
};

}  // namespace weft::addon

#include "errors-inl.h"
