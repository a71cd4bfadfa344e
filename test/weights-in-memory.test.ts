// LoadOptions.useMmap: false reads the file into memory instead of mapping it. The weights are
// the same bytes either way, so every logit must be bit-identical, and a bad file must fail the
// same clear way. (Q4_0 and Q5_0 matmul weights are packed at load: in place when read, into
// memory of their own when mapped; the q4_0 file and a Q5_0 model written here check both.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel } from '../lib/index.js';
import { loadNativeModel, type NativeModel } from '../lib/native.js';
import { HAVE_REFDATA, refPath } from './refdata.js';
import { greedy } from './helpers/step-batch.js';
import { modelFile } from './helpers/random-model.js';
import { writeGguf } from '../lib/gguf/writer.js';

/** Logits of the last prompt token, then of one decode step after it. */
async function logits(m: NativeModel, prompt: number[]): Promise<Float32Array[]> {
  const n = prompt.length;
  const common = { blockTables: Int32Array.of(0), maxBlocks: 1, sampling: greedy(1), wantLogits: Uint8Array.of(1) };
  const pre = await m.step({
    ...common, tokens: Int32Array.from(prompt), positions: Int32Array.from(prompt, (_, i) => i), seqIdx: new Int32Array(n),
    outIdx: Int32Array.of(n - 1),
  });
  const next = await m.step({ ...common, tokens: Int32Array.of(pre.tokens[0]), positions: Int32Array.of(n), seqIdx: Int32Array.of(0), outIdx: Int32Array.of(0) });
  return [pre.logits!, next.logits!];
}

/** Index of the first logit whose bits differ (NaN-safe), or -1; cheap to report when it fails. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return Math.min(x.length, y.length);
  return x.findIndex((v, i) => v !== y[i]);
}

/** Loads file mapped and read into memory, and expects the same logits bit for bit. */
async function sameLogits(file: string, prompt = [1, 403, 407, 261, 378, 300, 42, 77]): Promise<void> {
  const opts = { blockSize: 16, kvCacheTokens: 16, kvType: 'f32' as const };
  const mapped = await loadNativeModel(file, opts);
  const read = await loadNativeModel(file, { ...opts, useMmap: false });
  try {
    expect(mapped.info().useMmap).toBe(true);
    expect(read.info().useMmap).toBe(false);
    const a = await logits(mapped, prompt);
    const b = await logits(read, prompt);
    expect(b[0].length).toBe(mapped.info().vocabSize);
    expect(firstDifference(a[0], b[0]), 'prompt logits').toBe(-1);
    expect(firstDifference(a[1], b[1]), 'decode logits').toBe(-1);
  } finally {
    mapped.dispose();
    read.dispose();
  }
}

describe('a Q5_0 model read into memory and mapped', () => {
  let dir = '';
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'weft-q5-')); });
  afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('the same logits: its matrices of whole groups of 8 rows packed, its 311-row output not', async () => {
    const { meta, tensors } = modelFile({
      arch: 'llama', embd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 96, ropeBase: 10000, tied: false, qkNorm: false, seed: 55,
    });
    const file = path.join(dir, 'q5_0.gguf');
    await writeGguf(file, meta, tensors.map((t) => (t.shape.length === 2 && t.name !== 'token_embd.weight' ? { ...t, type: 'Q5_0' as const } : t)));
    await sameLogits(file, [1, 40, 77, 261, 278, 300, 42, 7]);
  });
});

describe.skipIf(!HAVE_REFDATA)('weights read into memory (useMmap: false)', () => {
  let dir = '';
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'weft-nommap-')); });
  afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  for (const file of ['stories260Ktok512.gguf', 'qwen2-gqa-q8_0.gguf', 'llama-gqa-k-q4_k_m.gguf', 'llama-gqa-k-q4_0.gguf', 'stories260Ktok512-f16.gguf']) {
    it(`${file}: the same logits as through the mapping`, async () => {
      await sameLogits(refPath('models', file));
    });
  }

  it('generates through the high-level API, and reports how it holds the file', async () => {
    const m = await loadModel(refPath('models', 'stories260Ktok512.gguf'), { useMmap: false, kvCacheTokens: 128 });
    try {
      expect(m.info.useMmap).toBe(false);
      const r = await m.generate('Once upon a time', { temperature: 0, maxTokens: 8 }).result;
      expect(r.usage.completionTokens).toBe(8);
    } finally {
      await m.dispose();
    }
  });

  it('a non-boolean useMmap is E_INVALID_ARGUMENT, in the API and at the addon', async () => {
    const file = refPath('models', 'stories260Ktok512.gguf');
    await expect(loadModel(file, { useMmap: 'no' as unknown as boolean })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /useMmap/ });
    await expect(loadNativeModel(file, { useMmap: 0 as unknown as boolean })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /useMmap/ });
  });

  it('missing and truncated files fail as they do when mapped', async () => {
    await expect(loadModel(path.join(dir, 'missing.gguf'), { useMmap: false })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /missing\.gguf/ });
    const b = readFileSync(refPath('models', 'stories260Ktok512.gguf'));
    const p = path.join(dir, 'cut.gguf');
    for (const n of [0, 5, 100, 4000, b.length >> 1, b.length - 1]) {
      writeFileSync(p, b.subarray(0, n));
      await expect(loadModel(p, { useMmap: false, kvCacheTokens: 64 }), `cut at ${n}`).rejects.toMatchObject({ code: 'E_MODEL_FORMAT' });
    }
  });
});
