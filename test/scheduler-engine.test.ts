// The scheduler and engine over a fake native model (test/fake-native.ts) whose tokens depend on
// exactly what each sequence's block table lets it read: continuous batching, the step token
// budget, chunked prefill, preemption, priority, forks and the prefix cache, without a model.
import { describe, expect, it } from 'vitest';
import { BlockManager } from '../lib/kv/block-manager.js';
import { checkBlockInvariants } from '../lib/kv/invariants.js';
import { Engine } from '../lib/scheduler/engine.js';
import type { RequestEnd } from '../lib/scheduler/sequence.js';
import { FAKE_EOG, FakeNative, reference } from './fake-native.js';

interface Setup { nBlocks: number; blockSize: number; stepTokens: number; chunkedPrefill?: boolean; runAhead?: number }

function setup(s: Setup) {
  const fake = new FakeNative(s.nBlocks, s.blockSize);
  const bm = new BlockManager(s.nBlocks, s.blockSize);
  // Every step first checks the block manager's invariants.
  const native = { ...fake, info: () => fake.info(), metadata: () => fake.metadata(), dispose: () => {}, profile: () => fake.profile(), interrupt: () => fake.interrupt(),
    step: (b: Parameters<FakeNative['step']>[0]) => { checkBlockInvariants(bm); return fake.step(b); } };
  const engine = new Engine(native, bm, { stepTokens: s.stepTokens, chunkedPrefill: s.chunkedPrefill, runAhead: s.runAhead, isEog: (t) => t === FAKE_EOG });
  return { fake, bm, engine };
}

interface Run {
  tokens: number[][];
  /** Steps taken when each token arrived (the step that produced it is stepAt - 1). */
  stepAt: number[][];
  done: Promise<RequestEnd>;
}

function submit(e: ReturnType<typeof setup>, prompt: number[], o: { maxTokens: number; seed: number; n?: number; priority?: number; signal?: AbortSignal; onToken?: () => void; stopAfter?: number }): Run {
  const n = o.n ?? 1;
  const run: Run = { tokens: Array.from({ length: n }, () => []), stepAt: Array.from({ length: n }, () => []), done: null! };
  run.done = e.engine.submit({
    prompt: Int32Array.from(prompt), maxTokens: o.maxTokens, n, priority: o.priority, topN: 0, logits: 'none', signal: o.signal,
    sampling: { temperature: 1, topK: 0, topP: 1, minP: 0, seed: o.seed },
    onToken: (i, t) => {
      run.tokens[i].push(t.token);
      run.stepAt[i].push(e.fake.batches.length);
      o.onToken?.();
      return run.tokens[i].length === o.stopAfter;
    },
  });
  return run;
}

const ids = (n: number, from = 1) => Array.from({ length: n }, (_, i) => 1 + ((from + i * 7) % 63));
const consecutive = (xs: number[]) => xs.every((x, i) => i === 0 || x === xs[i - 1] + 1);

