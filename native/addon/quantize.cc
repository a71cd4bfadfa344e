// quantize(type, values, rowLength): f32 rows -> the bytes of a ggml type, with the core's own
// reference quantizers. GGUF writers (tests, bench, the model exporter) use it so every quantized
// file weft writes is encoded by the same code that its kernels are tested against.
#include "quantize.h"

#include <cstring>
#include <string>
#include <vector>

#include "core/ggml-types.h"
#include "cpu/kernels.h"
#include "errors.h"

namespace weft::addon {
namespace {

class QuantizeWorker : public PromiseWorker {
 public:
  QuantizeWorker(Napi::Env env, GgmlType type, std::vector<float> src, int64_t row_len)
      : PromiseWorker(env), type_(type), src_(std::move(src)), row_len_(row_len) {}

 protected:
  void Run() override {
    const int64_t rows = row_len_ == 0 ? 0 : static_cast<int64_t>(src_.size()) / row_len_;
    const size_t row_bytes = ggml_row_bytes(type_, row_len_);
    out_.resize(row_bytes * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      cpu::quantize_row(type_, src_.data() + r * row_len_, out_.data() + r * row_bytes, row_len_);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    return Napi::Buffer<uint8_t>::Copy(env, out_.data(), out_.size());
  }

 private:
  GgmlType type_;
  std::vector<float> src_;
  int64_t row_len_;
  std::vector<uint8_t> out_;
};

}  // namespace

Napi::Value Quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsNumber() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "quantize(typeId: number, values: Float32Array, rowLength: number)");
  }
  const double type_id = info[0].As<Napi::Number>().DoubleValue();
  const double row_len = info[2].As<Napi::Number>().DoubleValue();
  Napi::Float32Array values = info[1].As<Napi::Float32Array>();
  if (type_id < 0 || type_id >= 1024 || type_id != static_cast<uint32_t>(type_id)) {
    throw_invalid(env, "quantize: type id must be a small non-negative integer");
  }
  const GgmlTypeTraits tr = ggml_type_traits(static_cast<uint32_t>(type_id));
  if (tr.name == nullptr) throw_invalid(env, "quantize: unknown ggml type id " + std::to_string(type_id));
  const GgmlType type = static_cast<GgmlType>(static_cast<uint32_t>(type_id));
  if (!(row_len > 0) || row_len != static_cast<int64_t>(row_len) ||
      static_cast<int64_t>(row_len) % tr.block != 0) {
    throw_invalid(env, std::string("quantize: row length must be a positive multiple of ") +
                           std::to_string(tr.block) + " for " + tr.name);
  }
  const int64_t n = static_cast<int64_t>(row_len);
  if (values.ElementLength() % static_cast<size_t>(n) != 0) {
    throw_invalid(env, "quantize: values.length is not a whole number of rows");
  }
  std::vector<float> src(values.Data(), values.Data() + values.ElementLength());
  // Unsupported types fail here, on the main thread, with the kernels' own E_UNSUPPORTED message.
  guard(env, [&] {
    if (src.empty()) return;
    std::vector<uint8_t> probe(ggml_row_bytes(type, n));
    cpu::quantize_row(type, src.data(), probe.data(), n);
  });
  auto* w = new QuantizeWorker(env, type, std::move(src), n);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace weft::addon
