// One engine step: the forward pass of a flat batch of tokens from several sequences, mixing
// prefill chunks and single decode tokens, over the paged KV cache.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "../cpu/thread-pool.h"
#include "kv-cache.h"
#include "model.h"

namespace weft {

// The flat batch. All arrays are owned by the caller and outlive run().
struct StepBatch {
  int32_t n_tokens = 0;
  const int32_t* tokens = nullptr;        // [n_tokens] token ids
  const int32_t* positions = nullptr;     // [n_tokens] position of each token in its sequence
  const int32_t* seq_idx = nullptr;       // [n_tokens] row of block_tables the token belongs to
  int32_t n_seqs = 0;
  int32_t max_blocks = 0;                 // row length of block_tables
  const int32_t* block_tables = nullptr;  // [n_seqs][max_blocks] physical block of each logical block
  int32_t n_out = 0;
  const int32_t* out_idx = nullptr;       // [n_out] tokens whose logits are produced
  int32_t n_copies = 0;
  const int32_t* copies = nullptr;        // [n_copies][2] (src, dst) block copies done first
};

// Throws weft::Error(InvalidArgument) naming the first problem: ids out of range, a position
// whose block is missing from its table, two tokens writing the same cache slot, and so on.
void validate_batch(const StepBatch& b, const HParams& hp, const KvCache& kv);

class Forward {
 public:
  Forward(const Model& model, KvCache& kv, cpu::ThreadPool& pool);

  // Runs the batch (after validate_batch) and writes logits [n_out][n_vocab]. A token attends to
  // positions 0..pos of its own sequence: to the cache for earlier steps and to the K/V this step
  // writes for earlier tokens of the same chunk.
  // next_soon: another step follows right away (ThreadPool::run).
  void run(const StepBatch& b, float* logits, bool next_soon = false);

  // The phases of run(), for the bench's profile mode. Each one ends at a barrier. At a few
  // tokens the norms run inside the matmul phase that reads them (kNorm, kFfnNorm and kOutNorm
  // stay 0), SwiGLU runs inside kGateUp wherever its columns split evenly (kSilu stays 0), and
  // the attention output's conversion inside kAttention where rows need no fold across threads
  // and heads are whole activation blocks (kAttnOutQuant stays 0).
  enum Op { kNorm, kQkv, kRope, kAttention, kAttnOutQuant, kWo, kFfnNorm, kGateUp, kSilu, kDown, kOutNorm, kOutput, kOps };
  static const char* op_name(int op);
  // Wall time of each phase summed over the steps since the last take_profile(), measured on
  // thread 0 as it leaves the barrier that ends the phase: so it includes the wait for the slowest
  // thread, which is where imbalance and serial work show. Costs one clock read per phase.
  struct Profile {
    double ms[kOps] = {};
    int64_t steps = 0;
    int64_t tokens = 0;
  };
  Profile take_profile();

 private:
  // Activations of one matmul input converted for up to three weight dot types. Every thread
  // builds the same descriptor and converts its own share of the rows.
  struct Prepared {
    int n = 0;
    std::vector<uint8_t>* bufs = nullptr;  // the three buffers that hold the converted rows
    int64_t align = 32;  // column blocks that convert() may be given: a multiple of every block size
    GgmlType vdt[3];
    const uint8_t* data[3];
    size_t row_bytes[3];

