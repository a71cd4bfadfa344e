// Decode tokens of sequences forked from one prompt read the blocks they share once for all of
// them (the native attention's shared segments). A row's arithmetic must not change: each
// sequence's logits are the same bits in a batch of forks as in a step of its own.
import { describe, expect, it } from 'vitest';
import { loadNativeModel, type NativeModel, type StepBatch } from '../lib/native.js';
import { HAVE_REFDATA, refPath } from './refdata.js';
import { greedy } from './helpers/step-batch.js';

const BS = 16;     // block size
const MAXB = 64;   // block table row length (1,024 positions)

function ids(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 3 + (s % 500);
  });
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

/** Writes tokens at positions from..from+n-1 of the sequence with this block table. */
async function prefill(m: NativeModel, table: number[], from: number, tokens: number[]) {
  for (let at = 0; at < tokens.length; at += 256) {
    const chunk = tokens.slice(at, at + 256);
    await m.step({
      tokens: Int32Array.from(chunk), positions: Int32Array.from(chunk, (_, i) => from + at + i),
      seqIdx: new Int32Array(chunk.length), blockTables: Int32Array.from({ length: MAXB }, (_, i) => table[i] ?? 0),
      maxBlocks: MAXB, outIdx: Int32Array.of(chunk.length - 1), sampling: greedy(1),
    });
  }
}

/** One decode token per sequence; the logits of each, in order. */
async function decode(m: NativeModel, seqs: { table: number[]; token: number; pos: number }[], copies?: number[]) {
  const batch: StepBatch = {
    tokens: Int32Array.from(seqs, (s) => s.token), positions: Int32Array.from(seqs, (s) => s.pos),
    seqIdx: Int32Array.from(seqs, (_, i) => i),
    blockTables: Int32Array.from(seqs.flatMap((s) => Array.from({ length: MAXB }, (_, i) => s.table[i] ?? 0))),
    maxBlocks: MAXB, outIdx: Int32Array.from(seqs, (_, i) => i), sampling: greedy(seqs.length),
    wantLogits: new Uint8Array(seqs.length).fill(1), copies: copies ? Int32Array.from(copies) : undefined,
  };
  const r = await m.step(batch);
  const v = r.logits!.length / seqs.length;
  return seqs.map((_, i) => Buffer.from(r.logits!.buffer, r.logits!.byteOffset + i * v * 4, v * 4));
}

describe.skipIf(!HAVE_REFDATA)('shared prefix attention', () => {
  // q8_0 needs head sizes that are multiples of 32: llama-gqa-k's (GQA 8/2) rather than stories260K's 8.
  const cases = [['f16', 2, 'stories260Ktok512'], ['f32', 3, 'stories260Ktok512'], ['f16', 1, 'stories260Ktok512'], ['q8_0', 2, 'llama-gqa-k-q8_0']] as const;
  for (const [kvType, threads, model] of cases) {
    it(`forks of a prompt give each sequence its own logits' bits (${model}, ${kvType} cache, ${threads} threads)`, async () => {
      const m = await loadNativeModel(refPath('models', `${model}.gguf`), { blockSize: BS, kvCacheTokens: 4096, kvType, threads });
      try {
        // An 800-token prompt in blocks 0..49; a cousin that shares its first 512 positions
        // (blocks 0..31) and then has its own 288 (blocks 100..117).
        const prompt = ids(800, 1);
        await prefill(m, range(0, 50), 0, prompt);
        const cousin = [...range(0, 32), ...range(100, 118)];
        await prefill(m, cousin, 512, ids(288, 2));
        // Nine forks of the prompt at position 800 (block 50 onwards is each one's own), the
        // cousin at 800 too, and a tenth fork two tokens further on: segments 0 and 1
        // (positions 0..511) are shared by all eleven, segment 2 (512..767) by the ten forks.
        const forks = range(0, 10).map((i) => ({ table: [...range(0, 50), 200 + 2 * i, 201 + 2 * i], token: 10 + i, pos: 800 }));
        await prefill(m, forks[9].table, 800, [7, 8]);
        forks[9].pos = 802;
        const seqs = [...forks, { table: [...cousin, 150], token: 9, pos: 800 }];
        const together = await decode(m, seqs);
        for (let i = 0; i < seqs.length; i++) {
          const [alone] = await decode(m, [seqs[i]]);
          expect(alone.equals(together[i]), `sequence ${i}`).toBe(true);
        }
        // Not vacuous: the forks' tokens differ, and so do their logits.
        expect(together[0].equals(together[1])).toBe(false);
      } finally {
        m.dispose();
      }
    });
  }
});
