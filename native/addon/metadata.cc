#include "metadata.h"

#include <cstring>

namespace weft::addon {

namespace {

Napi::Value int_to_js(Napi::Env env, int64_t v) {
  constexpr int64_t kSafe = (int64_t(1) << 53) - 1;
  if (v >= -kSafe && v <= kSafe) return Napi::Number::New(env, static_cast<double>(v));
  return Napi::BigInt::New(env, v);
}

Napi::Value uint_to_js(Napi::Env env, uint64_t v) {
  if (v <= (uint64_t(1) << 53) - 1) return Napi::Number::New(env, static_cast<double>(v));
  return Napi::BigInt::New(env, v);
}

// Copies the raw little-endian elements into a fresh typed array of the element type.
template <typename T>
Napi::Value typed(Napi::Env env, const GgufValue& v, napi_typedarray_type kind) {
  const size_t n = static_cast<size_t>(v.n_elems);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n * sizeof(T));
  if (n) std::memcpy(buf.Data(), v.elems, n * sizeof(T));
  return Napi::TypedArrayOf<T>::New(env, n, buf, 0, kind);
}

Napi::Value value_to_js(Napi::Env env, const GgufValue& v);

Napi::Value array_to_js(Napi::Env env, const GgufValue& v) {
  switch (v.elem_type) {
    case GgufType::UINT8: return typed<uint8_t>(env, v, napi_uint8_array);
    case GgufType::INT8: return typed<int8_t>(env, v, napi_int8_array);
    case GgufType::UINT16: return typed<uint16_t>(env, v, napi_uint16_array);
    case GgufType::INT16: return typed<int16_t>(env, v, napi_int16_array);
    case GgufType::UINT32: return typed<uint32_t>(env, v, napi_uint32_array);
    case GgufType::INT32: return typed<int32_t>(env, v, napi_int32_array);
    case GgufType::FLOAT32: return typed<float>(env, v, napi_float32_array);
    case GgufType::FLOAT64: return typed<double>(env, v, napi_float64_array);
    case GgufType::UINT64: return typed<uint64_t>(env, v, napi_biguint64_array);
    case GgufType::INT64: return typed<int64_t>(env, v, napi_bigint64_array);
    case GgufType::BOOL: {
      Napi::Array a = Napi::Array::New(env, static_cast<size_t>(v.n_elems));
      for (uint32_t i = 0; i < v.n_elems; ++i) a.Set(i, Napi::Boolean::New(env, v.elems[i] != 0));
      return a;
    }
    case GgufType::STRING: {
      Napi::Array a = Napi::Array::New(env, v.strings.size());
      for (uint32_t i = 0; i < v.strings.size(); ++i) a.Set(i, Napi::String::New(env, v.strings[i]));
      return a;
    }
    case GgufType::ARRAY: {
      Napi::Array a = Napi::Array::New(env, v.items.size());
      for (uint32_t i = 0; i < v.items.size(); ++i) a.Set(i, array_to_js(env, v.items[i]));
      return a;
    }
  }
  return env.Undefined();
}

Napi::Value value_to_js(Napi::Env env, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32: case GgufType::UINT64:
      return uint_to_js(env, v.u);
    case GgufType::INT8: case GgufType::INT16: case GgufType::INT32: case GgufType::INT64:
      return int_to_js(env, v.i);
    case GgufType::FLOAT32: case GgufType::FLOAT64: return Napi::Number::New(env, v.f);
    case GgufType::BOOL: return Napi::Boolean::New(env, v.u != 0);
    case GgufType::STRING: return Napi::String::New(env, v.s);
    case GgufType::ARRAY: return array_to_js(env, v);
  }
  return env.Undefined();
}

}  // namespace

Napi::Object metadata_to_js(Napi::Env env, const GgufFile& f) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [key, value] : f.metadata()) o.Set(key, value_to_js(env, value));
  return o;
}

Napi::Array tensors_to_js(Napi::Env env, const GgufFile& f) {
  Napi::Array a = Napi::Array::New(env, f.tensors().size());
  uint32_t i = 0;
  for (const GgufTensor& t : f.tensors()) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t.name);
    o.Set("type", ggml_type_name(t.type));
    Napi::Array shape = Napi::Array::New(env, static_cast<size_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; ++d) shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(t.ne[d])));
    o.Set("shape", shape);
    o.Set("offset", Napi::Number::New(env, static_cast<double>(t.offset)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(t.n_bytes)));
    a.Set(i++, o);
  }
  return a;
}

}  // namespace weft::addon
