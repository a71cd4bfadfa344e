// Public kernel entry points: validate cheaply, then call through the backend chosen once per
// process (AVX-512 where this build has that TU and the CPU has AVX-512 F/BW/VL/VNNI, else AVX2
// where it has AVX2+FMA+F16C, else the reference).
// The scalar fp16/bf16 conversions live in kernels-ref.cc; they are the same on every backend.
// Rows and row strides need only their element's natural alignment (4 bytes for F32, 2 for
// F16/BF16/Q8_0); every vector load is unaligned.
#include "kernels.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../core/error.h"
#include "kernels-impl.h"

namespace weft::cpu {

namespace detail {

float* scratch_floats(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace detail

namespace {

using detail::Backend;
using detail::TypeKernels;

bool cpu_has_avx2() {
#if defined(WEFT_HAVE_AVX2_TU) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

// (__builtin_cpu_supports also checks that the OS saves the zmm state.)
bool cpu_has_avx512() {
#if defined(WEFT_HAVE_AVX512_TU) && (defined(__x86_64__) || defined(__i386__))
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

// Each backend is built once, on first use, and only where this build and this CPU have it
// (install_* are compiled with their ISA's flags, so they may not run anywhere else).
const Backend* avx2_backend() {
#if defined(WEFT_HAVE_AVX2_TU)
  if (!cpu_has_avx2()) return nullptr;
  static const Backend b = [] {
    Backend copy = detail::ref_backend();
    detail::install_avx2(copy);
    return copy;
  }();
  return &b;
#else
  return nullptr;
#endif
}

const Backend* avx512_backend() {
#if defined(WEFT_HAVE_AVX512_TU)
  if (!cpu_has_avx512()) return nullptr;
  static const Backend b = [] {
    Backend copy = *avx2_backend();
    detail::install_avx512(copy);
    return copy;
  }();
  return &b;
#else
  return nullptr;
#endif
}

// The named backend if this build and CPU have it, else null.
const Backend* backend_named(const char* name) {
  if (std::strcmp(name, "scalar") == 0) return &detail::ref_backend();
  if (std::strcmp(name, "avx2") == 0) return avx2_backend();
  if (std::strcmp(name, "avx512") == 0) return avx512_backend();
  return nullptr;
}

// The automatic choice: WEFT_KERNELS (scalar, avx2, avx512) wins where available, then the
// widest the CPU has.
const Backend* automatic_backend() {
  static const Backend* const chosen = [] {
    const char* env = std::getenv("WEFT_KERNELS");
    const Backend* named = env != nullptr ? backend_named(env) : nullptr;
    if (named != nullptr) return named;
    if (const Backend* b = avx512_backend()) return b;
    if (const Backend* b = avx2_backend()) return b;
    return &detail::ref_backend();
  }();
  return chosen;
}

std::atomic<const Backend*> g_forced{nullptr};

const Backend& backend() {
  const Backend* forced = g_forced.load(std::memory_order_relaxed);
  return forced != nullptr ? *forced : *automatic_backend();
}

uint32_t type_index(GgmlType t) { return static_cast<uint32_t>(t); }

const TypeKernels* kernels_for(GgmlType t) {
  const uint32_t i = type_index(t);
  return i < detail::kTypeIdLimit ? &backend().types[i] : nullptr;
}

[[noreturn]] void unsupported(GgmlType t, const char* what) {
  fail(ErrorCode::Unsupported, std::string(what) + ": tensor type " + ggml_type_name(t) +
                                   " is not supported by the CPU kernels");
}

// The kernels of t for an entry that needs a weight type: matmul and vec_dot_type (which packed
// types have), or vec_dot (which they do not).
const TypeKernels& weight_kernels(GgmlType t, const char* what, bool need_vec_dot = false) {
  const TypeKernels* k = kernels_for(t);
  if (k == nullptr || k->matmul == nullptr || (need_vec_dot && k->vec_dot == nullptr)) unsupported(t, what);
  return *k;
}

void check_row_length(GgmlType t, int64_t n, const char* what) {
  const int64_t block = ggml_type_traits(t).block;
  if (n < 0 || block <= 0 || n % block != 0) {
    fail(ErrorCode::InvalidArgument, std::string(what) + ": row length " + std::to_string(n) +
                                         " is not a multiple of the " + ggml_type_name(t) +
                                         " block size");
  }
}

}  // namespace

bool type_supported(GgmlType t) {
  const TypeKernels* k = kernels_for(t);
  return k != nullptr && k->vec_dot != nullptr && k->dequantize != nullptr;
}

GgmlType vec_dot_type(GgmlType t) { return weight_kernels(t, "vec_dot_type").act_type; }

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
  const TypeKernels* k = kernels_for(t);
  if (k == nullptr || k->dequantize == nullptr) unsupported(t, "dequantize_row");
  check_row_length(t, n, "dequantize_row");
  k->dequantize(src, dst, n);
}

void quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
  const TypeKernels* k = kernels_for(t);
  if (k == nullptr || k->quantize == nullptr) unsupported(t, "quantize_row");
  check_row_length(t, n, "quantize_row");
  k->quantize(src, dst, n);
}

float vec_dot(GgmlType t, int64_t n, const void* w, const void* a) {
  const TypeKernels& k = weight_kernels(t, "vec_dot", true);
  check_row_length(t, n, "vec_dot");
  return k.vec_dot(n, w, a);
}

void matmul(GgmlType t, int64_t n_in, const void* w, size_t w_row_bytes, const void* act,
            size_t act_row_bytes, int n_tok, float* y, int64_t y_stride, int64_t r_begin,
            int64_t r_end) {
  const TypeKernels& k = weight_kernels(t, "matmul");
  check_row_length(t, n_in, "matmul");
  check_row_length(k.act_type, n_in, "matmul");
  if (w_row_bytes < ggml_row_bytes(t, n_in) || act_row_bytes < ggml_row_bytes(k.act_type, n_in)) {
    fail(ErrorCode::InvalidArgument, "matmul: row stride smaller than a row");
  }
  if (row_group(t) > 1 && w_row_bytes != ggml_row_bytes(t, n_in)) {
    fail(ErrorCode::InvalidArgument, std::string("matmul: ") + ggml_type_name(t) + " rows are interleaved, so they have no stride of their own");
  }
  if (n_tok < 0 || r_begin < 0 || r_end < r_begin || (n_tok > 1 && y_stride < r_end)) {
    fail(ErrorCode::InvalidArgument, "matmul: bad token count, row range or output stride");
  }
  k.matmul(n_in, w, w_row_bytes, act, act_row_bytes, n_tok, y, y_stride, r_begin, r_end);
}

GgmlType packed_type(GgmlType t) {
  if (t == GgmlType::Q4_0) return GgmlType::Q4_0_X8;
  if (t == GgmlType::Q5_0) return GgmlType::Q5_0_X8;
  return t;
}

int64_t row_group(GgmlType t) { return t == GgmlType::Q4_0_X8 || t == GgmlType::Q5_0_X8 ? 8 : 1; }

void pack_rows(GgmlType t, int64_t n_in, const void* src, void* dst, int64_t n_rows) {
  if (packed_type(t) == t) fail(ErrorCode::InvalidArgument, std::string("pack_rows: ") + ggml_type_name(t) + " has no packed layout");
  check_row_length(t, n_in, "pack_rows");
  if (n_rows < 0 || n_rows % row_group(packed_type(t)) != 0) {
    fail(ErrorCode::InvalidArgument, "pack_rows: " + std::to_string(n_rows) + " rows are not whole groups of " + std::to_string(row_group(packed_type(t))));
  }
  if (t == GgmlType::Q4_0) {
    detail::pack_q4_0_x8(src, dst, n_in, n_rows);
  } else {
    detail::pack_q5_0_x8(src, dst, n_in, n_rows);
  }
}

void attn_scores_f32(int64_t n, const float* const* q, int n_q, const float* k, int64_t k_stride,
                     int n_pos, float* s, int64_t s_stride) {
  backend().attn_scores_f32(n, q, n_q, k, k_stride, n_pos, s, s_stride);
}

void attn_scores_f16(int64_t n, const float* const* q, int n_q, const uint16_t* k, int64_t k_stride,
                     int n_pos, float* s, int64_t s_stride) {
  backend().attn_scores_f16(n, q, n_q, k, k_stride, n_pos, s, s_stride);
}

void attn_values_f32(int64_t n, const float* p, int64_t p_stride, int n_q, const float* v,
                     int64_t v_stride, int n_pos, float* const* o) {
  backend().attn_values_f32(n, p, p_stride, n_q, v, v_stride, n_pos, o);
}

void attn_values_f16(int64_t n, const float* p, int64_t p_stride, int n_q, const uint16_t* v,
                     int64_t v_stride, int n_pos, float* const* o) {
  backend().attn_values_f16(n, p, p_stride, n_q, v, v_stride, n_pos, o);
}

void attn_scores_q8_0(int64_t n, const float* const* q, int n_q, const void* k, int64_t k_stride,
                      int n_pos, float* s, int64_t s_stride) {
  backend().attn_scores_q8_0(n, q, n_q, k, k_stride, n_pos, s, s_stride);
}

void attn_values_q8_0(int64_t n, const float* p, int64_t p_stride, int n_q, const void* v,
                      int64_t v_stride, int n_pos, float* const* o) {
  backend().attn_values_q8_0(n, p, p_stride, n_q, v, v_stride, n_pos, o);
}

float attn_exp(float* x, int64_t n, float shift) { return backend().attn_exp(x, n, shift); }

float attn_scale_max(float* x, int64_t n, float scale, float init) {
  return backend().attn_scale_max(x, n, scale, init);
}

void swiglu(float* g, const float* u, int64_t n) { backend().swiglu(g, u, n); }

double sum_squares(const float* x, const float* add, int64_t n) {
  return backend().sum_squares(x, add, n);
}

void f32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) {
  backend().f32_to_fp16_row(src, dst, n);
}

const char* kernel_backend() { return backend().name; }

bool force_kernels(const char* name) {
  if (name == nullptr) {
    g_forced.store(nullptr, std::memory_order_relaxed);
    return true;
  }
  const Backend* b = backend_named(name);
  if (b != nullptr) g_forced.store(b, std::memory_order_relaxed);
  return b != nullptr;
}

}  // namespace weft::cpu
