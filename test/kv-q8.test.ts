// The q8_0 KV cache (LoadOptions.kvType): K and V rows stored as ggml's Q8_0 blocks, as
// llama.cpp's --cache-type-k/v q8_0 stores them. weft against the float64 reference whose K/V rows
// are rounded through Q8_0 the same way (helpers/ref-forward.ts), batch invariance, the bytes it
// takes, and the models it must refuse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, type LoadOptions } from '../lib/index.js';
import { RefModel } from './helpers/ref-forward.js';
import { writeModel, type Spec } from './helpers/random-model.js';
import { flat, maxAbs, maxDiff } from './helpers/logits.js';

let dir = '';
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'weft-kv-q8-')); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

async function weftLogits(file: string, prompt: number[], opts: LoadOptions = {}): Promise<Float32Array> {
  const model = await loadModel(file, { threads: 2, kvType: 'q8_0', kvCacheTokens: 1024, ...opts });
  try {
    return await model.evaluate(prompt, { allLogits: true });
  } finally {
    await model.dispose();
  }
}

const prompt = (n: number) => Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 259 + ((i * 37) % 52)));
const BASE = { layers: 2, ff: 96, ropeBase: 10000, tied: false, qkNorm: false } as const;
// Head sizes 32 and 64: one and two Q8_0 blocks a row.
const CASES: { name: string; spec: Spec }[] = [
  { name: 'llama-gqa', spec: { ...BASE, arch: 'llama', embd: 128, heads: 4, kvHeads: 2, seed: 51 } },
  { name: 'qwen3-mqa', spec: { ...BASE, arch: 'qwen3', embd: 64, heads: 4, kvHeads: 1, headDim: 32, qkNorm: true, ropeBase: 1e6, seed: 52 } },
  { name: 'qwen2-hd64', spec: { ...BASE, arch: 'qwen2', embd: 128, heads: 2, kvHeads: 1, tied: true, ropeBase: 1e6, seed: 53 } },
];
// The reference rounds float64 K/V values, weft float32 ones: a value within ~1e-7 of a rounding
// boundary may land on the other code (measured: 1-3e-7 of the logit scale).
const TOL = 1e-4;

describe('a q8_0 KV cache', () => {
  for (const c of CASES) {
    it(`${c.name}: logits within ${TOL} of the reference with Q8_0 K/V rows, and away from the unrounded one`, async () => {
      const { file, dataOffset } = await writeModel(dir, c.name, c.spec);
      const ref = await RefModel.load(file, dataOffset);
      const P = prompt(80);
      const want = flat(ref.forward(P, { kvType: 'q8_0' }));
      const got = await weftLogits(file, P);
      const scale = maxAbs(want), d = maxDiff(got, want), dPlain = maxDiff(got, flat(ref.forward(P)));
      console.log(`[kv-q8] ${c.name}: max |weft - Q8_0 reference| ${d.toExponential(2)}, to the unrounded one ${dPlain.toExponential(2)}, logit scale ${scale.toFixed(2)}`);
      expect(d).toBeLessThan(TOL * scale);
      // The rounding is there: the f32/f16 cache's distance to the reference is far smaller.
      expect(dPlain).toBeGreaterThan(20 * d);
    });
  }

  it('gives the same bits whatever the threads, step size and block size, over several attention segments', async () => {
    const { file } = await writeModel(dir, 'llama-gqa-long', CASES[0].spec);
    const P = prompt(700);
    const base = await weftLogits(file, P);
    for (const opts of [{ threads: 1 }, { threads: 3 }, { stepTokens: 1 }, { stepTokens: 7, blockSize: 5 }]) {
      const got = await weftLogits(file, P, opts);
      expect(got.findIndex((x, i) => !Object.is(x, base[i])), JSON.stringify(opts)).toBe(-1);
    }
  }, 60_000);

  it('takes 34 bytes per 32 values (f16: 64) and reports its type', async () => {
    const { file } = await writeModel(dir, 'llama-gqa-bytes', CASES[0].spec);
    const info = async (kvType: LoadOptions['kvType']) => {
      const m = await loadModel(file, { kvType, kvCacheTokens: 1024 });
      try { return m.info.kvCache; } finally { await m.dispose(); }
    };
    const q8 = await info('q8_0'), f16 = await info('f16');
    expect(q8.type).toBe('q8_0');
    expect(q8.blocks).toBe(f16.blocks);
    expect(q8.bytes / f16.bytes).toBe(34 / 64);
  });

  it('refuses a head size that is not a multiple of 32, and an unknown type, with E_INVALID_ARGUMENT', async () => {
    const { file } = await writeModel(dir, 'llama-hd16', { ...CASES[0].spec, embd: 64 });
    await expect(loadModel(file, { kvType: 'q8_0' })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT', message: expect.stringMatching(/multiple of 32.*16/),
    });
    await expect(loadModel(file, { kvType: 'q4_0' as never })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT', message: expect.stringContaining('f16, f32, q8_0'),
    });
  });
});
