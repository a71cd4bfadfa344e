// Module entry: loadModel, readGguf, and the NativeModel class.
#include <napi.h>

#include <memory>
#include <string>

#include "core/gguf.h"
#include "errors.h"
#include "metadata.h"
#include "model-wrap.h"
#include "quantize.h"

namespace weft::addon {
namespace {

class ReadGgufWorker : public PromiseWorker {
 public:
  ReadGgufWorker(Napi::Env env, std::string path) : PromiseWorker(env), path_(std::move(path)) {}

 protected:
  void Run() override { file_ = GgufFile::open(path_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("version", file_->version());
    o.Set("alignment", Napi::Number::New(env, static_cast<double>(file_->alignment())));
    o.Set("fileBytes", Napi::Number::New(env, static_cast<double>(file_->file_size())));
    o.Set("metadata", metadata_to_js(env, *file_));
    o.Set("tensors", tensors_to_js(env, *file_));
    return o;
  }

 private:
  std::string path_;
  std::unique_ptr<GgufFile> file_;
};

Napi::Value ReadGguf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "readGguf(path: string)");
  auto* w = new ReadGgufWorker(env, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace
}  // namespace weft::addon

static Napi::Object InitWeft(Napi::Env env, Napi::Object exports) {
  using weft::addon::NativeModel;
  Napi::Function ctor = NativeModel::Init(env);
  exports.Set("NativeModel", ctor);
  exports.Set("loadModel", Napi::Function::New(env, NativeModel::Load));
  exports.Set("readGguf", Napi::Function::New(env, weft::addon::ReadGguf));
  exports.Set("quantize", Napi::Function::New(env, weft::addon::Quantize));
  return exports;
}

NODE_API_MODULE(weft, InitWeft)
