import { createHash } from 'node:crypto';

/**
 * Identity of a full block's contents: a chained hash over the block's token ids and the hash
 * of the block before it, so equal hashes mean equal whole prefixes (and so equal positions and
 * equal K/V, since the forward pass gives a token the same K/V whatever shares its step).
 * SHA-256 makes an accidental collision, which would silently serve wrong K/V, out of reach.
 */
export type BlockHash = string;

/** The "parent" of a sequence's first block. */
export const ROOT_HASH: BlockHash = '';

/** Hash of the block holding tokens[from, to), whose predecessor hashes to `parent`. */
export function chainHash(parent: BlockHash, tokens: ArrayLike<number>, from: number, to: number): BlockHash {
  const ids = new Int32Array(to - from);
  for (let i = from; i < to; i++) ids[i - from] = tokens[i];
  return createHash('sha256').update(parent).update(new Uint8Array(ids.buffer)).digest('base64url');
}

/**
 * The prefix cache's index: which block holds the contents of each hash, and which of those
 * blocks nobody references any more ("idle"), in least-recently-released order. Guarantees:
 * a hash names at most one block and a block carries at most one hash; an idle block keeps its
 * contents until evictOldest() hands it back, so a later request can still reuse it.
 */
export class PrefixCache {
  private readonly byHash = new Map<BlockHash, number>();
  private readonly hashOfBlock = new Map<number, BlockHash>();
  // Insertion order is LRU order: release appends, revive removes.
  private readonly idleBlocks = new Set<number>();

  get idleCount(): number {
    return this.idleBlocks.size;
  }

  lookup(hash: BlockHash): number | undefined {
    return this.byHash.get(hash);
  }

  hashOf(block: number): BlockHash | undefined {
    return this.hashOfBlock.get(block);
  }

  /**
   * Records that `block` holds the contents `hash`. When another block already does, nothing
   * changes and this block stays private (two sequences computed the same prefix at once).
   */
  register(block: number, hash: BlockHash): void {
    if (this.byHash.has(hash) || this.hashOfBlock.has(block)) return;
    this.byHash.set(hash, block);
    this.hashOfBlock.set(block, hash);
  }

  /** A cached block lost its last reference: it becomes the most recently released idle block. */
  release(block: number): void {
    this.idleBlocks.add(block);
  }

  /** An idle block is referenced again. */
  revive(block: number): void {
    this.idleBlocks.delete(block);
  }

  isIdle(block: number): boolean {
    return this.idleBlocks.has(block);
  }

  /** Drops the least recently released idle block from the cache and returns its id. */
  evictOldest(): number | undefined {
    const it = this.idleBlocks.values().next();
    if (it.done) return undefined;
    const block = it.value;
    this.idleBlocks.delete(block);
    this.byHash.delete(this.hashOfBlock.get(block)!);
    this.hashOfBlock.delete(block);
    return block;
  }

  /** Snapshot for invariant checks. */
  inspect(): { byHash: ReadonlyMap<BlockHash, number>; hashOf: ReadonlyMap<number, BlockHash>; idle: number[] } {
    return { byHash: new Map(this.byHash), hashOf: new Map(this.hashOfBlock), idle: [...this.idleBlocks] };
  }
}