describe('scheduler over a fake model', () => {
  it('a long prompt joins running decodes in budget-sized chunks, never stalling them', async () => {
    const e = setup({ nBlocks: 64, blockSize: 4, stepTokens: 8 });
    // Seeds whose sequences run all 40 tokens (no early end-of-generation), so the budget left
    // for the prompt stays 5 tokens per step.
    const seeds = [9, 10, 11];
    for (const k of seeds) expect(reference(ids(2, k), k, 40)).toHaveLength(40);
    let long: Run | undefined;
    let joinedAt = 0;
    // The long prompt arrives while the step giving the last decoder its second token is applied.
    const join = () => {
      if (long || !decoders.every((d) => d.tokens[0].length >= 2)) return;
      joinedAt = e.fake.batches.length;
      long = submit(e, ids(30, 50), { maxTokens: 5, seed: 9 });
    };
    const decoders = seeds.map((k) => submit(e, ids(2, k), { maxTokens: 40, seed: k, onToken: join }));
    await Promise.all(decoders.map((d) => d.done));
    if (!long) throw new Error('the long request never joined');
    await long.done;
    expect(e.fake.batches.every((b) => b.tokens.length <= 8)).toBe(true);
    // 3 decode tokens + 5-token chunks: the 30-token prompt needs 6 steps, its first token
    // comes from the 6th step after it arrived.
    expect(long.stepAt[0][0] - joinedAt).toBe(6);
    for (const d of decoders) {
      expect(consecutive(d.stepAt[0])).toBe(true);  // no step without a token
    }
    decoders.forEach((d, i) => expect(d.tokens[0]).toEqual(reference(ids(2, seeds[i]), seeds[i], 40)));
    expect(long.tokens[0]).toEqual(reference(ids(30, 50), 9, 5));
    expect(e.bm.usedBlocks).toBe(0);
  });

  it('without chunked prefill the whole prompt lands in one step', async () => {
    const e = setup({ nBlocks: 64, blockSize: 4, stepTokens: 8, chunkedPrefill: false });
    let joined: Run | undefined;
    const d = submit(e, ids(2), { maxTokens: 20, seed: 1, onToken: () => { joined ??= submit(e, ids(30, 50), { maxTokens: 3, seed: 2 }); } });
    await d.done;
    const long = joined!;
    await long.done;
    // 1 decode token + the 30-token prompt, over the budget of 8.
    expect(Math.max(...e.fake.batches.map((b) => b.tokens.length))).toBe(31);
    expect(long.tokens[0]).toEqual(reference(ids(30, 50), 2, 3));
  });

  it('a pool too small for everyone preempts the youngest and still gives every request its own tokens', async () => {
    const e = setup({ nBlocks: 16, blockSize: 4, stepTokens: 64 });
    const prompts = [0, 1, 2, 3, 4, 5].map((k) => ids(6 + k, 10 * k));
    const runs = prompts.map((p, k) => submit(e, p, { maxTokens: 40, seed: 100 + k }));
    await Promise.all(runs.map((r) => r.done));
    runs.forEach((r, k) => expect(r.tokens[0]).toEqual(reference(prompts[k], 100 + k, 40)));
    const st = e.engine.stats();
    expect(st.preemptions).toBeGreaterThan(0);
    expect(st.blocksUsed).toBe(0);
    // The oldest request is never the one preempted: it produced a token at every step.
    expect(consecutive(runs[0].stepAt[0])).toBe(true);
  });

  it('higher priority is admitted first and preempted last; equal priorities stay FIFO', async () => {
    // Each request grows to 11 blocks; the pool holds one at a time.
    const e = setup({ nBlocks: 12, blockSize: 4, stepTokens: 64 });
    const order: string[] = [];
    const go = (name: string, priority: number, seed: number) => {
      const r = submit(e, ids(4, seed), { maxTokens: 40, seed, priority });
      r.done.then(() => order.push(name));
      return r;
    };
    const runs = [go('a', 0, 1), go('b', 0, 2), go('c', 5, 3)];
    await Promise.all(runs.map((r) => r.done));
    expect(order).toEqual(['c', 'a', 'b']);
    runs.forEach((r, k) => expect(r.tokens[0]).toEqual(reference(ids(4, k + 1), k + 1, 40)));
  });

  it('n trajectories share the prompt: one prefill, n sampled rows, copy-on-write of the partial block', async () => {
    const e = setup({ nBlocks: 64, blockSize: 4, stepTokens: 64 });
    const prompt = ids(10);
    const r = submit(e, prompt, { maxTokens: 12, seed: 40, n: 4 });
    const end = await r.done;
    for (let i = 0; i < 4; i++) expect(r.tokens[i]).toEqual(reference(prompt, 40 + i, 12));
    expect(end.ends).toHaveLength(4);
    const [prefill, firstDecode] = e.fake.batches;
    // The prompt is computed once; its last token is sampled 4 times with seeds 40..43.
    expect(prefill.tokens.length).toBe(10);
    expect(Array.from(prefill.outIdx)).toEqual([9, 9, 9, 9]);
    expect([0, 1, 2, 3].map((o) => prefill.sampling[o * 6 + 4])).toEqual([40, 41, 42, 43]);
    // Blocks 0, 1 (full) are shared by all; block 2 (2 of 4 slots filled) is copied for
    // trajectories 0..2 into 3, 4, 5, and trajectory 3 keeps it.
    expect(Array.from(firstDecode.copies!)).toEqual([2, 3, 2, 4, 2, 5]);
    expect(Array.from(firstDecode.blockTables)).toEqual([0, 1, 3, 0, 1, 4, 0, 1, 5, 0, 1, 2]);
    expect(e.bm.usedBlocks).toBe(0);
  });

  it('trajectories that outgrow the pool together are preempted and recomputed, not truncated', async () => {
    // Prompt 10 + 30 tokens = 10 blocks per trajectory alone; 8 trajectories need far more than 16.
    const e = setup({ nBlocks: 16, blockSize: 4, stepTokens: 64 });
    const prompt = ids(10, 5);
    const r = submit(e, prompt, { maxTokens: 30, seed: 70, n: 8 });
    await r.done;
    for (let i = 0; i < 8; i++) expect(r.tokens[i]).toEqual(reference(prompt, 70 + i, 30));
    expect(e.engine.stats().preemptions).toBeGreaterThan(0);
    expect(e.bm.usedBlocks).toBe(0);
  });

  it('trajectories fork one token early when a step cannot sample all of them at the last one', async () => {
    for (const [len, n, stepTokens] of [[3, 8, 64], [10, 4, 2], [1, 3, 64]]) {
      const e = setup({ nBlocks: 64, blockSize: 4, stepTokens });
      const prompt = ids(len, len);
      const r = submit(e, prompt, { maxTokens: 6, seed: 7, n });
      await r.done;
      for (let i = 0; i < n; i++) expect(r.tokens[i]).toEqual(reference(prompt, 7 + i, 6));
      expect(e.fake.batches.every((b) => b.outIdx.length <= b.tokens.length)).toBe(true);
      expect(e.bm.usedBlocks).toBe(0);
    }
  });

  it('a later request reuses cached prompt blocks, alive or idle, and reports them', async () => {
    const e = setup({ nBlocks: 64, blockSize: 4, stepTokens: 64 });
    const system = ids(13, 3);
    const first = submit(e, [...system, 60], { maxTokens: 30, seed: 1 });
    expect((await first.done).cachedPromptTokens).toBe(0);
    // The first request's prompt and generated blocks are idle in the cache now.
    expect(e.bm.cachedBlocks).toBe(Math.floor((14 + 29) / 4));
    const second = submit(e, [...system, 61, 62], { maxTokens: 8, seed: 2 });
    const third = submit(e, [...system, 60, ...first.tokens[0].slice(0, 5)], { maxTokens: 8, seed: 3 });
    const [s2, s3] = await Promise.all([second.done, third.done]);
    expect(s2.cachedPromptTokens).toBe(12);
    expect(s3.cachedPromptTokens).toBe(16);  // prompt + generated blocks of the first request
    expect(second.tokens[0]).toEqual(reference([...system, 61, 62], 2, 8));
    expect(third.tokens[0]).toEqual(reference([...system, 60, ...first.tokens[0].slice(0, 5)], 3, 8));
    const st = e.engine.stats();
    expect(st.cachedPromptTokens).toBe(28);
    expect(st.prefixCacheHitRate).toBeCloseTo(28 / (14 + 15 + 19));
  });

  it.each([1, 4])('aborts at any point free everything (runAhead %i)', async (runAhead) => {
    const e = setup({ nBlocks: 40, blockSize: 4, stepTokens: 16, runAhead });
    let state = 99;
    const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const runs = Array.from({ length: 200 }, (_, k) => {
      const ac = new AbortController();
      const r = submit(e, ids(1 + Math.floor(rand() * 20), k), { maxTokens: 30, seed: k, n: 1 + Math.floor(rand() * 3), signal: ac.signal });
      setTimeout(() => ac.abort(), Math.floor(rand() * 30));
      return r.done.then(() => 'done', (err) => err.code);
    });
    const outcomes = await Promise.all(runs);
    expect(outcomes.filter((o) => o === 'E_ABORTED').length).toBeGreaterThan(20);
    expect(outcomes.every((o) => o === 'done' || o === 'E_ABORTED')).toBe(true);
    checkBlockInvariants(e.bm);
    expect(e.bm.usedBlocks).toBe(0);
    expect(e.engine.stats()).toMatchObject({ waiting: 0, running: 0 });
  });

  it('a request that can never fit is rejected up front with E_KV_EXHAUSTED', async () => {
    const e = setup({ nBlocks: 8, blockSize: 4, stepTokens: 64 });
    await expect(submit(e, ids(10), { maxTokens: 23, seed: 1 }).done).rejects.toMatchObject({ code: 'E_KV_EXHAUSTED' });
    // Exactly the whole pool is fine, alone.
    const r = submit(e, ids(10), { maxTokens: 22, seed: 1 });
    await r.done;
    expect(r.tokens[0]).toEqual(reference(ids(10), 1, 22));
  });
});

