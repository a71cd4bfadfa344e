// Errors raised by the core. Every failure on data that came from outside (a model file, a
// batch handed over by the binding) is a weft::Error with a stable code; the addon turns it into
// a JS WeftError with the same code. Nothing in the core aborts on such data.
#pragma once

#include <stdexcept>
#include <string>

namespace weft {

enum class ErrorCode {
  ModelFormat,      // E_MODEL_FORMAT: the file is not a valid GGUF / model
  Unsupported,      // E_UNSUPPORTED: valid, but a type or architecture we do not run
  InvalidArgument,  // E_INVALID_ARGUMENT: impossible option or malformed batch
  KvExhausted,      // E_KV_EXHAUSTED
  Aborted,          // E_ABORTED
  Disposed,         // E_DISPOSED
  Busy,             // E_BUSY
  Internal,         // E_INTERNAL: a bug in weft
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

}  // namespace weft
