#include "forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../cpu/kernels.h"
#include "error.h"

namespace weft {

namespace {

// [b, e) share of n items for thread tid of nth.
inline void split(int64_t n, int tid, int nth, int64_t& b, int64_t& e) {
  b = n * tid / nth;
  e = n * (tid + 1) / nth;
}

// As ggml computes it (but for the sum's lanes, cpu::sum_squares): squares summed in double, scale
// in float, then the weight multiply.
void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps) {
  const float mean = static_cast<float>(cpu::sum_squares(x, nullptr, n) / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * w[i];
}

// Rotates one head in place. cs: [n_rot/2][2] = cos, sin of each pair's angle.
void rope_head(float* x, const float* cs, int32_t n_rot, RopeType type) {
  const int32_t half = n_rot / 2;
  for (int32_t i = 0; i < half; ++i) {
    const int32_t a = type == RopeType::Norm ? 2 * i : i;
    const int32_t b = type == RopeType::Norm ? 2 * i + 1 : i + half;
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

std::string tok_str(int32_t t) { return "token " + std::to_string(t); }

}  // namespace

int Forward::Prepared::find(GgmlType t) const {
  for (int i = 0; i < n; ++i) if (vdt[i] == t) return i;
  return -1;
}

void Forward::Prepared::convert(const float* x, int64_t n_in, int64_t t, int64_t c0, int64_t c1) const {
  for (int i = 0; i < n; ++i) {
    if (vdt[i] == GgmlType::F32) continue;
    uint8_t* row = bufs[i].data() + size_t(t) * row_bytes[i];
    cpu::quantize_row(vdt[i], x + t * n_in + c0, row + ggml_row_bytes(vdt[i], c0), c1 - c0);
  }
}

void validate_batch(const StepBatch& b, const HParams& hp, const KvCache& kv) {
  auto bad = [](const std::string& m) { fail(ErrorCode::InvalidArgument, "invalid step batch: " + m); };
  if (b.n_tokens < 1) bad("it has no tokens");
  if (b.n_seqs < 1 || b.max_blocks < 1) bad("it has no block tables");
  if (b.n_out < 0 || b.n_out > b.n_tokens) bad("output count " + std::to_string(b.n_out) + " is out of range");
  const int32_t bs = kv.block_size();
  const int64_t max_pos = int64_t(b.max_blocks) * bs;
  std::vector<int32_t> seq_max(static_cast<size_t>(b.n_seqs), -1);
  std::vector<uint64_t> slots(static_cast<size_t>(b.n_tokens));
  for (int32_t t = 0; t < b.n_tokens; ++t) {
    if (b.tokens[t] < 0 || b.tokens[t] >= hp.n_vocab) bad(tok_str(t) + " has id " + std::to_string(b.tokens[t]) + " outside the vocabulary");
    if (b.seq_idx[t] < 0 || b.seq_idx[t] >= b.n_seqs) bad(tok_str(t) + " names sequence " + std::to_string(b.seq_idx[t]));
    if (b.positions[t] < 0 || b.positions[t] >= max_pos) bad(tok_str(t) + " has position " + std::to_string(b.positions[t]) + " beyond its block table");
    int32_t& m = seq_max[static_cast<size_t>(b.seq_idx[t])];
    m = std::max(m, b.positions[t]);
  }
  for (int32_t s = 0; s < b.n_seqs; ++s) {
    const int32_t* bt = b.block_tables + int64_t(s) * b.max_blocks;
    for (int32_t j = 0; seq_max[static_cast<size_t>(s)] >= 0 && j <= seq_max[static_cast<size_t>(s)] / bs; ++j) {
      if (bt[j] < 0 || bt[j] >= kv.n_blocks()) bad("sequence " + std::to_string(s) + " maps logical block " + std::to_string(j) + " to block " + std::to_string(bt[j]));
    }
  }
  // Two tokens writing one cache slot would race and corrupt each other.
  for (int32_t t = 0; t < b.n_tokens; ++t) {
    const int32_t* bt = b.block_tables + int64_t(b.seq_idx[t]) * b.max_blocks;
    slots[static_cast<size_t>(t)] = uint64_t(uint32_t(bt[b.positions[t] / bs])) * uint64_t(bs) + uint64_t(b.positions[t] % bs);
  }
  std::sort(slots.begin(), slots.end());
  if (std::adjacent_find(slots.begin(), slots.end()) != slots.end()) bad("two tokens write the same KV cache slot");
  for (int32_t o = 0; o < b.n_out; ++o) {
    if (b.out_idx[o] < 0 || b.out_idx[o] >= b.n_tokens) bad("output " + std::to_string(o) + " names token " + std::to_string(b.out_idx[o]));
  }
  for (int32_t c = 0; c < b.n_copies; ++c) {
    const int32_t src = b.copies[2 * c], dst = b.copies[2 * c + 1];
    if (src < 0 || src >= kv.n_blocks() || dst < 0 || dst >= kv.n_blocks() || src == dst) {
      bad("block copy " + std::to_string(src) + " -> " + std::to_string(dst) + " is invalid");
    }
  }
}

Forward::Forward(const Model& model, KvCache& kv, cpu::ThreadPool& pool) : m_(model), kv_(kv), pool_(pool) {
  const HParams& hp = m_.hp();
  inv_freq_.resize(size_t(hp.n_rot / 2));
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    double f = std::pow(double(hp.rope_theta), -2.0 * double(i) / hp.n_rot);
    if (hp.rope_freq_scale != 1.0f) f *= hp.rope_freq_scale;
    if (!hp.rope_freq_factors.empty()) f /= hp.rope_freq_factors[i];
    inv_freq_[i] = f;
  }
  act_.resize(6);
  const size_t rows = size_t(kTileTokens) * size_t(hp.n_head / hp.n_head_kv);
  // Each buffer gets a cache line of slack at its end, so that no two threads' buffers (which the
  // allocator may place side by side) share a line that both write.
  auto size = [](auto& v, size_t n) { v.resize(n + 64 / sizeof(v[0])); };
  solo_xn_.resize(size_t(pool.size()) * kSoloStride);
  solo_act_.resize(size_t(pool.size()) * 3);
  for (auto& a : solo_act_) size(a, size_t(kSoloElems) * 4);  // every dot type costs at most 4 bytes per element
  attn_scratch_.resize(size_t(pool.size()));
  for (AttnScratch& s : attn_scratch_) {
    size(s.p, rows * kChunk);
    size(s.q, rows);
    size(s.o, rows);
    size(s.mp, rows);
    size(s.lp, rows);
    size(s.m, rows);
    size(s.l, rows);
    size(s.o2, rows * size_t(hp.head_dim));
    size(s.m2, rows);
    size(s.l2, rows);
  }
}

void Forward::ensure_scratch(const StepBatch& b) {
  const HParams& hp = m_.hp();
  const size_t n = static_cast<size_t>(b.n_tokens);
  const size_t q_dim = size_t(hp.n_head) * hp.head_dim, kv_dim = size_t(hp.n_head_kv) * hp.head_dim;
  auto grow = [](auto& v, size_t sz) { if (v.size() < sz) v.resize(sz); };
  grow(x_, n * hp.n_embd);
  grow(x2_, n * hp.n_embd);
  grow(xn_, n * hp.n_embd);
  grow(q_, n * q_dim);
  grow(k_, n * kv_dim);
  grow(v_, n * kv_dim);
  grow(attn_, n * q_dim);
  grow(tmp_, n * hp.n_embd);
  grow(gate_, n * hp.n_ff);
  grow(up_, n * hp.n_ff);
  grow(rope_, n * hp.n_rot);
  grow(tiles_, n);
  grow(by_blocks_, n);
  // Every dot type costs at most 4 bytes per element.
  const size_t widest = std::max({size_t(hp.n_embd), q_dim, size_t(hp.n_ff)});
  for (auto& a : act_) grow(a, n * widest * 4);
}

void Forward::run(const StepBatch& b, float* logits, bool next_soon) {
  lap_start_ = std::chrono::steady_clock::now();
  ensure_scratch(b);
  make_tiles(b);
  for (int32_t c = 0; c < b.n_copies; ++c) kv_.copy_block(b.copies[2 * c], b.copies[2 * c + 1]);

  const HParams& hp = m_.hp();
  const int64_t E = hp.n_embd;

  // Where the activations for ws live, converted to each weight's dot type into bufs (act_'s
  // first three unless given); F32 uses x itself.
  auto layout = [&](const float* x, int64_t n_in, std::initializer_list<const Weight*> ws, std::vector<uint8_t>* bufs = nullptr) {
    Prepared p;
    p.bufs = bufs ? bufs : act_.data();
    for (const Weight* w : ws) {
      const GgmlType vdt = cpu::vec_dot_type(w->type);
      if (p.find(vdt) >= 0) continue;
      const int i = p.n++;
      p.vdt[i] = vdt;
      const bool f32 = vdt == GgmlType::F32;
      p.row_bytes[i] = f32 ? size_t(n_in) * sizeof(float) : ggml_row_bytes(vdt, n_in);
      p.data[i] = f32 ? reinterpret_cast<const uint8_t*>(x) : p.bufs[i].data();
      p.align = std::max(p.align, ggml_type_traits(vdt).block);
    }
    return p;
  };
  // y [n_tok][w.n_out] = x W^T for output columns [rb, re).
  auto matmul_cols = [&](const Weight& w, const Prepared& p, int n_tok, float* y, int64_t y_stride, int64_t rb, int64_t re) {
    const int i = p.find(cpu::vec_dot_type(w.type));
    cpu::matmul(w.type, w.n_in, w.data, w.row_bytes, p.data[i], p.row_bytes[i], n_tok, y, y_stride, rb, re);
  };
  // Several matmuls of one input taken as one, for the columns this thread owns: each thread
  // gets an even share of their weight bytes in order (a row goes with the share its first byte
  // lies in), so it streams fewer separate runs of rows than with a share of each (SmolLM2's
  // Q/K/V on 2 threads: 1 and 3 runs instead of 3 and 3; each run restarts the prefetchers).
  // In-process A/B at batch 1, SmolLM2 Q8_0 and F16: the Q/K/V phase 6-12 % shorter in all six
  // rounds, steps 0.94-1.005x.
  struct Out {
    const Weight& w;
    float* y;
    int64_t stride;
  };
  // Calls fn(out, r0, r1) for each non-empty run of rows this thread owns. (Packed weights go in
  // whole groups of rows, cpu::row_group.)
  auto shares = [&](int tid, int nth, std::initializer_list<Out> outs, auto&& fn) {
    int64_t total = 0;
    for (const Out& o : outs) total += o.w.n_out * int64_t(o.w.row_bytes);
    int64_t b0, b1, off = 0;
    split(total, tid, nth, b0, b1);
    for (const Out& o : outs) {
      const int64_t group = cpu::row_group(o.w.type), gb = int64_t(o.w.row_bytes) * group;
      auto first_row = [&](int64_t at) { return std::clamp<int64_t>((at - off + gb - 1) / gb * group, 0, o.w.n_out); };
      const int64_t r0 = first_row(b0), r1 = first_row(b1);
      if (r0 < r1) fn(o, r0, r1);
      off += o.w.n_out * int64_t(o.w.row_bytes);
    }
  };
  auto matmul_joint = [&](int tid, int nth, std::initializer_list<Out> outs, const Prepared& p, int n_tok) {
    shares(tid, nth, outs, [&](const Out& o, int64_t r0, int64_t r1) { matmul_cols(o.w, p, n_tok, o.y, o.stride, r0, r1); });
  };
  // One matmul, the same way.
  auto matmul = [&](int tid, int nth, const Weight& w, const Prepared& p, int n_tok, float* y, int64_t y_stride) {
    matmul_joint(tid, nth, {{w, y, y_stride}}, p, n_tok);
  };

  // The residual stream is double-buffered: a phase that adds a block's output reads `cur` and
  // writes `next` (then they swap), so every thread can read whole rows of `cur` for the norm
  // while others write their columns of the sum.
  float* cur = x_.data();
  float* next = x2_.data();

  auto body = [&](int tid, int nth) {
    const int n = b.n_tokens;
    // The first weights of this thread's share of the next matmul (of its first run of rows, if
    // several), which it reads while it waits at the barriers before that matmul: a wait for the
    // slower thread becomes the start of its next phase. Decode only: prefill re-reads each weight
    // chunk from cache many times. In-process A/B of decode steps (2 threads, 512-step windows,
    // ~5-10 MB a step read ahead), the VM's fast mode: SmolLM2 Q8_0 0.93-1.02x (median 0.96), F16
    // 0.95-1.02x (0.98), Qwen2.5 Q8_0 0.96-1.05x (1.00); its slow mode 0.97-1.02x.
    cpu::ThreadPool::ReadAhead ahead;
    const void* ahead_of = nullptr;
    const bool read_ahead = n <= kReadAheadTokens;
    auto aim = [&](const Weight& w, int64_t r0, int64_t r1) {
      const char* first = reinterpret_cast<const char*>(w.data) + r0 * int64_t(w.row_bytes);
      if (!read_ahead || first == ahead_of) return;
      ahead_of = first;
      ahead.next = first;
      ahead.end = first + std::min<int64_t>((r1 - r0) * int64_t(w.row_bytes), kReadAheadBytes);
    };
    auto aim_joint = [&](std::initializer_list<Out> outs) {
      bool done = false;
      shares(tid, nth, outs, [&](const Out& o, int64_t r0, int64_t r1) {
        if (!done) aim(o.w, r0, r1);
        done = true;
      });
    };
    // Ends a phase: every thread waits for the others, and thread 0 charges the time to op.
    auto sync = [&](Op op) {
      pool_.barrier(read_ahead ? &ahead : nullptr);
      if (tid == 0) lap(op);
    };
    const int64_t Q = int64_t(hp.n_head) * hp.head_dim, KV = int64_t(hp.n_head_kv) * hp.head_dim, F = hp.n_ff;
    auto aim_qkv = [&](int32_t l) {
      const LayerWeights& w = m_.layers[size_t(l)];
      aim_joint({{w.wq, nullptr, 0}, {w.wk, nullptr, 0}, {w.wv, nullptr, 0}});
    };
    const int32_t half = hp.n_rot / 2;
    int64_t tb, te;
    split(n, tid, nth, tb, te);
    float* xr = cur;   // each thread swaps its own copies of the two pointers, in step
    float* xw = next;

    // This thread's share of the elementwise work on n_rows rows of n_in: whole rows while there
    // are enough, else runs of align-sized column blocks, so that a decode token's norms, SwiGLU
    // and activation quantization run on every thread. Calls fn(row, c0, c1) per run.
    auto columns = [&](int64_t n_rows, int64_t n_in, int64_t align, auto&& fn) {
      const int64_t nb = (n_in + align - 1) / align;
      int64_t ib, ie;
      split(n_rows * nb, tid, nth, ib, ie);
      for (int64_t i = ib; i < ie;) {
        const int64_t r = i / nb, b0 = i % nb, b1 = std::min(nb, b0 + (ie - i));
        fn(r, b0 * align, std::min(n_in, b1 * align));
        i += b1 - b0;
      }
    };
    // For each row r < n_rows, from token t = rows ? rows[r] : r: y = xr[t] + add[t] (add may be
    // null), and row r of xn = the RMS norm of y times w, then converted for p. With `keep`, y is
    // the new residual stream (written to xw, and the buffers swap). Into xn_, each thread does
    // its share of the columns, and the phase ends at a barrier; into this thread's own solo_xn_
    // row (few rows: solo()), it does whole rows, so the matmul that reads them needs no barrier
    // before it, and writes only its share of y. Every thread sums the squares of whole rows in
    // the same order, so the result depends on neither.
    auto residual_norm = [&](int64_t n_rows, const int32_t* rows, const float* add, const float* w, const Prepared& p, bool keep, float* xn) {
      const bool own = xn != xn_.data();
      int64_t k0 = 0, k1 = E;  // the columns of y this thread writes, of those it norms
      if (own) split(E, tid, nth, k0, k1);
      int64_t last = -1;
      float scale = 0;
      auto norm = [&](int64_t r, int64_t c0, int64_t c1) {
        const int64_t t = rows ? rows[r] : r;
        const float* x = xr + t * E;
        const float* a = add ? add + t * E : nullptr;
        if (r != last) {
          const double ss = cpu::sum_squares(x, a, E);
          scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(E)) + hp.rms_eps);
          last = r;
        }
        float* o = xn + r * E;
        for (int64_t i = c0; i < c1; ++i) o[i] = ((a ? x[i] + a[i] : x[i]) * scale) * w[i];
        if (keep) {
          float* y = xw + t * E;
          for (int64_t i = own ? k0 : c0; i < (own ? k1 : c1); ++i) y[i] = a ? x[i] + a[i] : x[i];
        }
        p.convert(xn, E, r, c0, c1);
      };
      if (own) {
        for (int64_t r = 0; r < n_rows; ++r) norm(r, 0, E);
      } else {
        columns(n_rows, E, p.align, norm);
      }
      if (keep) std::swap(xr, xw);
    };
    // A norm of few rows is done whole by every thread into its own buffers (residual_norm):
    // the work is a few hundred ns, against a barrier (0.06 us on the dev VM when its two vCPUs
    // share a core complex, 0.3 when they do not), the wait for the slower thread, and the
    // normed row crossing between cores. With the SwiGLU merge below, in-process A/B at batch 1
    // (SmolLM2 Q8_0, F16): steps 3-7 % shorter in the rounds where the vCPUs were apart,
    // 0.985-1.013x where they were together.
    float* solo_xn = &solo_xn_[size_t(tid) * kSoloStride];
    std::vector<uint8_t>* solo_act = &solo_act_[size_t(tid) * 3];
    auto solo = [&](int64_t n_rows) { return n_rows * E <= kSoloElems; };

    // Embeddings, and the cos/sin of every rotated pair at each token's position.
    for (int64_t t = tb; t < te; ++t) {
      cpu::dequantize_row(m_.tok_embd.type, m_.tok_embd.row(b.tokens[t]), xr + t * E, E);
      float* cs = &rope_[size_t(t) * hp.n_rot];
      for (int32_t i = 0; i < half; ++i) {
        const double theta = double(b.positions[t]) * inv_freq_[size_t(i)];
        cs[2 * i] = static_cast<float>(std::cos(theta));
        cs[2 * i + 1] = static_cast<float>(std::sin(theta));
      }
    }
    aim_qkv(0);
    pool_.barrier(read_ahead ? &ahead : nullptr);

    for (int32_t l = 0; l < hp.n_layer; ++l) {
      const LayerWeights& w = m_.layers[size_t(l)];
      // Residual add of the previous block's FFN output, then the attention norm.
      const bool own = solo(n);
      float* xn = own ? solo_xn : xn_.data();
      Prepared p = layout(xn, E, {&w.wq, &w.wk, &w.wv}, own ? solo_act : nullptr);
      residual_norm(n, nullptr, l > 0 ? tmp_.data() : nullptr, w.attn_norm, p, true, xn);
      if (!own) sync(kNorm);
      prefetch_kv(tid, nth, b, l);
      matmul_joint(tid, nth, {{w.wq, q_.data(), Q}, {w.wk, k_.data(), KV}, {w.wv, v_.data(), KV}}, p, n);
      aim_joint({{w.wo, nullptr, 0}});
      sync(kQkv);

      // Per (token, head): biases, the Q/K norm, RoPE, and for a KV head its new K/V rows into
      // the cache.
      const int32_t hd = hp.head_dim, heads = hp.n_head + hp.n_head_kv;
      int64_t hb, he;
      split(int64_t(n) * heads, tid, nth, hb, he);
      for (int64_t item = hb; item < he; ++item) {
        const int64_t t = item / heads;
        const int32_t h = int32_t(item % heads);
        const float* cs = &rope_[size_t(t) * hp.n_rot];
        if (h < hp.n_head) {
          float* q = &q_[size_t(t * Q + int64_t(h) * hd)];
          if (w.bq) for (int32_t i = 0; i < hd; ++i) q[i] += w.bq[int64_t(h) * hd + i];
          if (w.q_norm) rmsnorm(q, w.q_norm, q, hd, hp.rms_eps);
          rope_head(q, cs, hp.n_rot, hp.rope_type);
          continue;
        }
        const int32_t g = h - hp.n_head;
        float* k = &k_[size_t(t * KV + int64_t(g) * hd)];
        float* v = &v_[size_t(t * KV + int64_t(g) * hd)];
        if (w.bk) for (int32_t i = 0; i < hd; ++i) k[i] += w.bk[int64_t(g) * hd + i];
        if (w.bv) for (int32_t i = 0; i < hd; ++i) v[i] += w.bv[int64_t(g) * hd + i];
        if (w.k_norm) rmsnorm(k, w.k_norm, k, hd, hp.rms_eps);
        rope_head(k, cs, hp.n_rot, hp.rope_type);
        const int32_t* bt = b.block_tables + int64_t(b.seq_idx[t]) * b.max_blocks;
        const int32_t blk = bt[b.positions[t] / kv_.block_size()], slot = b.positions[t] % kv_.block_size();
        if (kv_.type() == KvType::F16) {
          cpu::f32_to_fp16_row(k, reinterpret_cast<uint16_t*>(kv_.k_row(l, g, blk, slot)), hd);
          cpu::f32_to_fp16_row(v, reinterpret_cast<uint16_t*>(kv_.v_row(l, g, blk, slot)), hd);
        } else if (kv_.type() == KvType::Q8_0) {
          cpu::quantize_row(GgmlType::Q8_0, k, kv_.k_row(l, g, blk, slot), hd);
          cpu::quantize_row(GgmlType::Q8_0, v, kv_.v_row(l, g, blk, slot), hd);
        } else {
          std::memcpy(kv_.k_row(l, g, blk, slot), k, size_t(hd) * sizeof(float));
          std::memcpy(kv_.v_row(l, g, blk, slot), v, size_t(hd) * sizeof(float));
        }
      }
      sync(kRope);
      // The attention output converted for wo: by the thread that finished each row, without a
      // barrier between, where no row waits for another thread's partials and a head's columns
      // are whole blocks of wo's activations.
      p = layout(attn_.data(), Q, {&w.wo});
      const bool rows_done = n_splits_ == 0 && hp.head_dim % p.align == 0;
      attention(tid, nth, b, l, rows_done ? &p : nullptr);
      sync(kAttention);
      if (!rows_done) {
        columns(n, Q, p.align, [&](int64_t t, int64_t c0, int64_t c1) {
          if (n_splits_ > 0) finish_splits(t, c0, c1);
          p.convert(attn_.data(), Q, t, c0, c1);
        });
        sync(kAttnOutQuant);
      }
      // This thread's columns of gate and up when it also does their SwiGLU (see below).
      const Prepared pd = layout(gate_.data(), F, {&w.w_down}, &act_[3]);  // other threads may still read p's
      const int64_t blocks = (F + pd.align - 1) / pd.align;
      const bool glu_own = blocks % nth == 0 || blocks >= kEvenBlocksPerThread * nth;
      int64_t cb, ce;
      split(blocks, tid, nth, cb, ce);
      cb = std::min(F, cb * pd.align);
      ce = std::min(F, ce * pd.align);

      matmul(tid, nth, w.wo, p, n, tmp_.data(), E);
      if (glu_own) {
        aim(w.w_gate, cb, ce);
      } else {
        aim_joint({{w.w_gate, nullptr, 0}});
      }
      sync(kWo);

      p = layout(xn, E, {&w.w_gate, &w.w_up}, own ? solo_act : nullptr);
      residual_norm(n, nullptr, tmp_.data(), w.ffn_norm, p, true, xn);
      if (!own) sync(kFfnNorm);
      // SwiGLU of gate and up, converted for w_down: a thread does it for the columns it
      // computed, without a barrier between, when those can be whole blocks of w_down's
      // activations and still even shares (a barrier costs 0.06-0.3 us on the dev VM, plus the
      // wait for the slower thread).
      auto glu = [&](int64_t t, int64_t c0, int64_t c1) {
        float* g = &gate_[size_t(t * F)];
        const float* u = &up_[size_t(t * F)];
        cpu::swiglu(g + c0, u + c0, c1 - c0);
        pd.convert(gate_.data(), F, t, c0, c1);
      };
      aim_joint({{w.w_down, nullptr, 0}});
      if (glu_own) {
        matmul_cols(w.w_gate, p, n, gate_.data(), F, cb, ce);
        matmul_cols(w.w_up, p, n, up_.data(), F, cb, ce);
        for (int64_t t = 0; t < n && cb < ce; ++t) glu(t, cb, ce);
        sync(kGateUp);
      } else {
        matmul(tid, nth, w.w_gate, p, n, gate_.data(), F);
        matmul(tid, nth, w.w_up, p, n, up_.data(), F);
        sync(kGateUp);
        columns(n, F, pd.align, glu);
        sync(kSilu);
      }
      matmul(tid, nth, w.w_down, pd, n, tmp_.data(), E);
      if (l + 1 < hp.n_layer) {
        aim_qkv(l + 1);
      } else if (b.n_out > 0) {
        aim_joint({{m_.output, nullptr, 0}});
      }
      sync(kDown);
    }

    // The final residual add and norm, only for the rows whose logits are wanted (into xn rows
    // 0..n_out-1), then the output projection.
    if (b.n_out > 0) {
      const bool own = solo(b.n_out);
      float* xn = own ? solo_xn : xn_.data();
      const Prepared p = layout(xn, E, {&m_.output}, own ? solo_act : nullptr);
      residual_norm(b.n_out, b.out_idx, tmp_.data(), m_.output_norm, p, false, xn);
      if (!own) sync(kOutNorm);
      matmul(tid, nth, m_.output, p, b.n_out, logits, hp.n_vocab);
    }
  };
  // A lambda holding one reference fits std::function's small buffer: no allocation per step.
  pool_.run([&body](int tid, int nth) { body(tid, nth); }, next_soon);
  lap(kOutput);
  profile_.steps += 1;
  profile_.tokens += b.n_tokens;
}

void Forward::lap(Op op) {
  const auto now = std::chrono::steady_clock::now();
  profile_.ms[op] += std::chrono::duration<double, std::milli>(now - lap_start_).count();
  lap_start_ = now;
}

const char* Forward::op_name(int op) {
  static const char* const kNames[kOps] = {
      "attn_norm", "qkv", "rope_kv_write", "attention", "attn_out_quantize", "wo",
      "ffn_norm", "gate_up", "silu_quantize", "down", "output_norm", "output",
  };
  return op >= 0 && op < kOps ? kNames[op] : "?";
}

Forward::Profile Forward::take_profile() {
  Profile p = profile_;
  profile_ = Profile();
  return p;
}

}  // namespace weft