describe('run-ahead over a fake model', () => {
  const steps = (e: ReturnType<typeof setup>) => e.fake.batches.map((b) => b.runAhead ?? 1);

  it('decoding sequences run several steps per crossing and still get exactly their own tokens', async () => {
    const e = setup({ nBlocks: 128, blockSize: 4, stepTokens: 64, runAhead: 4 });
    const jobs = [[5, 40, 1], [1, 7, 1], [9, 1, 1], [3, 2, 1], [10, 25, 3], [2, 33, 2]];
    const runs = jobs.map(([len, maxTokens, n], k) => ({ prompt: ids(len, 7 * k), maxTokens, n, seed: 200 + 10 * k }))
      .map((j) => ({ j, r: submit(e, j.prompt, j) }));
    await Promise.all(runs.map(({ r }) => r.done));
    for (const { j, r } of runs) {
      for (let i = 0; i < j.n; i++) expect(r.tokens[i]).toEqual(reference(j.prompt, j.seed + i, j.maxTokens));
    }
    // Some trajectories end on EOG inside a crossing: the tokens after it are dropped.
    expect(runs.some(({ j, r }) => r.tokens.some((t) => t.length < j.maxTokens))).toBe(true);
    expect(Math.max(...steps(e))).toBe(4);
    // A crossing that runs ahead has only decode tokens, one sampled row each, and no copies.
    for (const b of e.fake.batches.filter((x) => (x.runAhead ?? 1) > 1)) {
      expect(Array.from(b.outIdx)).toEqual(Array.from(b.tokens, (_, i) => i));
      expect(b.copies).toBeUndefined();
    }
    const st = e.engine.stats();
    expect(st.steps).toBe(steps(e).reduce((a, x) => a + x, 0));
    expect(st.steps).toBeGreaterThan(e.fake.batches.length);
    expect(st.blocksUsed).toBe(0);
  });

  it('a callback stop inside a crossing drops the later tokens, and a newcomer is admitted at the next crossing', async () => {
    const e = setup({ nBlocks: 128, blockSize: 4, stepTokens: 64, runAhead: 8 });
    let late: Run | undefined;
    let arrivedAt = -1;
    const first = submit(e, ids(3, 1), { maxTokens: 30, seed: 3, stopAfter: 11, onToken: () => {
      if (!late && first.tokens[0].length === 3) {
        arrivedAt = e.fake.batches.length;
        late = submit(e, ids(4, 9), { maxTokens: 12, seed: 4 });
      }
    } });
    expect(reference(ids(3, 1), 3, 30).length).toBeGreaterThan(11);
    await first.done;
    await late!.done;
    expect(first.tokens[0]).toEqual(reference(ids(3, 1), 3, 11));
    expect(late!.tokens[0]).toEqual(reference(ids(4, 9), 4, 12));
    // The step after the one that saw it arrive admits the newcomer, and does not run ahead.
    const next = e.fake.batches[arrivedAt];
    expect(next.runAhead ?? 1).toBe(1);
    expect(next.tokens.length).toBe(1 + 4);
    expect(e.engine.stats().blocksUsed).toBe(0);
  });

  it('a request arriving during a run-ahead call interrupts it after the current step', async () => {
    const e = setup({ nBlocks: 128, blockSize: 4, stepTokens: 64, runAhead: 16 });
    const first = submit(e, ids(3, 1), { maxTokens: 60, seed: 5 });
    // Wait, a turn of the event loop at a time, until a call running ahead is in flight.
    let at = -1;
    for (let turns = 0; at < 0 && turns < 1000; turns++) {
      await new Promise((r) => setImmediate(r));
      const last = e.fake.batches.length - 1;
      if (last >= 0 && (e.fake.batches[last].runAhead ?? 1) > 1 && e.fake.ran.length === last) at = last;
    }
    expect(at).toBeGreaterThanOrEqual(0);
    const late = submit(e, ids(5, 9), { maxTokens: 6, seed: 6 });
    await Promise.all([first.done, late.done]);
    expect(e.fake.ran[at]).toBeLessThan(e.fake.batches[at].runAhead!);
    // The next call admits the newcomer's whole prompt beside the decoding token.
    expect(e.fake.batches[at + 1].tokens.length).toBe(1 + 5);
    expect(first.tokens[0]).toEqual(reference(ids(3, 1), 5, 60));
    expect(late.tokens[0]).toEqual(reference(ids(5, 9), 6, 6));
    expect(e.engine.stats().steps).toBe(e.fake.ran.reduce((a, x) => a + x, 0));
  });

  it('a pool too tight to run ahead falls back to single steps, preempting as before', async () => {
    const e = setup({ nBlocks: 16, blockSize: 4, stepTokens: 64, runAhead: 4 });
    const prompts = [0, 1, 2, 3, 4, 5].map((k) => ids(6 + k, 10 * k));
    const runs = prompts.map((p, k) => submit(e, p, { maxTokens: 40, seed: 100 + k }));
    await Promise.all(runs.map((r) => r.done));
    runs.forEach((r, k) => expect(r.tokens[0]).toEqual(reference(prompts[k], 100 + k, 40)));
    expect(e.engine.stats().preemptions).toBeGreaterThan(0);
    expect(Math.max(...steps(e))).toBe(4);
    expect(e.bm.usedBlocks).toBe(0);
  });
});
