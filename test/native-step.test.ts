// The step protocol at the N-API boundary: block copies (copy-on-write's primitive) and
// malformed batches.
import { describe, expect, it } from 'vitest';
import { loadNativeModel, SAMPLING_FIELDS, type StepBatch } from '../lib/native.js';
import { HAVE_REFDATA, refPath } from './refdata.js';

const greedy = (n: number) => new Float64Array(n * SAMPLING_FIELDS).map((_, i) => (i % SAMPLING_FIELDS === 2 ? 1 : 0));

describe.skipIf(!HAVE_REFDATA)('native step', () => {
  it('a sequence continues identically from a copied block', async () => {
    const m = await loadNativeModel(refPath('models', 'stories260Ktok512.gguf'), { blockSize: 4, kvCacheTokens: 64, kvType: 'f32' });
    try {
      const prompt = [1, 403, 407, 261, 378, 300];  // 6 tokens: block 0 full, block 1 half full
      const pre = (table: number[]): StepBatch => ({
        tokens: Int32Array.from(prompt), positions: Int32Array.from(prompt, (_, i) => i), seqIdx: new Int32Array(6),
        blockTables: Int32Array.from(table), maxBlocks: 2, outIdx: Int32Array.of(5), sampling: greedy(1), wantLogits: Uint8Array.of(1),
      });
      await m.step(pre([0, 1]));
      const decode = (table: number[], copies?: number[]): StepBatch => ({
        tokens: Int32Array.of(400), positions: Int32Array.of(6), seqIdx: Int32Array.of(0), blockTables: Int32Array.from(table),
        maxBlocks: 2, outIdx: Int32Array.of(0), sampling: greedy(1), wantLogits: Uint8Array.of(1),
        copies: copies ? Int32Array.from(copies) : undefined,
      });
      // Fork: shares block 0, gets a private copy of the partly filled block 1 as block 5.
      const forked = await m.step(decode([0, 5], [1, 5]));
      const original = await m.step(decode([0, 1]));
      expect(Array.from(forked.logits!)).toEqual(Array.from(original.logits!));
      await expect(m.step(decode([0, 1], [1, 1]))).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /copy/ });
    } finally {
      m.dispose();
    }
  });

  it('malformed batches are E_INVALID_ARGUMENT, one step at a time is E_BUSY, and dispose is final', async () => {
    const m = await loadNativeModel(refPath('models', 'stories260Ktok512.gguf'), { kvCacheTokens: 64 });
    const ok: StepBatch = { tokens: Int32Array.of(1), positions: Int32Array.of(0), seqIdx: Int32Array.of(0), blockTables: Int32Array.of(0),
      maxBlocks: 1, outIdx: Int32Array.of(0), sampling: greedy(1) };
    await expect(m.step({ ...ok, tokens: Int32Array.of(512) })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /vocabulary/ });
    await expect(m.step({ ...ok, blockTables: Int32Array.of(99) })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /block/ });
    await expect(m.step({ ...ok, positions: Int32Array.of(40) })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    expect(() => m.step({ ...ok, tokens: [1] as unknown as Int32Array })).toThrow(/Int32Array/);
    const first = m.step(ok);
    expect(() => m.step(ok)).toThrow(expect.objectContaining({ code: 'E_BUSY' }));
    await first;
    m.dispose();
    m.dispose();
    expect(() => m.step(ok)).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
  });
});
