// Architectures and RoPE variants against a plain float64 reference forward pass
// (helpers/ref-forward.ts): first the reference itself against llama.cpp's logits on real files,
// then weft against the reference on small random-weight models written here: qwen3 (per-head
// Q/K norms, head size of its own, GQA), Llama 3.x RoPE scaling from a rope_freqs tensor or from
// its keys, linear scaling. And the files weft must refuse, with the right code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, type LoadOptions } from '../lib/index.js';
import { f32, str, u32, writeGguf, type MetaEntry } from '../lib/gguf/writer.js';
import { llama3FreqFactors, RefModel } from './helpers/ref-forward.js';
import { gaussians, modelFile, writeModel, type Spec } from './helpers/random-model.js';
import { flat, maxAbs, maxDiff } from './helpers/logits.js';
import { HAVE_REFDATA, refF32, refJson, refPath } from './refdata.js';

let dir = '';
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'weft-archs-')); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
const write = (name: string, s: Spec) => writeModel(dir, name, s);

describe.skipIf(!HAVE_REFDATA)('the float64 reference matches llama.cpp', () => {
  const dataOffsets = new Map<string, number>(
    refJson<{ models: { file: string; tensor_data_section_file_offset: number }[] }>('models', 'models.json')
      .models.map((m) => [m.file, m.tensor_data_section_file_offset]),
  );
  it.each(['llama-mha-odd-f32', 'stories260Ktok512'])('%s (F32) within 1e-3 on every logit', async (name) => {
    const ref = refJson<{ model_file: string; prompt: { tokens: number[] }; logits: { file: string } }>('refs', `${name}.promptA.json`);
    const model = await RefModel.load(refPath(ref.model_file), dataOffsets.get(path.basename(ref.model_file))!);
    const ours = flat(model.forward(ref.prompt.tokens));
    const theirs = refF32('refs', ref.logits.file);
    expect(ours.length).toBe(theirs.length);
    const d = maxDiff(ours, theirs);
    console.log(`[ref-forward] ${name}: max |reference - llama.cpp| ${d.toExponential(2)}`);
    expect(d).toBeLessThan(1e-3);
  });
});

async function weftLogits(file: string, prompt: number[], opts: LoadOptions = {}): Promise<Float32Array> {
  const model = await loadModel(file, { threads: 2, kvType: 'f32', kvCacheTokens: 512, ...opts });
  try {
    return await model.evaluate(prompt, { allLogits: true });
  } finally {
    await model.dispose();
  }
}

async function weftGreedy(file: string, prompt: number[], n: number): Promise<number[]> {
  const model = await loadModel(file, { threads: 2, kvType: 'f32', kvCacheTokens: 512 });
  try {
    return (await model.generate(prompt, { temperature: 0, maxTokens: n }).result).tokens;
  } finally {
    await model.dispose();
  }
}

// 80 tokens: longer than one 64-position softmax chunk and several 16-slot KV blocks.
const PROMPT = Array.from({ length: 80 }, (_, i) => (i === 0 ? 1 : 259 + ((i * 37) % 52)));
const REL_TOL = 1e-4;

const BASE = { embd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 96, ropeBase: 10000, tied: false, qkNorm: false } as const;
const LLAMA3 = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, origCtx: 64 };
const llama3Keys = (p = LLAMA3): MetaEntry[] => [
  str('llama.rope.scaling.type', 'llama3'), f32('llama.rope.scaling.factor', p.factor),
  f32('llama.rope.scaling.low_freq_factor', p.lowFreqFactor), f32('llama.rope.scaling.high_freq_factor', p.highFreqFactor),
  u32('llama.rope.scaling.original_context_length', p.origCtx),
];

// origCtx 64 with head size 16 puts the 8 rotated pairs (wavelengths 6.3 to 19900 positions) in
// all three llama3 bands: unchanged below 16, interpolated to 64, slowed by 8 above.
const CASES: { name: string; spec: Spec }[] = [
  // qwen3: 6 query heads of 24 (144 != 64 = n_embd) over 2 KV heads (groups of 3), tied output.
  { name: 'qwen3', spec: { ...BASE, arch: 'qwen3', heads: 6, kvHeads: 2, headDim: 24, tied: true, qkNorm: true, ropeBase: 1e6, seed: 11 } },
  { name: 'qwen3-untied-mqa', spec: { ...BASE, arch: 'qwen3', heads: 4, kvHeads: 1, headDim: 32, qkNorm: true, seed: 12 } },
  { name: 'llama-rope-freqs', spec: { ...BASE, arch: 'llama', ropeFreqs: Float32Array.from(gaussians(8, 5, 1).map((g) => Math.exp(1.2 * g))), seed: 13 } },
  { name: 'llama3-keys', spec: { ...BASE, arch: 'llama', extraMeta: llama3Keys(), seed: 14 } },
  { name: 'llama-linear', spec: { ...BASE, arch: 'llama', extraMeta: [str('llama.rope.scaling.type', 'linear'), f32('llama.rope.scaling.factor', 4)], seed: 15 } },
  { name: 'qwen2-biases', spec: { ...BASE, arch: 'qwen2', heads: 4, kvHeads: 1, tied: true, ropeBase: 1e6, seed: 16 } },
];

