// The paged block manager alone (no model): exact block ids through allocate / fork /
// copy-on-write / free / prefix reuse / eviction, and invariants after every operation.
import { describe, expect, it } from 'vitest';
import { BlockManager } from '../lib/kv/block-manager.js';
import { checkBlockInvariants } from '../lib/kv/invariants.js';
import { chainHash, ROOT_HASH } from '../lib/kv/prefix-cache.js';

// Runs an operation, then checks every invariant.
function checked<T>(bm: BlockManager, op: () => T): T {
  const r = op();
  checkBlockInvariants(bm);
  return r;
}

describe('BlockManager', () => {
  it('allocates lowest ids first, forks by sharing, copies a shared partial block on first write', () => {
    const bm = new BlockManager(8, 4);
    const A = [10, 11, 12, 13, 14, 15];  // block 0 full, block 1 half full
    checked(bm, () => bm.open(1));
    expect(checked(bm, () => bm.grow(1, 0, 6))).toEqual([]);
    expect(bm.table(1)).toEqual([0, 1]);
    checked(bm, () => bm.commit(1, A, 6));

    checked(bm, () => bm.fork(1, 2));
    expect(bm.table(2)).toEqual([0, 1]);
    expect(bm.usedBlocks).toBe(2);

    // The child writes position 6 into the shared block 1: it gets a copy, block 2.
    expect(checked(bm, () => bm.grow(2, 6, 7))).toEqual([1, 2]);
    expect(bm.table(2)).toEqual([0, 2]);
    // The parent is now block 1's only holder and writes in place.
    expect(checked(bm, () => bm.grow(1, 6, 7))).toEqual([]);
    expect(bm.table(1)).toEqual([0, 1]);
    // Crossing into a new logical block takes the next lowest free id.
    expect(checked(bm, () => bm.grow(2, 7, 9))).toEqual([]);
    expect(bm.table(2)).toEqual([0, 2, 3]);
    expect([bm.usedBlocks, bm.cachedBlocks, bm.freeBlocks]).toEqual([4, 0, 4]);

    // Freeing the parent releases only what it held alone (block 1: partial, so plain free).
    checked(bm, () => bm.free(1));
    expect([bm.usedBlocks, bm.cachedBlocks, bm.freeBlocks]).toEqual([3, 0, 5]);
    const B = [...A, 20, 21, 22];
    checked(bm, () => bm.commit(2, B, 9));  // block 2 is now full: cached
    // Freed last to first: block 3 is free, blocks 2 then 0 become idle cached blocks.
    checked(bm, () => bm.free(2));
    expect([bm.usedBlocks, bm.cachedBlocks, bm.freeBlocks]).toEqual([0, 2, 6]);

    // A later sequence with the same first 8 tokens reuses both cached blocks.
    const m = bm.match([...B, 99], 9);
    expect(m).toMatchObject({ blocks: [0, 2], tokens: 8 });
    expect(bm.match([10, 11, 12, 13, 14, 15, 16, 17], 8).blocks).toEqual([0]);  // second block differs
    expect(bm.match(B, 7).blocks).toEqual([0]);  // capped before the second block ends
    checked(bm, () => bm.open(3, m));
    expect(bm.table(3)).toEqual([0, 2]);
    expect([bm.usedBlocks, bm.cachedBlocks]).toEqual([2, 0]);
    expect(checked(bm, () => bm.grow(3, 8, 10))).toEqual([]);
    expect(bm.table(3)).toEqual([0, 2, 1]);
  });

  it('evicts the least recently released cached block only when no block is free', () => {
    const bm = new BlockManager(4, 2);
    const T = [1, 2, 3, 4, 5, 6];
    checked(bm, () => bm.open(1));
    checked(bm, () => bm.grow(1, 0, 6));
    checked(bm, () => bm.commit(1, T, 6));
    expect(bm.table(1)).toEqual([0, 1, 2]);
    checked(bm, () => bm.free(1));  // idle, least recent first: 2, 1, 0
    expect([bm.cachedBlocks, bm.freeBlocks]).toEqual([3, 1]);

    checked(bm, () => bm.open(2));
    expect(checked(bm, () => bm.grow(2, 0, 4))).toEqual([]);
    // Block 3 was free; then the deepest cached block (2) is evicted, not the prefix's start;
    // the two go into the table in ascending order.
    expect(bm.table(2)).toEqual([2, 3]);
    expect(bm.match(T, 6).blocks).toEqual([0, 1]);
    // Out of blocks: all-or-nothing refusal leaves the table as it was.
    checked(bm, () => bm.grow(2, 4, 6));
    expect(bm.table(2)).toEqual([2, 3, 1]);
    expect(bm.match(T, 6).blocks).toEqual([0]);
    expect(bm.grow(2, 6, 10)).toBeNull();  // needs 2, only block 0 is left
    expect(bm.table(2)).toEqual([2, 3, 1]);
    checkBlockInvariants(bm);
    expect(bm.canOpen(bm.match(T, 6), 4)).toBe(false);  // reusing block 0 leaves none to grow into
    expect(bm.canOpen(bm.match(T, 6), 2)).toBe(true);
  });

  it('a sequence that takes over an evicted prefix gets its blocks in ascending order, as attention streams them', () => {
    const bm = new BlockManager(8, 2);
    const T = Array.from({ length: 16 }, (_, i) => i + 1);
    checked(bm, () => bm.open(1));
    checked(bm, () => bm.grow(1, 0, 16));
    checked(bm, () => bm.commit(1, T, 16));
    checked(bm, () => bm.free(1));  // idle, least recent first: 7, 6, .. 0
    checked(bm, () => bm.open(2));
    checked(bm, () => bm.grow(2, 0, 10));  // evicts 7, 6, 5, 4, 3
    checked(bm, () => bm.grow(2, 10, 16));  // then 2, 1, 0
    expect(bm.table(2)).toEqual([3, 4, 5, 6, 7, 0, 1, 2]);
  });

  it('a block computed twice at once is cached once; the duplicate is freed, not cached', () => {
    const bm = new BlockManager(6, 2);
    const T = [7, 8, 9];
    for (const s of [1, 2]) {
      checked(bm, () => bm.open(s));
      checked(bm, () => bm.grow(s, 0, 3));
      checked(bm, () => bm.commit(s, T, 3));
    }
    expect([bm.table(1), bm.table(2)]).toEqual([[0, 1], [2, 3]]);
    checked(bm, () => bm.free(2));
    expect([bm.cachedBlocks, bm.freeBlocks]).toEqual([0, 4]);
    checked(bm, () => bm.free(1));
    expect([bm.cachedBlocks, bm.freeBlocks]).toEqual([1, 5]);
    expect(bm.match(T, 2).blocks).toEqual([0]);
  });

  it('chained hashes depend on the whole prefix, not just the block', () => {
    const h1 = chainHash(ROOT_HASH, [1, 2, 3, 4], 2, 4);
    expect(chainHash(ROOT_HASH, [9, 9, 3, 4], 2, 4)).toBe(h1);
    expect(chainHash(chainHash(ROOT_HASH, [1, 2], 0, 2), [1, 2, 3, 4], 2, 4)).not.toBe(h1);
  });

  it('misuse is E_INTERNAL, never a silent corruption', () => {
    const bm = new BlockManager(4, 4);
    expect(() => bm.free(5)).toThrow(expect.objectContaining({ code: 'E_INTERNAL' }));
    bm.open(1);
    expect(() => bm.open(1)).toThrow(expect.objectContaining({ code: 'E_INTERNAL' }));
    expect(() => bm.grow(1, 8, 9)).toThrow(/skip/);
    expect(() => new BlockManager(0, 16)).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });

  it('1000 random operations keep every invariant, and cached blocks always hold their tokens', () => {
    const bs = 4, nBlocks = 24;
    const bm = new BlockManager(nBlocks, bs);
    const rand = mulberry32(1234);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    // What each physical slot holds: written on commit, copied on copy-on-write.
    const kv = new Int32Array(nBlocks * bs).fill(-1);
    const seqs = new Map<number, { tokens: number[]; computed: number }>();
    // Prompts drawn from a few families so that prefixes recur.
    const families = Array.from({ length: 3 }, () => Array.from({ length: 12 }, () => Math.floor(rand() * 5)));
    let nextId = 0;
    const counts = { open: 0, grow: 0, refused: 0, fork: 0, free: 0, hits: 0, copies: 0 };

    const write = (id: number, from: number, to: number) => {
      const s = seqs.get(id)!;
      const table = bm.table(id);
      const refs = bm.inspect().refs;
      for (let p = from; p < to; p++) {
        // Writes only ever go to a block the writer holds alone.
        expect(refs[table[Math.floor(p / bs)]]).toBe(1);
        kv[table[Math.floor(p / bs)] * bs + (p % bs)] = s.tokens[p];
      }
      s.computed = to;
      bm.commit(id, s.tokens, to);
    };

    for (let op = 0; op < 1000; op++) {
      const live = [...seqs.keys()];
      const r = rand();
      if (r < 0.2 || live.length === 0) {
        const id = nextId++;
        const tokens = [...pick(families).slice(0, 2 + Math.floor(rand() * 10)), ...Array.from({ length: 3 }, () => Math.floor(rand() * 5))];
        const m = bm.match(tokens, tokens.length - 1);
        const upTo = Math.min(tokens.length, m.tokens + 1 + Math.floor(rand() * 6));
        if (!bm.canOpen(m, upTo)) {
          counts.refused++;
          continue;
        }
        // A prefix hit hands over blocks that really hold those tokens.
        m.blocks.forEach((b, j) => expect(Array.from(kv.subarray(b * bs, (b + 1) * bs))).toEqual(tokens.slice(j * bs, (j + 1) * bs)));
        counts.hits += m.blocks.length;
        bm.open(id, m);
        seqs.set(id, { tokens, computed: m.tokens });
        const copies = bm.grow(id, m.tokens, upTo);
        expect(copies).toEqual([]);
        write(id, m.tokens, upTo);
        counts.open++;
      } else if (r < 0.6) {
        const id = pick(live);
        const s = seqs.get(id)!;
        const add = 1 + Math.floor(rand() * 6);
        while (s.tokens.length < s.computed + add) s.tokens.push(Math.floor(rand() * 5));
        const copies = bm.grow(id, s.computed, s.computed + add);
        if (copies === null) {
          counts.refused++;
        } else {
          for (let c = 0; c < copies.length; c += 2) kv.copyWithin(copies[c + 1] * bs, copies[c] * bs, (copies[c] + 1) * bs);
          counts.copies += copies.length / 2;
          counts.grow++;
          write(id, s.computed, s.computed + add);
        }
      } else if (r < 0.7) {
        const id = pick(live);
        const child = nextId++;
        bm.fork(id, child);
        const s = seqs.get(id)!;
        // Children diverge after the fork point.
        seqs.set(child, { tokens: s.tokens.slice(0, s.computed), computed: s.computed });
        counts.fork++;
      } else {
        const id = pick(live);
        bm.free(id);
        seqs.delete(id);
        counts.free++;
      }
      checkBlockInvariants(bm);
      // Every sequence's computed tokens are where its table says.
      for (const [id, s] of seqs) {
        const t = bm.table(id);
        for (let p = 0; p < s.computed; p++) expect(kv[t[Math.floor(p / bs)] * bs + (p % bs)]).toBe(s.tokens[p]);
      }
    }
    for (const id of seqs.keys()) bm.free(id);
    checkBlockInvariants(bm);
    expect(bm.usedBlocks).toBe(0);
    // The walk really exercised sharing, copying, reuse and running out.
    for (const k of ['open', 'grow', 'refused', 'fork', 'free', 'hits', 'copies'] as const) expect(counts[k]).toBeGreaterThan(10);
  });
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