    int find(GgmlType t) const;
    // Converts columns [c0, c1) of row t of x (block-aligned, so each block is whole).
    void convert(const float* x, int64_t n_in, int64_t t, int64_t c0, int64_t c1) const;
  };
  // A phase may split a matmul's output columns at activation-block boundaries only where that
  // leaves every thread the same number of blocks, or this many each (one block more is then at
  // most a 1/50 longer share).
  static constexpr int64_t kEvenBlocksPerThread = 50;
  // Steps of at most this many tokens read ahead into the next matmul's weights while they wait
  // at barriers, at most kReadAheadBytes a thread (well inside a core's L2).
  static constexpr int kReadAheadTokens = 4;
  static constexpr int64_t kReadAheadBytes = 256 << 10;
  // Attention works on tiles: up to kTileTokens consecutive positions of one sequence (a prefill
  // chunk; a decode token is a tile of one), so that the query heads of all their tokens that
  // share a KV head meet each K/V row together.
  static constexpr int32_t kTileTokens = 8;
  // The softmax runs online over chunks of kChunk positions. Chunk boundaries are multiples of
  // kChunk, a function of the position alone, so the arithmetic of a token does not depend on its
  // batch, and the scratch does not grow with the context.
  static constexpr int32_t kChunk = 64;
  // Attention work items are (tile, KV head, segment), a segment being kSegment positions of the
  // context (boundaries at its multiples: a function of position alone). A row's softmax runs
  // online within each segment, and the segments' partial results are folded in order
  // (fold_partial), on whichever threads they ran: so threads can share one long context, and a
  // row's arithmetic still depends neither on its batch nor on the thread count. At batch 1 on 2
  // threads SmolLM2's 3 KV heads otherwise split 2:1: decode steps at 1k-1.3k context were 4.5 and
  // 8.3 % shorter (in-process A/B, alternating every 16 steps), Qwen2.5's (2 KV heads) 0.2-1.3 %.
  static constexpr int32_t kSegment = 4 * kChunk;
  // When a step has few items for its threads (a decode step at a short context: SmolLM2's 3 KV
  // heads on 2 threads split 2:1), each KV head's query heads are cut into n_parts_ runs, and the
  // items become (tile, KV head, part, segment); the kernels give a row the same arithmetic
  // whichever rows share a call, so this too leaves every row's bits alone. A part re-reads its
  // head's K/V rows (from cache, as the context is short), so there are only as many as balance
  // needs (make_tiles). On this project's 2-vCPU VM it is about neutral (in-process A/B on
  // SmolLM2 Q8_0, F16, Q4_K_M at batch 1: steps 0.95-1.03x, mean ~1.0, the attention phase 5-20 %
  // shorter, but a shared head's rows then cross cores); it is for machines with more threads
  // than KV heads, where short-context attention otherwise runs on n_head_kv of them.
  static constexpr int32_t kItemsPerThread = 4;
  struct Tile {
    int32_t first;     // batch index of the first token
    int32_t n;         // tokens, at positions pos + 0 .. n-1
    int32_t pos;
    int32_t n_seg;     // segments the last token's context spans
    int32_t n_shared;  // segments [0, n_shared) are computed by shared items (Shared)
    int64_t cost;      // attention work per query head of its own items: the positions they attend to
    int32_t split0, split1;  // its groups' entries in splits_
  };
  // Sequences forked from one prompt share its KV blocks. Where the decode tokens (tiles of one)
  // of several sequences find the same blocks under a whole segment of their contexts, one item
  // per (Shared, KV head, part) computes that segment for up to kTileTokens of them: its K/V rows
  // are read once for all their query rows instead of once per sequence. The kernels give a row
  // the same arithmetic whichever rows share a call, and a member's segments are folded in order
  // as any split group's are (its groups all become splits), so a row's bits do not change.
  // Only segments before a token's own position are shared (its own block is never shared: the
  // cache copies a block before a sequence writes into it), and a tile's shared segments are
  // [0, n_shared), a prefix of its context.
  struct Shared {
    int32_t seg;
    int32_t n;  // member tiles
    int32_t tiles[kTileTokens];
  };
  // A (tile, KV head, part), a group of items, one per segment of the tile's own; or a (Shared,
  // KV head, part), one item (tile = n_tiles_ + its index in shared_).
  struct Group {
    int32_t tile, head, part;
    int32_t h0, h1;  // its query heads within the KV head's
    int64_t at;      // the cost of the items before it (every group costs > 0: it names the group)
  };
  // A tile's group whose segments more than one thread runs, or that has shared segments. Each
  // of its segments leaves its partial result in parts_ (from index part0 on), and the threads
  // that convert the attention output fold them (finish_splits).
  struct Split {
    Group group;
    size_t part0;
  };
  // Partial results: [part][rows][head_dim] unnormalized outputs, [part][rows] max and sum.
  struct Parts {
    std::vector<float> o;
    std::vector<float> m;
    std::vector<double> l;
  };
  // One thread's attention scratch; rows = kTileTokens * (n_head / n_head_kv), the most an item has.
  struct AttnScratch {
    std::vector<float> p;         // [rows][kChunk] scores of the current chunk, then exp(score - m)
    std::vector<const float*> q;  // [rows] the tile's query heads for the current KV head
    std::vector<float*> o;        // [rows] where the current segment's outputs accumulate
    std::vector<float*> mp;       // [rows] where its running max and sum are kept
    std::vector<double*> lp;
    std::vector<float> m;         // [rows] running max of the scaled scores (segment 0, and folded)
    std::vector<double> l;        // [rows] running sum of exp(score - m)
    std::vector<float> o2;        // [rows][head_dim] a later segment's outputs, before the fold
    std::vector<float> m2;
    std::vector<double> l2;
  };

