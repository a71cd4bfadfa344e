#include "errors.h"

namespace weft::addon {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

void throw_invalid(Napi::Env env, const std::string& message) { throw make_error(env, "E_INVALID_ARGUMENT", message); }

void PromiseWorker::Execute() {
  try {
    Run();
  } catch (const weft::Error& e) {
    code_ = error_code_name(e.code());
    SetError(e.what());
  } catch (const std::bad_alloc&) {
    SetError("out of memory");
  } catch (const std::exception& e) {
    SetError(e.what());
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Finish();
  // Building the result can fail (a JS allocation); reject rather than throw into the loop.
  try {
    deferred_.Resolve(Result(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (const std::exception& e) {
    deferred_.Reject(make_error(env, "E_INTERNAL", e.what()).Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Finish();
  deferred_.Reject(make_error(env, code_, e.Message()).Value());
}

}  // namespace weft::addon
