import { WeftError } from '../errors.js';
import type { BlockManager } from './block-manager.js';

/**
 * Checks everything BlockManager promises about its state and throws E_INTERNAL naming the first
 * violation: each block is exactly one of free / idle / referenced; ref counts equal the table
 * entries naming each block; idle blocks are cached and free ones are not; the cache's two maps
 * agree; a cached block sits only where a table's own chained hash says it belongs. Costs
 * O(blocks + table entries): meant for tests, which call it after every operation.
 */
export function checkBlockInvariants(bm: BlockManager): void {
  const s = bm.inspect();
  const bad = (msg: string): never => {
    throw new WeftError('E_INTERNAL', `block manager invariant violated: ${msg}`);
  };
  const counted = new Int32Array(s.nBlocks);
  for (const [seq, t] of s.tables) {
    if (t.hashes.length > t.blocks.length) bad(`sequence ${seq} has ${t.hashes.length} hashes for ${t.blocks.length} blocks`);
    const seen = new Set<number>();
    t.blocks.forEach((b, j) => {
      if (!Number.isInteger(b) || b < 0 || b >= s.nBlocks) bad(`sequence ${seq} maps block ${j} to id ${b}`);
      if (seen.has(b)) bad(`sequence ${seq} maps two logical blocks to block ${b}`);
      seen.add(b);
      counted[b]++;
      const h = s.hashOf.get(b);
      if (h !== undefined && t.hashes[j] !== h) bad(`cached block ${b} is logical block ${j} of sequence ${seq}, whose contents hash differently`);
    });
  }
  const state = new Uint8Array(s.nBlocks);  // 1 free, 2 idle
  for (const b of s.free) {
    if (state[b]) bad(`block ${b} is listed free twice`);
    state[b] = 1;
    if (s.hashOf.has(b)) bad(`free block ${b} is still in the prefix cache`);
  }
  for (const b of s.idle) {
    if (state[b]) bad(`block ${b} is both ${state[b] === 1 ? 'free' : 'idle'} and idle`);
    state[b] = 2;
    if (!s.hashOf.has(b)) bad(`idle block ${b} is not in the prefix cache`);
  }
  for (let b = 0; b < s.nBlocks; b++) {
    if (s.refs[b] !== counted[b]) bad(`block ${b} has ref count ${s.refs[b]} but ${counted[b]} table references`);
    if (state[b] && counted[b]) bad(`block ${b} is ${state[b] === 1 ? 'free' : 'idle'} and referenced`);
    if (!state[b] && !counted[b]) bad(`block ${b} is neither free, idle nor referenced (leaked)`);
  }
  if (s.byHash.size !== s.hashOf.size) bad(`prefix cache maps ${s.byHash.size} hashes but ${s.hashOf.size} blocks`);
  for (const [h, b] of s.byHash) if (s.hashOf.get(b) !== h) bad(`prefix cache maps a hash to block ${b}, which carries another`);
}
