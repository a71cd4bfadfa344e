// The public generation API on the real TinyStories 260K model: streaming, stop strings,
// seeds, concurrency, aborts, dispose and option errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, WeftError, type Model, type TokenEvent } from '../lib/index.js';
import { HAVE_REFDATA, refJson, refPath } from './refdata.js';

describe.skipIf(!HAVE_REFDATA)('generate()', () => {
  let model: Model;
  beforeAll(async () => { model = await loadModel(refPath('models', 'stories260Ktok512.gguf'), { kvCacheTokens: 4096, threads: 2 }); });
  afterAll(async () => { await model?.dispose(); });

  it('streams events whose texts and tokens add up to the result', async () => {
    const gen = model.generate('Once upon a time', { temperature: 0.9, seed: 7, maxTokens: 40, topLogprobs: 3 });
    const events: TokenEvent[] = [];
    for await (const ev of gen) events.push(ev);
    const r = await gen.result;
    expect(events.map((e) => e.token)).toEqual(r.tokens);
    expect(events.map((e) => e.text).join('')).toBe(r.text);
    expect(events.map((e) => e.index)).toEqual(r.tokens.map((_, i) => i));
    for (const e of events) {
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.confidence).toBeGreaterThan(0);
      expect(e.topLogprobs).toHaveLength(3);
      expect(e.topLogprobs![0].logprob).toBeGreaterThanOrEqual(e.topLogprobs![2].logprob);
      expect(e.logprob).toBeLessThanOrEqual(e.topLogprobs![0].logprob + 1e-6);
    }
    expect(r.usage).toEqual({ promptTokens: 5, cachedPromptTokens: 0, completionTokens: r.tokens.length, totalTokens: 5 + r.tokens.length });
    expect(['length', 'eos']).toContain(r.finishReason);
    expect(r.lowestConfidence).toBeLessThanOrEqual(r.meanConfidence);
  });

  it('greedy decoding reproduces llama.cpp and a stop string cuts the text before it', async () => {
    const ref = refJson('stories260K', 'greedy_64.json').results[0];
    const full = await model.generate('Once upon a time', { temperature: 0, maxTokens: 64 }).result;
    expect(full.text).toBe(ref.continuation_text);
    expect(full.finishReason).toBe('length');
    const cut = model.generate('Once upon a time', { temperature: 0, maxTokens: 64, stop: [' named', 'zzz'] });
    let streamed = '';
    for await (const ev of cut) streamed += ev.text;
    const r = await cut.result;
    const at = ref.continuation_text.indexOf(' named');
    expect(r.text).toBe(ref.continuation_text.slice(0, at));
    expect(streamed).toBe(r.text);
    expect(r.finishReason).toBe('stop');
  });

  it('a seeded trajectory gives the same tokens alone and inside a crowded batch', async () => {
    const opts = { temperature: 1, topK: 0, topP: 1, minP: 0, maxTokens: 48 };
    const alone = await model.generate('The little dog', { ...opts, seed: 42 }).result;
    const again = await model.generate('The little dog', { ...opts, seed: 42 }).result;
    expect(again.tokens).toEqual(alone.tokens);
    const crowd = [
      model.generate('Lily and Ben went to the park', { ...opts, seed: 1 }),
      model.generate('The little dog', { ...opts, seed: 42 }),
      model.generate('Joe loves writing stories', { ...opts, seed: 3, maxTokens: 20 }),
      model.generate('The little dog', { ...opts, seed: 43 }),
    ];
    const results = await Promise.all(crowd.map((g) => g.result));
    expect(results[1].tokens).toEqual(alone.tokens);
    expect(results[3].tokens).not.toEqual(alone.tokens);
    expect(model.stats().blocksUsed).toBe(0);
  });

  it('running decode steps ahead changes how often native is called, not what is generated', async () => {
    const single = await loadModel(refPath('models', 'stories260Ktok512.gguf'), { kvCacheTokens: 4096, threads: 2, runAhead: 1 });
    try {
      const opts = { temperature: 1, topK: 0, topP: 1, minP: 0, maxTokens: 40, topLogprobs: 2 };
      const crowd = (m: Model) => Promise.all([
        m.generate('Lily and Ben went to the park', { ...opts, seed: 1, n: 3 }),
        m.generate('The little dog', { ...opts, seed: 42, stop: [' the'] }),
        m.generate('Joe loves writing stories', { ...opts, seed: 3, maxTokens: 9 }),
      ].map(async (g) => {
        const events: unknown[] = [];
        for await (const ev of g) events.push(ev);
        const { elapsedMs: _, ...result } = await g.result;
        return { result, events };
      }));
      const before = { ahead: model.stats(), single: single.stats() };
      const [ahead, one] = [await crowd(model), await crowd(single)];
      expect(ahead).toEqual(one);
      expect(ahead[1].result.finishReason).toBe('stop');  // ' the' came up and cut a trajectory
      const delta = (m: Model, b: ReturnType<Model['stats']>) => ({ steps: m.stats().steps - b.steps, calls: m.stats().calls - b.calls });
      const [da, ds] = [delta(model, before.ahead), delta(single, before.single)];
      expect(ds.calls).toBe(ds.steps);
      expect(da.calls).toBeLessThan(da.steps / 2);
      expect(model.stats().blocksUsed).toBe(0);
    } finally {
      await single.dispose();
    }
  });

  it('abort stops a generation between steps and frees its blocks', async () => {
    const ac = new AbortController();
    const gen = model.generate('Once upon a time', { maxTokens: 2000, signal: ac.signal, seed: 1 });
    let n = 0;
    await expect((async () => {
      for await (const _ of gen) if (++n === 5) ac.abort();
    })()).rejects.toMatchObject({ code: 'E_ABORTED' });
    await expect(gen.result).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(n).toBe(5);  // nothing after the abort, not even tokens a run-ahead call had computed
    expect(model.stats().blocksUsed).toBe(0);
    const pre = new AbortController();
    pre.abort();
    await expect(model.generate('x', { signal: pre.signal }).result).rejects.toMatchObject({ code: 'E_ABORTED' });
  });

  it('a request larger than the whole KV cache is rejected up front', async () => {
    await expect(model.generate('Once upon a time', { maxTokens: 5000 }).result).rejects.toMatchObject({ code: 'E_KV_EXHAUSTED', message: /kvCacheTokens/ });
    // Requests that fit but not all at once wait their turn rather than fail.
    const many = Array.from({ length: 6 }, (_, i) => model.generate('The little dog', { maxTokens: 1000, seed: i, temperature: 0 }).result);
    const rs = await Promise.all(many);
    for (const r of rs) expect(r.tokens).toEqual(rs[0].tokens);
    expect(model.stats().blocksUsed).toBe(0);
  });

  it('impossible options are E_INVALID_ARGUMENT with a precise message', () => {
    const bad = (f: () => unknown, re: RegExp) => {
      try {
        f();
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(WeftError);
        expect((e as WeftError).code).toBe('E_INVALID_ARGUMENT');
        expect((e as WeftError).message).toMatch(re);
      }
    };
    bad(() => model.generate('x', { temperature: -1 }), /temperature/);
    bad(() => model.generate('x', { topP: 0 }), /topP/);
    bad(() => model.generate('x', { maxTokens: 0 }), /maxTokens/);
    bad(() => model.generate('x', { topK: 1.5 }), /topK/);
    bad(() => model.generate('x', { stop: [''] }), /stop/);
    bad(() => model.generate([1, 99999]), /99999/);
    bad(() => model.generate([]), /empty/);
  });

  it('an impossible runAhead is E_INVALID_ARGUMENT', async () => {
    for (const runAhead of [0, 65, 1.5]) {
      await expect(loadModel(refPath('models', 'stories260Ktok512.gguf'), { runAhead })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /runAhead/ });
    }
  });

  it('a sequence\'s logits are bitwise the same alone and sharing a step with other sequences', async () => {
    const a = model.tokenize('Lily and Ben went to the park. They saw a big tree');
    const alone = await model.evaluate(a, { allLogits: true });
    const [shared] = await Promise.all([
      model.evaluate(a, { allLogits: true }),
      model.evaluate(model.tokenize('Once upon a time'), { allLogits: true }),
      model.generate('The little dog', { maxTokens: 8, seed: 5 }).result,
      model.evaluate(model.tokenize('Joe loves writing stories about a cat and a dog who'), {}),
    ]);
    expect(Buffer.from(shared.buffer).equals(Buffer.from(alone.buffer))).toBe(true);
  });

  it('evaluate() returns the last row or every row of logits', async () => {
    const ids = model.tokenize('Once upon a time');
    const all = await model.evaluate(ids, { allLogits: true });
    const last = await model.evaluate(ids);
    const V = model.info.vocabSize;
    expect(all.length).toBe(ids.length * V);
    expect(Array.from(last)).toEqual(Array.from(all.subarray((ids.length - 1) * V)));
  });

  it('profile() sums each forward phase over the steps since the last call, then resets', async () => {
    await model.profile();
    const gen = model.generate('Once upon a time', { temperature: 0, maxTokens: 12 });
    const p = await model.profile();  // waits for the generation's steps
    const r = await gen.result;
    // One prompt step, then one step per token after the first (EOS may end it early).
    expect(p.steps).toBe(r.tokens.length);
    expect(p.tokens).toBe(model.tokenize('Once upon a time').length + r.tokens.length - 1);
    expect(Object.keys(p.ms)).toEqual(expect.arrayContaining(['qkv', 'attention', 'gate_up', 'down', 'output']));
    for (const ms of Object.values(p.ms)) expect(ms).toBeGreaterThanOrEqual(0);
    expect(p.ms.output).toBeGreaterThan(0);
    expect((await model.profile()).steps).toBe(0);
  });
});

