import { WeftError } from '../errors.js';

/**
 * Hands out ids of the native KV pool's blocks. Guarantees: an id is either free or held by
 * exactly one caller; allocate() is all-or-nothing; releasing a block that is not held throws
 * (a double free is a bug upstream, and silently accepting it would hand one block to two
 * sequences). Ref counts, copy-on-write and the prefix cache come with the block manager.
 */
export class BlockAllocator {
  private readonly freeList: number[];
  private readonly held: Uint8Array;

  constructor(readonly nBlocks: number, readonly blockSize: number) {
    // Popping from the end hands out low ids first, which keeps tests readable.
    this.freeList = Array.from({ length: nBlocks }, (_, i) => nBlocks - 1 - i);
    this.held = new Uint8Array(nBlocks);
  }

  get free(): number {
    return this.freeList.length;
  }

  get used(): number {
    return this.nBlocks - this.freeList.length;
  }

  /** Blocks needed to hold n tokens. */
  blocksFor(nTokens: number): number {
    return Math.ceil(nTokens / this.blockSize);
  }

  /** n block ids, or null when fewer than n are free (nothing is taken then). */
  allocate(n: number): number[] | null {
    if (n > this.freeList.length) return null;
    const out = this.freeList.splice(this.freeList.length - n, n).reverse();
    for (const id of out) this.held[id] = 1;
    return out;
  }

  release(ids: readonly number[]): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.nBlocks || this.held[id] !== 1) {
        throw new WeftError('E_INTERNAL', `block ${id} released but not held`);
      }
      this.held[id] = 0;
      this.freeList.push(id);
    }
  }
}
