#include "error.h"

namespace weft {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::ModelFormat: return "E_MODEL_FORMAT";
    case ErrorCode::Unsupported: return "E_UNSUPPORTED";
    case ErrorCode::InvalidArgument: return "E_INVALID_ARGUMENT";
    case ErrorCode::KvExhausted: return "E_KV_EXHAUSTED";
    case ErrorCode::Aborted: return "E_ABORTED";
    case ErrorCode::Disposed: return "E_DISPOSED";
    case ErrorCode::Busy: return "E_BUSY";
    case ErrorCode::Internal: return "E_INTERNAL";
  }
  return "E_INTERNAL";
}

}  // namespace weft
