// quantize(): the core's reference quantizers for GGUF writers.
#pragma once

#include <napi.h>

namespace weft::addon {

Napi::Value Quantize(const Napi::CallbackInfo& info);

}  // namespace weft::addon
