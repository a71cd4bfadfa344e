// The block manager and scheduler driving the real native engine (TinyStories 260K, tiny and
// fast): a 16-way fork stores a 512-token prompt once, a pool sized to force preemption still
// gives every request the tokens of an unconstrained run (invariants checked before every step),
// and 1000 generations aborted at random points leave no block in use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index.js';
import { BlockManager } from '../lib/kv/block-manager.js';
import { checkBlockInvariants } from '../lib/kv/invariants.js';
import { loadNativeModel, type NativeModel, type StepBatch } from '../lib/native.js';
import { Engine } from '../lib/scheduler/engine.js';
import { HAVE_REFDATA, refPath } from './refdata.js';

const STORIES = () => refPath('models', 'stories260Ktok512.gguf');
const EOS = 2;

/** An engine over the real model whose steps first check the block manager and record the batch. */
async function engineOver(kvCacheTokens: number, stepTokens = 512) {
  const native = await loadNativeModel(STORIES(), { kvCacheTokens, blockSize: 16, threads: 2 });
  const { blocks, blockSize } = native.info().kvCache;
  const bm = new BlockManager(blocks, blockSize);
  const steps: { batch: StepBatch; used: number }[] = [];
  const checked: NativeModel = {
    info: () => native.info(), metadata: () => native.metadata(), dispose: () => native.dispose(), profile: () => native.profile(),
    interrupt: () => native.interrupt(),
    step: (batch) => {
      checkBlockInvariants(bm);
      steps.push({ batch, used: bm.usedBlocks });
      return native.step(batch);
    },
  };
  const engine = new Engine(checked, bm, { stepTokens, isEog: (t) => t === EOS });
  return { native, bm, engine, steps };
}

async function sample(engine: Engine, prompt: number[], seed: number, maxTokens: number, n = 1): Promise<number[][]> {
  const out = Array.from({ length: n }, () => [] as number[]);
  await engine.submit({
    prompt: Int32Array.from(prompt), maxTokens, n, topN: 0, logits: 'none',
    sampling: { temperature: 1, topK: 0, topP: 1, minP: 0, seed },
    onToken: (i, t) => { out[i].push(t.token); return false; },
  });
  return out;
}

function randomIds(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 3 + (s % 509);
  });
}

describe.skipIf(!HAVE_REFDATA)('paged KV on the real model', () => {
  it('n = 16 over a 512-token prompt stores the prompt once and matches each trajectory run alone', async () => {
    const { native, engine, steps } = await engineOver(4096);
    try {
      const prompt = randomIds(512, 5);
      const traj = await sample(engine, prompt, 1000, 32, 16);
      // Step 1 computes the prompt (32 blocks) and samples 16 first tokens from its last row.
      expect(steps[0].batch.tokens.length).toBe(512);
      expect(steps[0].batch.outIdx.length).toBe(16);
      expect(steps[0].used).toBe(32);
      // Step 2: each trajectory writes position 512, the first slot of a new block: 32 shared + 16.
      const second = steps[1].batch;
      expect(second.tokens.length).toBe(16);
      expect(steps[1].used).toBe(32 + 16);
      expect(second.copies).toBeUndefined();
      const rows = Array.from({ length: 16 }, (_, i) => Array.from(second.blockTables.subarray(i * second.maxBlocks, (i + 1) * second.maxBlocks)));
      for (const r of rows) expect(r.slice(0, 32)).toEqual(rows[0].slice(0, 32));
      expect(new Set(rows.map((r) => r[32])).size).toBe(16);
      // Never more than the prompt once plus two private blocks per trajectory (positions
      // 512..543), against 16 x 34 = 544 blocks for 16 separate copies.
      expect(Math.max(...steps.map((s) => s.used))).toBeLessThanOrEqual(32 + 2 * 16);
      // Batch invariance: trajectory i is what seed 1000 + i gives alone.
      for (const i of [0, 7, 15]) expect((await sample(engine, prompt, 1000 + i, 32))[0]).toEqual(traj[i]);
    } finally {
      native.dispose();
    }
  });

  it('a pool sized to force preemption completes every request with the tokens of an unconstrained run', async () => {
    const requests = Array.from({ length: 8 }, (_, k) => ({ prompt: randomIds(10 + 3 * k, 50 + k), seed: 300 + k, maxTokens: 90 }));
    const big = await engineOver(8192);
    const small = await engineOver(256, 64);  // 16 blocks; each request alone needs up to 8
    try {
      const want = await Promise.all(requests.map((r) => sample(big.engine, r.prompt, r.seed, r.maxTokens)));
      const got = await Promise.all(requests.map((r) => sample(small.engine, r.prompt, r.seed, r.maxTokens)));
      expect(got).toEqual(want);
      expect(want.reduce((n, t) => n + t[0].length, 0)).toBeGreaterThan(300);  // they really generated
      const st = small.engine.stats();
      expect(st.preemptions).toBeGreaterThan(0);
      expect(st.blocksUsed).toBe(0);
      expect(big.engine.stats().preemptions).toBe(0);
      checkBlockInvariants(small.bm);
    } finally {
      big.native.dispose();
      small.native.dispose();
    }
  });
});

describe.skipIf(!HAVE_REFDATA)('1000 aborted generations', () => {
  let model: Model;
  beforeAll(async () => { model = await loadModel(STORIES(), { kvCacheTokens: 2048, threads: 2, stepTokens: 256 }); });
  afterAll(async () => { await model?.dispose(); });

  it('leave zero blocks in use, whatever point each abort hit', async () => {
    let s = 7;
    const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const outcomes = { aborted: 0, finished: 0, other: 0 };
    for (let wave = 0; wave < 20; wave++) {
      await Promise.all(Array.from({ length: 50 }, async () => {
        const ac = new AbortController();
        const how = rand();
        const afterEvents = Math.floor(rand() * 40);
        if (how < 0.05) ac.abort();  // before it is even queued
        else if (how < 0.5) setTimeout(() => ac.abort(), Math.floor(rand() * 15));  // queued, prefilling or decoding
        try {
          const gen = model.generate(randomIds(1 + Math.floor(rand() * 80), Math.floor(rand() * 1e6)), {
            maxTokens: 1 + Math.floor(rand() * 60), n: 1 + Math.floor(rand() * 3), seed: wave, signal: ac.signal,
          });
          let events = 0;
          for await (const _ of gen) if (how >= 0.5 && ++events === afterEvents) ac.abort();  // mid-stream
          await gen.result;
          outcomes.finished++;
        } catch (e) {
          if ((e as { code?: string }).code === 'E_ABORTED') outcomes.aborted++;
          else outcomes.other++;
        }
      }));
      expect(model.stats().blocksUsed).toBe(0);
    }
    expect(outcomes.other).toBe(0);
    expect(outcomes.aborted).toBeGreaterThan(300);
    expect(outcomes.finished).toBeGreaterThan(50);
    expect(model.stats()).toMatchObject({ blocksUsed: 0, waiting: 0, running: 0 });
  });
});
