// CPU kernels: the arithmetic every forward pass spends its time in.
//
// Each kernel has a portable scalar reference (kernels-ref.cc) and, where the CPU has
// AVX2+FMA+F16C, a fast path (kernels-avx2.cc, compiled with those flags alone), some of which
// AVX-512 F/BW/VL/VNNI replaces with wider kernels of bit-identical results (kernels-avx512.cc).
// The path is chosen once per process at run time, so a shipped binary never needs -march=native.
//
// Batch invariance: matmul() computes each output element with exactly the same sequence of
// operations whatever n_tok, the token tiling, or the thread split, so a sequence's logits are
// bit-identical whether it runs alone or inside a batch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../core/ggml-types.h"

namespace weft::cpu {

// ---- scalar conversions --------------------------------------------------------------------
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);  // round to nearest even
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even (NaN stays NaN)

// ---- weight types --------------------------------------------------------------------------
// True when weights of type t can be used by matmul()/dequantize_row().
bool type_supported(GgmlType t);

// The representation activations are converted into before they meet weights of type t:
// F32->F32, F16->F16, BF16->BF16, Q8_0->Q8_0 (as llama.cpp does, which keeps our logits close
// to its own on quantized files and lets the dot run on integers).
GgmlType vec_dot_type(GgmlType t);

// dst[0..n) = the row src (type t, n elements) as f32. n must be a multiple of the block size.
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);

// Convert n f32 values into type t (any type that is some vec_dot_type, plus F16/BF16/Q8_0 as
// weight types for writers and tests). dst holds ggml_row_bytes(t, n) bytes.
void quantize_row(GgmlType t, const float* src, void* dst, int64_t n);

// Dot product of one weight row (type t) with one activation row (type vec_dot_type(t)).
float vec_dot(GgmlType t, int64_t n, const void* w, const void* a);

// ---- matmul --------------------------------------------------------------------------------
// y[i * y_stride + r] = dot(W row r, activation row i) for i in [0, n_tok), r in [r_begin, r_end).
//   w:   [n_rows][n_in] of type t, w_row_bytes per row (rows are contiguous)
//   act: [n_tok] rows of vec_dot_type(t), act_row_bytes apart
// Callers split [0, n_rows) among threads; every element is computed as vec_dot() would.
void matmul(GgmlType t, int64_t n_in, const void* w, size_t w_row_bytes,
            const void* act, size_t act_row_bytes, int n_tok,
            float* y, int64_t y_stride, int64_t r_begin, int64_t r_end);

// ---- packed weights --------------------------------------------------------------------------
// A matmul weight of type t is read faster in packed_type(t)'s layout where that differs from t
// (llama.cpp calls it repacking): Q4_0 -> Q4_0_X8 and Q5_0 -> Q5_0_X8, eight rows interleaved
// block by block, so a group of rows is one stream and its per-block integer sums come out lane
// by lane (see quants-legacy.h). Every backend runs packed types, the same bits as on the rows unpacked, but
// only through matmul(): their rows cannot be read one by one, so neither an embedding table nor
// dequantize_row/vec_dot take them.
GgmlType packed_type(GgmlType t);
// Rows per interleaved group (1 for a file type). A packed matrix has a multiple of it, and
// matmul() is fastest where r_begin and r_end are multiples (another split computes the groups it
// cuts twice).
int64_t row_group(GgmlType t);
// Writes n_rows rows of type t (n_in each, contiguous) at src in packed_type(t)'s layout, the
// same number of bytes, at dst (which may be src). n_rows must be a multiple of
// row_group(packed_type(t)).
void pack_rows(GgmlType t, int64_t n_in, const void* src, void* dst, int64_t n_rows);

// ---- attention (K/V cache rows are f16 or f32) ---------------------------------------------
// The query rows that share a KV head (its GQA group, for one or several tokens) meet each K/V
// row together, so the fast path reads and widens a row once for all of them. Every output is
// computed with the same operations whatever n_q, and whichever other rows share the call, so a
// query's attention does not depend on the rest of its batch.
//
// s[r * s_stride + j] = dot(q[r][0..n), k_j) for r < n_q, j < n_pos; k_j = k + j * k_stride.
// Each score is computed as a single-row call would compute it.
void attn_scores_f32(int64_t n, const float* const* q, int n_q, const float* k, int64_t k_stride,
                     int n_pos, float* s, int64_t s_stride);
void attn_scores_f16(int64_t n, const float* const* q, int n_q, const uint16_t* k, int64_t k_stride,
                     int n_pos, float* s, int64_t s_stride);
// o[r][e] += p[r * p_stride + j] * v_j[e] for j = 0, 1, .. n_pos - 1 in that order, for r < n_q,
// e < n; v_j = v + j * v_stride. One multiply-add per step, however the rows are grouped.
void attn_values_f32(int64_t n, const float* p, int64_t p_stride, int n_q, const float* v,
                     int64_t v_stride, int n_pos, float* const* o);
void attn_values_f16(int64_t n, const float* p, int64_t p_stride, int n_q, const uint16_t* v,
                     int64_t v_stride, int n_pos, float* const* o);
// The same over Q8_0 rows (a q8_0 KV cache's), n and the strides multiples of 32 (elements):
// each value is d * q, one float multiply as dequantize_row gives it, so every output is the f32
// kernel's on the dequantized rows, to the bit.
void attn_scores_q8_0(int64_t n, const float* const* q, int n_q, const void* k, int64_t k_stride,
                      int n_pos, float* s, int64_t s_stride);
void attn_values_q8_0(int64_t n, const float* p, int64_t p_stride, int n_q, const void* v,
                      int64_t v_stride, int n_pos, float* const* o);
// x[j] = exp(x[j] - shift) for j < n, and returns their sum: the softmax numerators of a row
// whose max is `shift` (so every x[j] - shift <= 0). Within 3 ulp of exp on the fast path (0
// where exp(x[j] - shift) is below FLT_MIN). Each element's result depends only on its value, and
// the sum only on x and n.
float attn_exp(float* x, int64_t n, float shift);
// x[j] *= scale for j < n, and returns the largest of init and the scaled x[j]: a chunk's scaled
// scores and its row's new running max. Exact (one rounding per product, max exact), so every
// backend gives the same bits.
float attn_scale_max(float* x, int64_t n, float scale, float init);
// SwiGLU's gating, in place: g[i] = silu(g[i]) * u[i], silu(x) = x / (1 + exp(-x)). Each
// element's result depends only on g[i] and u[i] (within 4 ulp of the exact value on the fast path).
void swiglu(float* g, const float* u, int64_t n);
void f32_to_fp16_row(const float* src, uint16_t* dst, int64_t n);
// The sum of squares an RMS norm divides by n, over v = x[i] + add[i] (x[i] where add is null):
// each v * v rounded to float, as ggml squares, then summed in double over 8 lanes (element i
// into lane i % 8 while whole groups of 8 remain, the lanes added in order, then the rest one by
// one), so that it vectorizes and gives the same bits on every backend.
double sum_squares(const float* x, const float* add, int64_t n);

// Which implementation is active: "avx512", "avx2" or "scalar". WEFT_KERNELS=scalar (or avx2)
// picks a narrower one than the CPU allows (tests and benches compare them).
const char* kernel_backend();
// Makes the named backend ("scalar", "avx2", "avx512") the active one, or the automatic choice
// again for nullptr. False, and nothing changes, where this build or CPU lacks it.
bool force_kernels(const char* name);

}  // namespace weft::cpu
