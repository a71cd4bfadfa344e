import { WeftError } from '../errors.js';
import { FreeIds } from './free-ids.js';
import { chainHash, PrefixCache, ROOT_HASH, type BlockHash } from './prefix-cache.js';

/** A sequence's logical-to-physical block map. */
interface Table {
  /** blocks[j] holds positions [j * blockSize, (j + 1) * blockSize). */
  blocks: number[];
  /** hashes[j]: chained hash of full block j's tokens, for the full computed blocks seen so far. */
  hashes: BlockHash[];
}

/** Cached full blocks that hold a prefix of some tokens (see BlockManager.match). */
export interface PrefixMatch {
  blocks: readonly number[];
  hashes: readonly BlockHash[];
  /** Tokens they hold: blocks.length * blockSize. */
  tokens: number;
}

export interface BlockManagerState {
  nBlocks: number;
  refs: Int32Array;
  free: readonly number[];
  idle: readonly number[];
  byHash: ReadonlyMap<BlockHash, number>;
  hashOf: ReadonlyMap<number, BlockHash>;
  tables: ReadonlyMap<number, { blocks: readonly number[]; hashes: readonly BlockHash[] }>;
}

/**
 * Maps sequences onto the native KV pool's blocks.
 *
 * Every block is in exactly one state: free, referenced (ref count = the number of table
 * entries naming it), or idle (unreferenced, but holding a cached prefix block that a later
 * request may reuse). Full computed blocks are registered in the prefix cache under their
 * chained hash. A block is written only while its writer holds the sole reference, so:
 *  - fork() shares every block (ref counts go up, nothing is copied);
 *  - grow() gives the writer a private copy of a shared block first (copy-on-write), returning
 *    the (src, dst) pairs the native step must copy before its forward pass;
 *  - a cached block is never written: only full, computed blocks are cached, and writes only
 *    go to positions past a sequence's computed tokens.
 *
 * Allocation order (what the exact-id tests rely on): the lowest free id; when no id is free,
 * the least recently released idle block is evicted from the prefix cache and reused; the blocks
 * one grow() appends are then put in ascending order. free() releases a table's blocks last to
 * first, so the deep end of a cached prefix is evicted before its start, which later requests
 * are likelier to share.
 *
 * Operations that can run out of blocks are all-or-nothing: they return null and change nothing.
 * Misuse (unknown or duplicate sequence ids) throws E_INTERNAL: it is a scheduler bug.
 */
export class BlockManager {
  private readonly refs: Int32Array;
  private readonly freeIds: FreeIds;
  private readonly cache = new PrefixCache();
  private readonly tables = new Map<number, Table>();

  constructor(readonly nBlocks: number, readonly blockSize: number) {
    if (!Number.isInteger(nBlocks) || nBlocks < 1 || !Number.isInteger(blockSize) || blockSize < 1) {
      throw new WeftError('E_INVALID_ARGUMENT', `a KV pool needs at least one block of at least one token (got ${nBlocks} x ${blockSize})`);
    }
    this.refs = new Int32Array(nBlocks);
    this.freeIds = new FreeIds(nBlocks);
  }

  /** Blocks referenced by some sequence. */
  get usedBlocks(): number {
    return this.nBlocks - this.freeIds.size - this.cache.idleCount;
  }

  /** Unreferenced blocks kept for the prefix cache (evicted when needed). */
  get cachedBlocks(): number {
    return this.cache.idleCount;
  }

  get freeBlocks(): number {
    return this.freeIds.size;
  }

  /** Blocks an allocation can take: free ones, then idle cached ones. */
  get availableBlocks(): number {
    return this.freeIds.size + this.cache.idleCount;
  }

  blocksFor(nTokens: number): number {
    return Math.ceil(nTokens / this.blockSize);
  }

  has(seq: number): boolean {
    return this.tables.has(seq);
  }

  table(seq: number): readonly number[] {
    return this.get(seq).blocks;
  }

  /**
   * The longest run of cached full blocks holding tokens[0, k) with k <= maxTokens. Pure lookup:
   * nothing is referenced until open().
   */
  match(tokens: ArrayLike<number>, maxTokens: number): PrefixMatch {
    const bs = this.blockSize;
    const blocks: number[] = [];
    const hashes: BlockHash[] = [];
    for (let j = 0; (j + 1) * bs <= Math.min(maxTokens, tokens.length); j++) {
      const h = chainHash(j ? hashes[j - 1] : ROOT_HASH, tokens, j * bs, (j + 1) * bs);
      const b = this.cache.lookup(h);
      if (b === undefined) break;
      blocks.push(b);
      hashes.push(h);
    }
    return { blocks, hashes, tokens: blocks.length * bs };
  }

  /** Whether open(seq, m) followed by grow(seq, m.tokens, upTo) would succeed. */
  canOpen(m: PrefixMatch, upTo: number): boolean {
    const idleHits = m.blocks.reduce((n, b) => n + (this.refs[b] === 0 ? 1 : 0), 0);
    return this.blocksFor(upTo) - m.blocks.length <= this.availableBlocks - idleHits;
  }