describe('weft against the float64 reference on random-weight models', () => {
  for (const c of CASES) {
    it(`${c.name}: logits within ${REL_TOL} of the logit scale, and the same greedy tokens`, async () => {
      const { file, dataOffset } = await write(c.name, c.spec);
      const ref = await RefModel.load(file, dataOffset);
      const want = flat(ref.forward(PROMPT));
      const got = await weftLogits(file, PROMPT);
      const d = maxDiff(got, want), scale = maxAbs(want);
      console.log(`[archs] ${c.name}: max |weft - reference| ${d.toExponential(2)}, logit scale ${scale.toFixed(2)}`);
      expect(d).toBeLessThan(REL_TOL * scale);

      // Greedy, as far as the reference's picks are clear (margin above 1e-3) and before an end
      // of generation, which weft does not report as a token.
      const g = ref.greedy(PROMPT, 12);
      const cut = (i: number) => (i < 0 ? g.tokens.length : i);
      const upTo = Math.min(cut(g.margins.findIndex((m) => m < 1e-3)), cut(g.tokens.indexOf(2)));
      expect(upTo).toBeGreaterThan(6);
      expect((await weftGreedy(file, PROMPT, 12)).slice(0, upTo)).toEqual(g.tokens.slice(0, upTo));
    });
  }

  it('the RoPE variants really change the logits (so the checks above can fail)', async () => {
    const plain = await write('llama-plain', { ...BASE, arch: 'llama', seed: 13 });
    const plainLogits = await weftLogits(plain.file, PROMPT);
    const scale = maxAbs(plainLogits);
    for (const name of ['llama-rope-freqs', 'llama-linear']) {
      const c = CASES.find((x) => x.name === name)!;
      const other = await weftLogits((await write(name, { ...c.spec, seed: 13 })).file, PROMPT);
      expect(maxDiff(other, plainLogits), name).toBeGreaterThan(1000 * REL_TOL * scale);
    }
    // The qwen3 Q/K norms matter as well: the same weights run as qwen2 (no biases, no norms)
    // give other logits.
    const q3 = CASES[0].spec;
    const asQwen2 = await write('qwen3-as-qwen2', { ...q3, arch: 'qwen2', qkNorm: false, biases: false });
    const q3Logits = await weftLogits((await write('qwen3', q3)).file, PROMPT);
    expect(maxDiff(await weftLogits(asQwen2.file, PROMPT), q3Logits)).toBeGreaterThan(1000 * REL_TOL * maxAbs(q3Logits));
  });

  it('llama3 keys give what the same factors baked into rope_freqs.weight give', async () => {
    const factors = Float32Array.from(llama3FreqFactors(16, 10000, LLAMA3));
    expect(new Set(factors).size).toBeGreaterThan(3);  // all three bands are populated
    expect(factors[0]).toBe(1);
    expect(factors[7]).toBe(8);
    const keys = await weftLogits((await write('l3-keys', { ...BASE, arch: 'llama', extraMeta: llama3Keys(), seed: 21 })).file, PROMPT);
    const tensor = await weftLogits((await write('l3-tensor', { ...BASE, arch: 'llama', ropeFreqs: factors, seed: 21 })).file, PROMPT);
    // When both are present the tensor wins (llama.cpp's converter writes only the tensor).
    const both = await weftLogits((await write('l3-both', {
      ...BASE, arch: 'llama', ropeFreqs: factors, extraMeta: llama3Keys({ ...LLAMA3, factor: 2 }), seed: 21,
    })).file, PROMPT);
    const scale = maxAbs(tensor);
    expect(maxDiff(keys, tensor)).toBeLessThan(1e-5 * scale);
    expect(maxDiff(both, tensor)).toBeLessThan(1e-5 * scale);
  });

  // Single-token steps have few attention items: with 2 or 3 threads the query heads of each KV
  // head are cut into parts (qwen3: 2 KV heads in 3 parts on 3 threads; MQA: 1 in 2, and in 3
  // unequal ones), which must not change a bit.
  for (const c of [CASES[0], CASES[1]]) {
    it(`${c.name}: logits are bit-identical whatever the step size, block size and thread count`, async () => {
      const { file } = await write(`${c.name}-invariance`, { ...c.spec, seed: 31 });
      const base = await weftLogits(file, PROMPT, { threads: 2 });
      for (const opts of [
        { threads: 1 }, { threads: 3 }, { stepTokens: 7 }, { blockSize: 5, stepTokens: 30 }, { kvCacheTokens: 100, blockSize: 64 },
        { stepTokens: 1, threads: 1 }, { stepTokens: 1 }, { stepTokens: 1, threads: 3 },
      ]) {
        const got = await weftLogits(file, PROMPT, opts);
        expect(got.findIndex((x, i) => !Object.is(x, base[i])), JSON.stringify(opts)).toBe(-1);  // the first that differs
      }
    });
  }
});

