// The attention phase of Forward: tiles, work items and their split over threads, the K/V
// prefetch, the online softmax, and the fold of partial results.
#include <algorithm>
#include <cmath>

#include "../cpu/kernels.h"
#include "forward.h"

namespace weft {

namespace {

// acc = fold(acc, part): two partial softmaxes of one row (outputs o, max m, sum l) put over their
// common max. Out of line, so that a row folded by the thread that ran its segments and one folded
// in finish_splits run the same instructions and get the same bits.
[[gnu::noinline]] void fold_partial(float* o, float& m, double& l, const float* po, float pm, double pl, int64_t n) {
  const float mx = std::max(m, pm);
  const float fa = std::exp(m - mx), fb = std::exp(pm - mx);  // fb = 0 for a row the part did not reach
  for (int64_t e = 0; e < n; ++e) o[e] = o[e] * fa + po[e] * fb;
  l = l * fa + pl * fb;
  m = mx;
}

// Each thread takes a contiguous run of items of equal total cost (positions attended), in the
// order tile, head, segment: the thread whose share holds the middle of an item's cost runs it.
int item_owner(int64_t begin, int64_t cost, int64_t total, int nth) {
  return int((2 * begin + cost) * nth / (2 * total));
}

void normalize(float* o, double l, int64_t n) {
  const float inv = static_cast<float>(1.0 / l);
  for (int64_t e = 0; e < n; ++e) o[e] *= inv;
}

}  // namespace

// Tiles: runs of tokens of one sequence at consecutive positions.
void Forward::make_tiles(const StepBatch& b) {
  const HParams& hp = m_.hp();
  n_tiles_ = 0;
  for (int32_t t = 0; t < b.n_tokens;) {
    int32_t n = 1;
    while (n < kTileTokens && t + n < b.n_tokens && b.seq_idx[t + n] == b.seq_idx[t] &&
           b.positions[t + n] == b.positions[t + n - 1] + 1) {
      ++n;
    }
    const int32_t pos = b.positions[t];
    const int32_t n_seg = (pos + n - 1) / kSegment + 1;
    tiles_[size_t(n_tiles_)] = {t, n, pos, n_seg, 0, 0, 0, 0};
    ++n_tiles_;
    t += n;
  }
  find_shared(b);
  int64_t items = int64_t(n_shared_) * hp.n_head_kv;
  for (int32_t ti = 0; ti < n_tiles_; ++ti) {
    Tile& tile = tiles_[size_t(ti)];
    for (int32_t s = tile.n_shared; s < tile.n_seg; ++s) tile.cost += seg_cost(tile, s);
    items += int64_t(tile.n_seg - tile.n_shared) * hp.n_head_kv;
  }

  // The fewest parts that give every thread the same number of items, or enough items that the
  // cost split evens them out.
  const int nth = pool_.size();
  const int32_t G = hp.n_head / hp.n_head_kv;
  n_parts_ = 1;
  while (n_parts_ < G && (items * n_parts_) % nth != 0 && items * n_parts_ < int64_t(kItemsPerThread) * nth) ++n_parts_;
  total_cost_ = 0;
  for_each_group([&](const Group& gr) { total_cost_ = gr.at + group_cost(gr); });

  // The groups whose segments more than one thread runs, or that have shared segments, and room
  // for their partials.
  n_splits_ = 0;
  size_t parts = 0;
  for_each_group([&](const Group& gr) {
    if (shared_of(gr)) return;
    Tile& tile = tiles_[size_t(gr.tile)];
    if (gr.head == 0 && gr.part == 0) tile.split0 = tile.split1 = n_splits_;
    int first, last;
    group_owners(gr, nth, first, last);
    if (tile.n_shared == 0 && first == last) return;
    if (size_t(n_splits_) == splits_.size()) splits_.resize(splits_.size() + 1);
    splits_[size_t(n_splits_++)] = {gr, parts};
    tile.split1 = n_splits_;
    parts += size_t(tile.n_seg);
  });
  const size_t rows = size_t(kTileTokens) * size_t(G);
  auto grow = [](auto& v, size_t sz) { if (v.size() < sz) v.resize(sz); };
  grow(parts_.o, parts * rows * size_t(hp.head_dim));
  grow(parts_.m, parts * rows);
  grow(parts_.l, parts * rows);
}

// Segment by segment from the first: the decode tiles that shared every segment before it and see
// all of it before their own position, sorted by the blocks under it, so that tiles on the same
// blocks lie side by side; each run of two or more becomes shared items. (Requiring the segments
// before keeps a tile's shared segments a prefix of its context.)
void Forward::find_shared(const StepBatch& b) {
  n_shared_ = 0;
  const int32_t bs = kv_.block_size();
  auto table = [&](int32_t ti) { return b.block_tables + int64_t(b.seq_idx[tiles_[size_t(ti)].first]) * b.max_blocks; };
  for (int32_t s = 0;; ++s) {
    // Whole segments before the token's own position: its block is its own.
    const int32_t end = (s + 1) * kSegment, blk0 = s * kSegment / bs, blk1 = (end - 1) / bs + 1;
    int32_t n = 0;
    for (int32_t ti = 0; ti < n_tiles_; ++ti) {
      const Tile& t = tiles_[size_t(ti)];
      if (t.n == 1 && t.n_shared == s && end <= t.pos) by_blocks_[size_t(n++)] = ti;
    }
    if (n < 2) return;
    auto less = [&](int32_t x, int32_t y) {
      return std::lexicographical_compare(table(x) + blk0, table(x) + blk1, table(y) + blk0, table(y) + blk1);
    };
    std::sort(by_blocks_.begin(), by_blocks_.begin() + n, less);
    for (int32_t i = 0; i < n;) {
      int32_t e = i + 1;
      while (e < n && std::equal(table(by_blocks_[size_t(i)]) + blk0, table(by_blocks_[size_t(i)]) + blk1,
                                 table(by_blocks_[size_t(e)]) + blk0)) {
        ++e;
      }
      // Runs of at least two, in nearly equal items of at most kTileTokens tiles.
      const int32_t run = e - i, items = (run + kTileTokens - 1) / kTileTokens;
      for (int32_t k = 0; run >= 2 && k < items; ++k) {
        if (size_t(n_shared_) == shared_.size()) shared_.resize(shared_.size() + 1);
        Shared& sh = shared_[size_t(n_shared_++)];
        sh.seg = s;
        sh.n = 0;
        for (int32_t j = i + run * k / items; j < i + run * (k + 1) / items; ++j) {
          sh.tiles[sh.n++] = by_blocks_[size_t(j)];
          tiles_[size_t(by_blocks_[size_t(j)])].n_shared = s + 1;
        }
      }
      i = e;
    }
  }
}

int64_t Forward::seg_cost(const Tile& t, int32_t seg) const {
  int64_t c = 0;
  for (int32_t i = 0; i < t.n; ++i) c += std::clamp<int64_t>(t.pos + i + 1 - int64_t(seg) * kSegment, 0, kSegment);
  return c;
}

int64_t Forward::group_cost(const Group& gr) const {
  const Shared* sh = shared_of(gr);
  const int64_t per_head = sh ? int64_t(sh->n) * kSegment : tiles_[size_t(gr.tile)].cost;
  return per_head * (gr.h1 - gr.h0);
}

template <class F>
void Forward::for_each_group(F&& fn) const {
  const int32_t G = m_.hp().n_head / m_.hp().n_head_kv;
  int64_t at = 0;
  for (int32_t ti = 0; ti < n_tiles_ + n_shared_; ++ti) {
    for (int32_t g = 0; g < m_.hp().n_head_kv; ++g) {
      for (int32_t p = 0; p < n_parts_; ++p) {
        const Group gr{ti, g, p, p * G / n_parts_, (p + 1) * G / n_parts_, at};
        fn(gr);
        at += group_cost(gr);
      }
    }
  }
}

void Forward::group_owners(const Group& gr, int nth, int& first, int& last) const {
  if (shared_of(gr)) {
    first = last = item_owner(gr.at, group_cost(gr), total_cost_, nth);
    return;
  }
  const Tile& t = tiles_[size_t(gr.tile)];
  const int64_t w = gr.h1 - gr.h0, c_last = seg_cost(t, t.n_seg - 1) * w;
  first = item_owner(gr.at, seg_cost(t, t.n_shared) * w, total_cost_, nth);
  last = item_owner(gr.at + t.cost * w - c_last, c_last, total_cost_, nth);
}

template <class F>
void Forward::for_each_item(int tid, int nth, F&& fn) const {
  for_each_group([&](const Group& gr) {
    int first, last;
    group_owners(gr, nth, first, last);
    if (first > tid || last < tid) return;
    if (const Shared* sh = shared_of(gr)) {
      fn(gr, sh->seg, true);
      return;
    }
    const Tile& tile = tiles_[size_t(gr.tile)];
    int64_t s_at = gr.at;
    for (int32_t s = tile.n_shared; s < tile.n_seg; ++s) {
      const int64_t c = seg_cost(tile, s) * (gr.h1 - gr.h0);
      if (item_owner(s_at, c, total_cost_, nth) == tid) fn(gr, s, first != last || tile.n_shared > 0);
      s_at += c;
    }
  });
}

// Asks for the cached K/V rows of this thread's attention items of layer l (up to
// kPrefetchKvBytes), to arrive while the Q/K/V projections stream their weights, so that
// attention finds them in L2 rather than waiting on memory (the weights stream through every
// cache level between one token and the next). Measured at batch 1 on the SmolLM2 and Qwen2.5
// shapes, alternating with and without every 16 steps in one process: the attention phase 15-35 %
// shorter, the projections 3-10 % longer (the prefetches share their stream), whole steps -0.4 to
// +2.8 % faster over six rounds.
void Forward::prefetch_kv(int tid, int nth, const StepBatch& b, int32_t l) const {
  const HParams& hp = m_.hp();
  const int32_t bs = kv_.block_size();
  const size_t head_bytes = kv_.row_bytes();
  size_t budget = kPrefetchKvBytes;
  int32_t prev[3] = {-1, -1, -1};  // tile, head, segment of the last item
  for_each_item(tid, nth, [&](const Group& gr, int32_t seg, bool) {
    // The part after one this thread runs reads the same rows.
    const bool again = prev[0] == gr.tile && prev[1] == gr.head && prev[2] == seg;
    prev[0] = gr.tile;
    prev[1] = gr.head;
    prev[2] = seg;
    if (again) return;
    const int32_t g = gr.head;
    const Shared* sh = shared_of(gr);
    const Tile& tile = tiles_[size_t(sh ? sh->tiles[0] : gr.tile)];
    const int32_t* bt = b.block_tables + int64_t(b.seq_idx[tile.first]) * b.max_blocks;
    // Positions before the tile's first are in the cache already; the tile writes the rest.
    for (int32_t j = seg * kSegment; j < std::min(tile.pos, (seg + 1) * kSegment); ++j) {
      if (budget < 2 * head_bytes) return;
      budget -= 2 * head_bytes;
      const uint8_t* k = kv_.k_row(l, g, bt[j / bs], j % bs);
      const uint8_t* v = kv_.v_row(l, g, bt[j / bs], j % bs);
      for (size_t o = 0; o < head_bytes; o += 64) {
        __builtin_prefetch(k + o, 0, 2);
        __builtin_prefetch(v + o, 0, 2);
      }
    }
  });
}

// Per item, for each chunk of the segment's positions: the scores of every query row of the item
// against each K row, one run of adjacent KV blocks at a time (a token stops at its own position),
// the online softmax update of each row, then the V rows weighted into the outputs. A first
// segment accumulates straight into the output rows, a later one into scratch that is then folded
// into them, and a split (tile, head)'s segments into parts_ for finish_splits. Which thread runs
// an item, and which rows share a kernel call, never changes the arithmetic of a row. (Taking the
// items head-major instead, so that a thread's tiles of one sequence meet the same head's rows in
// its L2, made no difference at pp512 or pp2048 on SmolLM2.)
// A q8_0 cache's rows go to kernels that read its blocks as they go (each value d * q, so a row's
// arithmetic is that of an f32 cache holding the rounded values). Widening each run of rows into
// f32 scratch first, for the f32 kernels, made their read-ahead (avx2-common.h) fetch the scratch
// while the widening waited on the cache: 8 sequences x 1,984 tokens on the SmolLM2 shape spent
// 31-34 ms a decode step in attention that way, 16 ms reading the blocks directly (f16: 13-14).
void Forward::attention(int tid, int nth, const StepBatch& b, int32_t l, const Prepared* out) {
  const HParams& hp = m_.hp();
  const int32_t hd = hp.head_dim, G = hp.n_head / hp.n_head_kv;
  const int64_t Q = int64_t(hp.n_head) * hd;
  const int32_t bs = kv_.block_size();
  const int64_t slot_stride = hd;  // elements from one slot's row to the next
  const size_t max_rows = size_t(kTileTokens) * size_t(G);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const KvType type = kv_.type();
  AttnScratch& S = attn_scratch_[size_t(tid)];

  for_each_item(tid, nth, [&](const Group& gr, int32_t seg, bool split) {
    // A shared item's tokens are its members' (one each); its K/V rows, member 0's.
    const Shared* sh = shared_of(gr);
    const Tile& tile = tiles_[size_t(sh ? sh->tiles[0] : gr.tile)];
    const int32_t n_tok = sh ? sh->n : tile.n;
    auto token = [&](int32_t i) { return sh ? tiles_[size_t(sh->tiles[i])].first : tile.first + i; };  // batch index
    const int32_t g = gr.head, Gp = gr.h1 - gr.h0;
    const int32_t* bt = b.block_tables + int64_t(b.seq_idx[tile.first]) * b.max_blocks;
    auto n_ctx = [&](int32_t i) { return b.positions[token(i)] + 1; };  // context of the item's token i
    // Row r = i * Gp + h: query head g * G + h0 + h of token i, at this offset in q_ and attn_.
    auto at = [&](size_t r) { return size_t(int64_t(token(int32_t(r / Gp))) * Q + int64_t(g * G + gr.h0 + int32_t(r % Gp)) * hd); };
    auto attn_row = [&](size_t r) { return &attn_[at(r)]; };
    const size_t rows = size_t(n_tok) * Gp;

    // Where row r's partial goes in parts_ (a split group's or shared item's): its group's split
    // entry, one part per segment. A shared tile's groups are all splits, in group order.
    size_t part = 0;
    if (split && !sh) {
      int32_t k = tile.split0;
      while (splits_[size_t(k)].group.at != gr.at) ++k;
      part = splits_[size_t(k)].part0 + size_t(seg);
    }
    auto part_row = [&](size_t r) {
      if (!sh) return part * max_rows + r;
      const Split& sp = splits_[size_t(tiles_[size_t(sh->tiles[r / Gp])].split0 + g * n_parts_ + gr.part)];
      return (sp.part0 + size_t(seg)) * max_rows + r % Gp;
    };
    for (size_t r = 0; r < rows; ++r) {
      S.q[r] = &q_[at(r)];
      if (split) {
        const size_t pr = part_row(r);
        S.o[r] = &parts_.o[pr * size_t(hd)];
        S.mp[r] = &parts_.m[pr];
        S.lp[r] = &parts_.l[pr];
      } else if (seg > 0) {
        S.o[r] = &S.o2[r * size_t(hd)];
        S.mp[r] = &S.m2[r];
        S.lp[r] = &S.l2[r];
      } else {
        S.o[r] = attn_row(r);
        S.mp[r] = &S.m[r];
        S.lp[r] = &S.l[r];
      }
      std::fill(S.o[r], S.o[r] + hd, 0.0f);
      *S.mp[r] = -INFINITY;
      *S.lp[r] = 0.0;
    }
    // Calls fn(i0, i1, n_pos) for the tokens [i0, i1) that see the same n_pos > 0 positions of
    // [j, j_end): tokens share a call as long as their contexts cover the same part of it.
    auto by_reach = [&](int32_t i, int32_t j, int32_t j_end, auto&& fn) {
      while (i < n_tok) {
        const int32_t cnt = std::min(n_ctx(i), j_end) - j;
        int32_t e = i + 1;
        while (e < n_tok && std::min(n_ctx(e), j_end) - j == cnt) ++e;
        if (cnt > 0) fn(i, e, cnt);
        i = e;
      }
    };
    // Calls fn(j, j_end, block, slot of j) for each run of positions [j, j_end) of [j0, j1) whose
    // rows are contiguous: one KV block's, or several whose ids follow one another (the cache
    // stores block b + 1 right after block b, and the block manager hands out the lowest free id,
    // so a prompt's blocks, or a lone sequence's, mostly do). Fewer, longer kernel calls: at batch
    // 1 the attention phase was 14-28 % shorter than with a call per 16-slot block (in-process A/B,
    // SmolLM2 and Qwen2.5 shapes); each score and each value step is computed the same way in either.
    auto by_block = [&](int32_t j0, int32_t j1, auto&& fn) {
      for (int32_t j = j0; j < j1;) {
        int32_t j_end = std::min(j1, (j / bs + 1) * bs);
        while (j_end < j1 && bt[j_end / bs] == bt[(j_end - 1) / bs] + 1) j_end = std::min(j1, j_end + bs);
        fn(j, j_end, bt[j / bs], j % bs);
        j = j_end;
      }
    };

    const int32_t seg_end = std::min(n_ctx(n_tok - 1), (seg + 1) * kSegment);
    for (int32_t j0 = seg * kSegment; j0 < seg_end; j0 += kChunk) {
      const int32_t j1 = std::min(j0 + kChunk, seg_end);
      int32_t first = 0;  // tokens before it ended their context before this chunk
      while (n_ctx(first) <= j0) ++first;

      by_block(j0, j1, [&](int32_t j, int32_t j_end, int32_t blk, int32_t slot) {
        const uint8_t* k = kv_.k_row(l, g, blk, slot);
        by_reach(first, j, j_end, [&](int32_t i0, int32_t i1, int32_t cnt) {
          const size_t r0 = size_t(i0) * Gp;
          const int n_q = (i1 - i0) * Gp;
          float* s = &S.p[r0 * kChunk + size_t(j - j0)];
          if (type == KvType::F16) cpu::attn_scores_f16(hd, &S.q[r0], n_q, reinterpret_cast<const uint16_t*>(k), slot_stride, cnt, s, kChunk);
          else if (type == KvType::Q8_0) cpu::attn_scores_q8_0(hd, &S.q[r0], n_q, k, slot_stride, cnt, s, kChunk);
          else cpu::attn_scores_f32(hd, &S.q[r0], n_q, reinterpret_cast<const float*>(k), slot_stride, cnt, s, kChunk);
        });
      });

      // Online softmax: rescale what the row holds when its max grows, then exponentiate.
      for (int32_t i = first; i < n_tok; ++i) {
        const int32_t cnt = std::min(n_ctx(i), j1) - j0;
        for (int32_t h = 0; h < Gp; ++h) {
          const size_t r = size_t(i) * Gp + h;
          float* p = &S.p[r * kChunk];
          float& m = *S.mp[r];
          double& lsum = *S.lp[r];
          const float mx = cpu::attn_scale_max(p, cnt, scale, m);
          if (mx > m && m != -INFINITY) {
            const float f = std::exp(m - mx);
            for (int32_t e = 0; e < hd; ++e) S.o[r][e] *= f;
            lsum *= f;
          }
          m = mx;
          lsum += cpu::attn_exp(p, cnt, mx);
        }
      }

      by_block(j0, j1, [&](int32_t j, int32_t j_end, int32_t blk, int32_t slot) {
        const uint8_t* v = kv_.v_row(l, g, blk, slot);
        by_reach(first, j, j_end, [&](int32_t i0, int32_t i1, int32_t cnt) {
          const size_t r0 = size_t(i0) * Gp;
          const int n_q = (i1 - i0) * Gp;
          const float* p = &S.p[r0 * kChunk + size_t(j - j0)];
          if (type == KvType::F16) cpu::attn_values_f16(hd, p, kChunk, n_q, reinterpret_cast<const uint16_t*>(v), slot_stride, cnt, &S.o[r0]);
          else if (type == KvType::Q8_0) cpu::attn_values_q8_0(hd, p, kChunk, n_q, v, slot_stride, cnt, &S.o[r0]);
          else cpu::attn_values_f32(hd, p, kChunk, n_q, reinterpret_cast<const float*>(v), slot_stride, cnt, &S.o[r0]);
        });
      });
    }

    if (split) return;  // finish_splits folds and normalizes it
    for (size_t r = 0; r < rows; ++r) {
      if (seg > 0) fold_partial(attn_row(r), S.m[r], S.l[r], S.o[r], *S.mp[r], *S.lp[r], hd);
      if (seg < tile.n_seg - 1) continue;
      normalize(attn_row(r), S.l[r], hd);
      if (out) {
        const int64_t col = int64_t(at(r)) % Q;
        out->convert(attn_.data(), Q, tile.first + int64_t(r) / Gp, col, col + hd);
      }
    }
  });
}

void Forward::finish_splits(int64_t t, int64_t c0, int64_t c1) {
  const HParams& hp = m_.hp();
  const int32_t hd = hp.head_dim, G = hp.n_head / hp.n_head_kv;
  const size_t max_rows = size_t(kTileTokens) * size_t(G);
  // The tile of token t (tiles are in token order), then its split groups.
  const Tile* first = tiles_.data();
  const Tile& tile = *(std::upper_bound(first, first + n_tiles_, t, [](int64_t x, const Tile& y) { return x < y.first; }) - 1);
  for (int32_t k = tile.split0; k < tile.split1; ++k) {
    const Split& sp = splits_[size_t(k)];
    const int32_t h0 = sp.group.h0, h1 = sp.group.h1;
    for (int32_t h = h0; h < h1; ++h) {
      const int64_t col = int64_t(sp.group.head * G + h) * hd, lo = std::max(c0, col), hi = std::min(c1, col + hd);
      if (lo >= hi) continue;
      const size_t r = size_t(t - tile.first) * (h1 - h0) + (h - h0);
      auto part_o = [&](int32_t s) { return &parts_.o[((sp.part0 + size_t(s)) * max_rows + r) * size_t(hd) + size_t(lo - col)]; };
      float* out = &attn_[size_t(t * int64_t(hp.n_head) * hd + lo)];
      std::copy(part_o(0), part_o(0) + (hi - lo), out);
      float m = parts_.m[sp.part0 * max_rows + r];
      double l = parts_.l[sp.part0 * max_rows + r];
      for (int32_t s = 1; s < tile.n_seg; ++s) {
        const size_t ps = (sp.part0 + size_t(s)) * max_rows + r;
        fold_partial(out, m, l, part_o(s), parts_.m[ps], parts_.l[ps], hi - lo);
      }
      normalize(out, l, hi - lo);
    }
  }
}

}  // namespace weft