  void ensure_scratch(const StepBatch& b);
  // Cuts the batch into tiles, finds the shared segments, picks n_parts_, and finds the groups
  // whose segments the pool's threads share.
  void make_tiles(const StepBatch& b);
  // Finds the shared segments: sets each tile's n_shared and fills shared_.
  void find_shared(const StepBatch& b);
  // Work of a segment of tile t per query head: the positions its tokens attend to.
  int64_t seg_cost(const Tile& t, int32_t seg) const;
  // Calls fn(const Group&) for every group, in item order: the tiles' groups, then the shared
  // ones. Item costs are positions times the part's query heads, so parts of unequal size weigh
  // what they hold.
  template <class F>
  void for_each_group(F&& fn) const;
  // The Shared that group gr is, or null for a tile's group.
  const Shared* shared_of(const Group& gr) const {
    return gr.tile < n_tiles_ ? nullptr : &shared_[size_t(gr.tile - n_tiles_)];
  }
  // The work of group gr: the cost of all its items.
  int64_t group_cost(const Group& gr) const;
  // The threads that run the first and the last item of group gr.
  void group_owners(const Group& gr, int nth, int& first, int& last) const;
  // Calls fn(group, segment, split) for each attention item thread tid runs, in order.
  template <class F>
  void for_each_item(int tid, int nth, F&& fn) const;
  // With out (no split groups, head-aligned blocks), each finished row is also converted for it.
  void attention(int tid, int nth, const StepBatch& b, int32_t l, const Prepared* out);
  // Folds the partials of the split (tile, head)s into columns [c0, c1) of token t's attention
  // output, normalized.
  void finish_splits(int64_t t, int64_t c0, int64_t c1);
  static constexpr size_t kPrefetchKvBytes = 256 * 1024;  // per thread and layer
  void prefetch_kv(int tid, int nth, const StepBatch& b, int32_t l) const;
  void lap(Op op);  // thread 0: charges the time since the last lap to op

  const Model& m_;
  KvCache& kv_;
  cpu::ThreadPool& pool_;
  std::vector<double> inv_freq_;  // [n_rot/2] angle per unit of position of each rotated pair

  // Scratch, grown to the largest batch seen and then reused: no allocation in the step loop.
  std::vector<float> x_;      // [n_tokens][n_embd]  residual stream, double-buffered with x2_
  std::vector<float> x2_;
  std::vector<float> xn_;     // [n_tokens][n_embd]  normed input of the current block
  std::vector<float> q_;      // [n_tokens][n_head*hd]
  std::vector<float> k_;      // [n_tokens][n_kv*hd]
  std::vector<float> v_;      // [n_tokens][n_kv*hd]
  std::vector<float> attn_;   // [n_tokens][n_head*hd]
  std::vector<float> tmp_;    // [n_tokens][n_embd]  block output before the residual add
  std::vector<float> gate_;   // [n_tokens][n_ff]
  std::vector<float> up_;     // [n_tokens][n_ff]
  std::vector<float> rope_;   // [n_tokens][n_rot/2][2] cos, sin
  std::vector<std::vector<uint8_t>> act_;  // activations converted for the weights' dot types: 2 sets of 3
  // Per thread: rows of a norm each thread does whole (at most kSoloElems elements), and their
  // conversions (3 buffers each).
  static constexpr int64_t kSoloElems = 8192;
  static constexpr size_t kSoloStride = kSoloElems + 16;  // floats; the slack keeps threads off each other's cache lines
  std::vector<float> solo_xn_;
  std::vector<std::vector<uint8_t>> solo_act_;
  std::vector<Tile> tiles_;                // [n_tiles] this step's attention tiles
  int32_t n_tiles_ = 0;
  std::vector<Shared> shared_;             // [n_shared] this step's shared segments
  int32_t n_shared_ = 0;
  std::vector<int32_t> by_blocks_;         // [n_tiles] find_shared's scratch
  int32_t n_parts_ = 1;                    // runs each KV head's query heads are cut into this step
  int64_t total_cost_ = 0;                 // of all items
  std::vector<Split> splits_;              // [n_splits] in group order
  int32_t n_splits_ = 0;
  Parts parts_;
  std::vector<AttnScratch> attn_scratch_;  // per thread, sized at construction

  Profile profile_;
  std::chrono::steady_clock::time_point lap_start_;
};

}  // namespace weft
