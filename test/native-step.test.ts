// The step protocol at the N-API boundary: block copies (copy-on-write's primitive) and
// malformed batches.
import { describe, expect, it } from 'vitest';
import { loadNativeModel, type StepBatch } from '../lib/native.js';
import { HAVE_REFDATA, refPath } from './refdata.js';
import { greedy } from './helpers/step-batch.js';

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

  it('runAhead runs several decode steps in one call, giving the tokens of single steps', async () => {
    const m = await loadNativeModel(refPath('models', 'stories260Ktok512.gguf'), { blockSize: 4, kvCacheTokens: 128, kvType: 'f32' });
    try {
      const prompt = [1, 403, 407, 261, 378, 300];
      // Two sequences over the same prompt, one greedy and one at temperature 1 (seeded): rows
      // 0 and 1 of each step. Tables: 4 blocks each, the "single" copy in 0..7, the "ahead" one in 8..15.
      const sampling = (counter: number) => Float64Array.of(0, 0, 1, 0, 0, counter, 1, 0, 1, 0, 7, counter);
      const prefill = (base: number) => m.step({
        tokens: Int32Array.from([...prompt, ...prompt]), positions: Int32Array.from([...prompt, ...prompt], (_, i) => i % 6),
        seqIdx: Int32Array.from({ length: 12 }, (_, i) => (i < 6 ? 0 : 1)), blockTables: Int32Array.from({ length: 8 }, (_, i) => base + i),
        maxBlocks: 4, outIdx: Int32Array.of(5, 11), sampling: sampling(0),
      });
      const decode = (base: number, tokens: number[], pos: number, counter: number, runAhead?: number) => m.step({
        tokens: Int32Array.from(tokens), positions: Int32Array.of(pos, pos), seqIdx: Int32Array.of(0, 1),
        blockTables: Int32Array.from({ length: 8 }, (_, i) => base + i), maxBlocks: 4, outIdx: Int32Array.of(0, 1),
        sampling: sampling(counter), topN: 3, runAhead,
      });
      const first = await prefill(0);
      expect(first.steps).toBe(1);
      const single: { tokens: number[]; logprobs: number[]; conf: number[]; top: number[] } = { tokens: [], logprobs: [], conf: [], top: [] };
      let next = Array.from(first.tokens);
      for (let j = 0; j < 5; j++) {
        const r = await decode(0, next, 6 + j, 1 + j);
        next = Array.from(r.tokens);
        single.tokens.push(...r.tokens);
        single.logprobs.push(...r.logprobs);
        single.conf.push(...r.confidences);
        single.top.push(...r.topIds!);
      }
      expect(Array.from((await prefill(8)).tokens)).toEqual(Array.from(first.tokens));
      const ahead = await decode(8, Array.from(first.tokens), 6, 1, 5);
      expect(ahead.steps).toBe(5);
      expect(Array.from(ahead.tokens)).toEqual(single.tokens);
      expect(Array.from(ahead.logprobs)).toEqual(single.logprobs);
      expect(Array.from(ahead.confidences)).toEqual(single.conf);
      expect(Array.from(ahead.topIds!)).toEqual(single.top);
      // The greedy and the sampled rows went different ways, so both streams were followed.
      expect(single.tokens.filter((_, i) => i % 2 === 0)).not.toEqual(single.tokens.filter((_, i) => i % 2 === 1));

      // Positions past the tables (16 slots per sequence) fail the call, whichever step reaches them.
      await expect(decode(8, [300, 300], 14, 1, 3)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /block/ });
      const bad = { tokens: Int32Array.of(300, 300), positions: Int32Array.of(6, 6), seqIdx: Int32Array.of(0, 1), blockTables: Int32Array.from({ length: 8 }, (_, i) => i),
        maxBlocks: 4, outIdx: Int32Array.of(1, 0), sampling: sampling(1), runAhead: 2 };
      expect(() => m.step(bad)).toThrow(/runAhead/);
      expect(() => m.step({ ...bad, outIdx: Int32Array.of(0, 1), wantLogits: Uint8Array.of(1, 0) })).toThrow(/runAhead/);
      expect(() => m.step({ ...bad, outIdx: Int32Array.of(0, 1), runAhead: 65 })).toThrow(/runAhead/);
    } finally {
      m.dispose();
    }
  });

  it('interrupt() ends a run-ahead call after the step in progress; one made before the call does not count', async () => {
    // A model whose 64 steps take ~50 ms on one thread, so that the interrupt() right after the
    // call is made lands while it runs even if this thread waits a few ms for a core.
    const m = await loadNativeModel(refPath('models', 'llama-gqa-k-q8_0.gguf'), { blockSize: 16, kvCacheTokens: 1024, kvType: 'f32', threads: 1 });
    try {
      const prompt = [1, 403, 407, 261, 378, 300];
      const run = async (base: number, runAhead: number, interrupt: boolean) => {
        const tables = Int32Array.from({ length: 8 }, (_, i) => base + i);  // 128 positions
        const pre = await m.step({ tokens: Int32Array.from(prompt), positions: Int32Array.from(prompt, (_, i) => i), seqIdx: new Int32Array(6),
          blockTables: tables, maxBlocks: 8, outIdx: Int32Array.of(5), sampling: greedy(1) });
        m.interrupt();  // before the call: ignored
        const call = m.step({ tokens: pre.tokens, positions: Int32Array.of(6), seqIdx: Int32Array.of(0), blockTables: tables, maxBlocks: 8,
          outIdx: Int32Array.of(0), sampling: greedy(1), runAhead });
        if (interrupt) m.interrupt();
        return call;
      };
      const whole = await run(0, 64, false);
      expect(whole.steps).toBe(64);
      const cut = await run(8, 64, true);
      expect(cut.steps).toBeGreaterThanOrEqual(1);
      expect(cut.steps).toBeLessThan(64);
      expect(Array.from(cut.tokens)).toEqual(Array.from(whole.tokens).slice(0, cut.steps));
    } finally {
      m.dispose();
    }
  });
});
