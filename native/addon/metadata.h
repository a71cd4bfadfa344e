// GGUF metadata and tensor tables as JS values (shapes in lib/gguf/types.ts).
#pragma once

#include <napi.h>

#include "core/gguf.h"

namespace weft::addon {

Napi::Object metadata_to_js(Napi::Env env, const GgufFile& f);
Napi::Array tensors_to_js(Napi::Env env, const GgufFile& f);

}  // namespace weft::addon