describe.skipIf(!HAVE_REFDATA)('lifetimes', () => {
  it('dispose() fails what is in flight with E_DISPOSED, is idempotent, and later calls throw', async () => {
    const m = await loadModel(refPath('models', 'stories260Ktok512.gguf'), { kvCacheTokens: 4096 });
    const gen = m.generate('Once upon a time', { maxTokens: 3000, seed: 1 });
    const first = gen[Symbol.asyncIterator]();
    await first.next();
    await Promise.all([m.dispose(), m.dispose()]);
    await expect(gen.result).rejects.toMatchObject({ code: 'E_DISPOSED' });
    expect(() => m.generate('x')).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
    expect(() => m.tokenize('x')).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
    await m[Symbol.asyncDispose]();
  });

  it('the event loop keeps running while a long prompt is evaluated', async () => {
    const m = await loadModel(refPath('models', 'llama-gqa-k-q8_0.gguf'), { kvCacheTokens: 2048, stepTokens: 2048, threads: 2 });
    try {
      const ids = Array.from({ length: 2000 }, (_, i) => 100 + ((i * 7919) % 30000));
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const before = ticks;
      const t0 = performance.now();
      await m.evaluate(ids);
      const elapsed = performance.now() - t0;
      clearInterval(timer);
      // The step ran on a worker thread: the 1 ms timer fired throughout it.
      expect(ticks - before).toBeGreaterThan(Math.min(20, elapsed / 10));
    } finally {
      await m.dispose();
    }
  });
});