  /** Starts a table for `seq` holding the matched cached blocks (none for an empty match). */
  open(seq: number, m: PrefixMatch = { blocks: [], hashes: [], tokens: 0 }): void {
    if (this.tables.has(seq)) throw new WeftError('E_INTERNAL', `sequence ${seq} already has a block table`);
    for (const b of m.blocks) {
      if (this.cache.hashOf(b) === undefined) throw new WeftError('E_INTERNAL', `block ${b} is not a cached block`);
      this.ref(b);
    }
    this.tables.set(seq, { blocks: [...m.blocks], hashes: [...m.hashes] });
  }

  /**
   * Makes positions [from, upTo) of `seq` writable: appends blocks up to `upTo` and replaces any
   * shared block among those written by a private copy. Returns the copies to do before the
   * write as flat (src, dst) pairs, or null when the pool is short (then nothing changed).
   */
  grow(seq: number, from: number, upTo: number): number[] | null {
    const t = this.get(seq);
    if (upTo <= from) return [];
    const bs = this.blockSize;
    const first = Math.floor(from / bs), last = Math.floor((upTo - 1) / bs);
    if (first > t.blocks.length) throw new WeftError('E_INTERNAL', `sequence ${seq} would skip positions before ${from}`);
    let need = 0;
    for (let j = first; j <= last; j++) if (j >= t.blocks.length || this.refs[t.blocks[j]] > 1) need++;
    if (need > this.availableBlocks) return null;
    const copies: number[] = [];
    for (let j = first; j <= last && j < t.blocks.length; j++) {
      if (this.refs[t.blocks[j]] > 1) {
        const src = t.blocks[j];
        const dst = this.allocate();
        this.refs[src]--;
        t.blocks[j] = dst;
        copies.push(src, dst);
      }
    }
    // New blocks in ascending id order: the native attention reads a run of consecutive ids as
    // one stretch of memory. Evicted prefix blocks come back deep end first (see free()), and
    // taken in that order a sequence's blocks would run backwards, one 16-slot run each: decode at
    // 8 x 1984 tokens on the SmolLM2 shape ran at 143 tok/s on such blocks against 325-352 on
    // fresh ones.
    const fresh: number[] = [];
    for (let j = t.blocks.length; j <= last; j++) fresh.push(this.allocate());
    t.blocks.push(...fresh.sort((a, b) => a - b));
    return copies;
  }

  /**
   * Records that the K/V of tokens[0, nComputed) of `seq` is in its blocks: every block that is
   * now full enters the prefix cache.
   */
  commit(seq: number, tokens: ArrayLike<number>, nComputed: number): void {
    const t = this.get(seq);
    const bs = this.blockSize;
    for (let j = t.hashes.length; (j + 1) * bs <= nComputed; j++) {
      const h = chainHash(j ? t.hashes[j - 1] : ROOT_HASH, tokens, j * bs, (j + 1) * bs);
      t.hashes.push(h);
      this.cache.register(t.blocks[j], h);
    }
  }

  /** `child` gets a table sharing every block of `parent`'s. */
  fork(parent: number, child: number): void {
    const t = this.get(parent);
    if (this.tables.has(child)) throw new WeftError('E_INTERNAL', `sequence ${child} already has a block table`);
    for (const b of t.blocks) this.refs[b]++;
    this.tables.set(child, { blocks: [...t.blocks], hashes: [...t.hashes] });
  }

  /** Drops `seq`'s table; blocks nobody else references become free, or idle when cached. */
  free(seq: number): void {
    const t = this.get(seq);
    this.tables.delete(seq);
    for (let j = t.blocks.length - 1; j >= 0; j--) {
      const b = t.blocks[j];
      if (--this.refs[b] > 0) continue;
      if (this.cache.hashOf(b) !== undefined) this.cache.release(b);
      else this.freeIds.push(b);
    }
  }

  /** A copy of the whole state, for invariant checks. */
  inspect(): BlockManagerState {
    const c = this.cache.inspect();
    const tables = new Map<number, { blocks: readonly number[]; hashes: readonly BlockHash[] }>();
    for (const [seq, t] of this.tables) tables.set(seq, { blocks: [...t.blocks], hashes: [...t.hashes] });
    return {
      nBlocks: this.nBlocks, refs: this.refs.slice(), free: [...this.freeIds.ids()],
      idle: c.idle, byHash: c.byHash, hashOf: c.hashOf, tables,
    };
  }

  private get(seq: number): Table {
    const t = this.tables.get(seq);
    if (!t) throw new WeftError('E_INTERNAL', `sequence ${seq} has no block table`);
    return t;
  }

  private ref(b: number): void {
    if (this.refs[b]++ === 0) this.cache.revive(b);
  }

  private allocate(): number {
    const b = this.freeIds.size ? this.freeIds.pop() : this.cache.evictOldest();
    if (b === undefined) throw new WeftError('E_INTERNAL', 'KV block pool exhausted after a successful capacity check');
    this.refs[b] = 1;
    return b;
  }
}
