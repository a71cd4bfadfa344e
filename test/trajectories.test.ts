// Parallel trajectories and the prefix cache through the public API, on TinyStories 260K.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, WeftError, type Model, type TokenEvent } from '../lib/index.js';
import { HAVE_REFDATA, refPath } from './refdata.js';

const free = { temperature: 1, topK: 0, topP: 1, minP: 0 };

describe.skipIf(!HAVE_REFDATA)('generate() with n trajectories', () => {
  let model: Model;
  beforeAll(async () => { model = await loadModel(refPath('models', 'stories260Ktok512.gguf'), { kvCacheTokens: 4096, threads: 2 }); });
  afterAll(async () => { await model?.dispose(); });

  it('each trajectory is what its seed gives alone; events say which trajectory they belong to', async () => {
    const gen = model.generate('Once upon a time, there was a', { ...free, n: 4, seed: 20, maxTokens: 40, topLogprobs: 2 });
    const events: TokenEvent[] = [];
    for await (const ev of gen) events.push(ev);
    const r = await gen.result;
    expect(r.trajectories).toHaveLength(4);
    const alone = await Promise.all([0, 1, 2, 3].map((i) => model.generate('Once upon a time, there was a', { ...free, seed: 20 + i, maxTokens: 40 }).result));
    r.trajectories.forEach((t, i) => {
      expect(t.tokens).toEqual(alone[i].tokens);
      expect(t.text).toBe(alone[i].text);
      expect(t.finishReason).toBe(alone[i].finishReason);
      const mine = events.filter((e) => e.trajectory === i);
      expect(mine.map((e) => e.token)).toEqual(t.tokens);
      expect(mine.map((e) => e.index)).toEqual(t.tokens.map((_, k) => k));
      expect(mine.map((e) => e.text).join('')).toBe(t.text);
      expect(mine.every((e) => e.topLogprobs?.length === 2)).toBe(true);
      expect(t.meanConfidence).toBeCloseTo(mine.reduce((a, e) => a + e.confidence, 0) / mine.length, 5);
      expect(t.lowestConfidence).toBe(Math.min(...mine.map((e) => e.confidence)));
    });
    expect(new Set(r.trajectories.map((t) => t.text)).size).toBeGreaterThan(1);  // seeds really differ
    expect(r.text).toBe(r.trajectories[0].text);
    expect(r.usage.promptTokens).toBe(model.tokenize('Once upon a time, there was a').length);
    expect(r.usage.completionTokens).toBe(r.trajectories.reduce((n, t) => n + t.tokens.length, 0));
    expect(model.stats().blocksUsed).toBe(0);
  });

  it('stop strings end each trajectory on its own', async () => {
    const opts = { ...free, seed: 3, maxTokens: 60, stop: ['.', '!'] };
    const r = await model.generate('Lily and Ben', { ...opts, n: 6 }).result;
    for (const [i, t] of r.trajectories.entries()) {
      const alone = await model.generate('Lily and Ben', { ...opts, seed: 3 + i }).result;
      expect(t.text).toBe(alone.text);
      expect(t.finishReason).toBe(alone.finishReason);
      expect(t.text).not.toMatch(/[.!]/);
    }
    expect(r.trajectories.some((t) => t.finishReason === 'stop')).toBe(true);
  });

  it('a prompt shorter than n still gives every trajectory its own seed', async () => {
    const r = await model.generate([1, 403], { ...free, n: 5, seed: 9, maxTokens: 12 }).result;
    for (const [i, t] of r.trajectories.entries()) {
      expect(t.tokens).toEqual((await model.generate([1, 403], { ...free, seed: 9 + i, maxTokens: 12 }).result).tokens);
    }
  });

  it('a second request sharing a long system prompt reuses its blocks, with identical output', async () => {
    const system = 'Once upon a time, there was a little girl named Mia. Mia had a small red ball. She liked to play with her ball in the park. One day, the ball rolled under a big tree.';
    const sysTokens = model.tokenize(system).length;
    expect(sysTokens).toBeGreaterThan(32);
    const a = await model.generate(`${system} Mia was`, { ...free, seed: 1, maxTokens: 20 }).result;
    expect(a.usage.cachedPromptTokens).toBe(0);
    const before = model.stats();
    const b = await model.generate(`${system} Sam said`, { ...free, seed: 2, maxTokens: 20 }).result;
    // Every full 16-token block of the shared part is reused (the last one may hold the suffix).
    expect(b.usage.cachedPromptTokens).toBeGreaterThanOrEqual(Math.floor((sysTokens - 1) / 16) * 16);
    expect(b.usage.cachedPromptTokens % 16).toBe(0);
    const after = model.stats();
    expect(after.cachedPromptTokens - before.cachedPromptTokens).toBe(b.usage.cachedPromptTokens);
    expect(after.prefixCacheHitRate).toBeGreaterThan(0);
    // The same request on a model with a cold cache gives the same tokens.
    const cold = await loadModel(refPath('models', 'stories260Ktok512.gguf'), { kvCacheTokens: 4096, threads: 2 });
    try {
      const c = await cold.generate(`${system} Sam said`, { ...free, seed: 2, maxTokens: 20 }).result;
      expect(c.usage.cachedPromptTokens).toBe(0);
      expect(c.tokens).toEqual(b.tokens);
    } finally {
      await cold.dispose();
    }
  });

  it('stats() reports the pool, the queue and step timings', async () => {
    const gens = Array.from({ length: 3 }, (_, i) => model.generate('The cat', { seed: i, maxTokens: 8 }));
    const st = model.stats();
    expect(st.waiting).toBe(3);  // queued, not yet stepped
    await Promise.all(gens.map((g) => g.result));
    const s = model.stats();
    expect(s.blocksTotal).toBe(4096 / 16);
    expect(s.blocksUsed).toBe(0);
    expect(s.blocksCached).toBeGreaterThan(0);
    expect(s.steps).toBeGreaterThan(0);
    expect(s.meanStepMs).toBeGreaterThan(0);
    expect(s).toMatchObject({ waiting: 0, running: 0, preemptions: 0 });
  });

  it('bad n and priority are E_INVALID_ARGUMENT', () => {
    for (const [o, re] of [[{ n: 0 }, /\bn\b/], [{ n: 1.5 }, /\bn\b/], [{ n: 5000 }, /\bn\b/], [{ priority: 0.5 }, /priority/], [{ seed: Number.MAX_SAFE_INTEGER, n: 2 }, /seed/]] as const) {
      try {
        model.generate('x', o);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(WeftError);
        expect((e as WeftError).code).toBe('E_INVALID_ARGUMENT');
        expect((e as WeftError).message).toMatch(re);
      }
    }
  });
});