// 700 tokens: past two 256-position attention segments, whose partial softmaxes weft folds in
// order, on whichever threads ran them.
const LONG = Array.from({ length: 700 }, (_, i) => (i === 0 ? 1 : 259 + ((i * 37) % 52)));

describe('a context of several attention segments', () => {
  // qwen3 has 2 KV heads (groups of 3), the MQA case 1: with 2 or 3 threads, a head's segments
  // are shared between threads both in prefill tiles and in single-token steps.
  for (const c of [CASES[0], CASES[1]]) {
    it(`${c.name}: logits within ${REL_TOL} of the reference, bit-identical whatever the threads and step size (f32 and f16 caches)`, async () => {
      const { file, dataOffset } = await write(`${c.name}-long`, c.spec);
      const want = flat((await RefModel.load(file, dataOffset)).forward(LONG));
      const base = await weftLogits(file, LONG, { kvCacheTokens: 1024 });
      expect(maxDiff(base, want)).toBeLessThan(REL_TOL * maxAbs(want));
      // The same with the f16 cache (its own kernels), against its own base.
      for (const kvType of ['f32', 'f16'] as const) {
        const ref = kvType === 'f32' ? base : await weftLogits(file, LONG, { kvCacheTokens: 1024, kvType });
        for (const opts of [{ threads: 1 }, { threads: 3 }, { stepTokens: 1 }, { stepTokens: 1, threads: 3 }, { stepTokens: 7, blockSize: 5 }]) {
          const got = await weftLogits(file, LONG, { kvCacheTokens: 1024, kvType, ...opts });
          // The first logit that differs (-1: none), rather than a diff of 700 rows.
          expect(got.findIndex((x, i) => !Object.is(x, ref[i])), `${kvType} ${JSON.stringify(opts)}`).toBe(-1);
        }
      }
    }, 60_000);
  }
});

describe('files weft refuses', () => {
  it('an unknown architecture is E_UNSUPPORTED naming it', async () => {
    const file = path.join(dir, 'unknown-arch.gguf');
    const { meta, tensors } = modelFile({ ...BASE, arch: 'llama', seed: 41 });
    const renamed = meta.map((e) => (e.key === 'general.architecture' ? str(e.key, 'mamba9') : { ...e, key: e.key.replace(/^llama\./, 'mamba9.') }));
    await writeGguf(file, renamed, tensors);
    await expect(loadModel(file)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/'mamba9'.*llama, qwen2, qwen3/) });
  });

  it.each(['yarn', 'longrope', 'su'])('RoPE scaling type %s is E_UNSUPPORTED naming it', async (type) => {
    const { file } = await write(`scaling-${type}`, {
      ...BASE, arch: 'llama', seed: 42, extraMeta: [str('llama.rope.scaling.type', type), f32('llama.rope.scaling.factor', 4)],
    });
    await expect(loadModel(file)).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: expect.stringContaining(`'${type}'`) });
  });

  it('qwen3 without a Q/K norm tensor is E_MODEL_FORMAT naming the tensor', async () => {
    const { file } = await write('qwen3-no-knorm', { ...CASES[0].spec, omit: ['blk.1.attn_k_norm.weight'] });
    await expect(loadModel(file)).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: expect.stringContaining("'blk.1.attn_k_norm.weight'") });
  });

  it('bad RoPE scaling data is E_MODEL_FORMAT', async () => {
    const bad = async (name: string, s: Partial<Spec>, msg: RegExp) => {
      const { file } = await write(name, { ...BASE, arch: 'llama', seed: 43, ...s });
      await expect(loadModel(file)).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: expect.stringMatching(msg) });
    };
    await bad('freqs-short', { ropeFreqs: new Float32Array(7).fill(1) }, /rope_freqs\.weight/);
    await bad('freqs-zero', { ropeFreqs: Float32Array.of(1, 1, 1, 0, 1, 1, 1, 1) }, /rope_freqs\.weight\[3\]/);
    await bad('llama3-no-factor', { extraMeta: [str('llama.rope.scaling.type', 'llama3')] }, /llama\.rope\.scaling\.factor/);
    await bad('llama3-equal-bands', { extraMeta: llama3Keys({ ...LLAMA3, lowFreqFactor: 2, highFreqFactor: 2 }) }, /low_freq_factor/);
    await bad('linear-negative', { extraMeta: [str('llama.rope.scaling.type', 'linear'), f32('llama.rope.scaling.factor', -2)] }, /factor/);
  });
});
