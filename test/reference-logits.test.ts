// weft against llama.cpp's own logits and greedy continuations on the shared GGUF files
// (../shared/refdata/MANIFEST.md, section 2.1). The references used an F32 KV cache.
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index.js';
import { HAVE_REFDATA, refF32, refJson, refPath } from './refdata.js';

// Tolerance on |weft - llama.cpp| per logit, by weight type, and the top1-top2 margin below
// which a position counts as a near-tie (argmax and greedy agreement are not asserted there).
//  - F32: llama.cpp is within 2e-5 of exact float64 math; weft's f32 sums in another order, so
//    allow a few times that.
//  - F16/BF16: both engines round activations to the weight type before the dot (ggml's
//    vec_dot_type), so what remains is summation order; exact math itself is 1e-2 (F16) and
//    7e-2 (BF16) away from llama.cpp (1.8e-2 on qwen2-gqa-f16), which bounds how far either can be from the other.
//  - Q8_0: activations are quantized to Q8_0 blocks in both, and the block dot is exact
//    integer arithmetic, so only the float accumulation of block sums differs.
const CASES: { file: string; tol: number; tie: number }[] = [
  { file: 'stories260Ktok512', tol: 1e-4, tie: 1e-3 },
  { file: 'llama-mha-odd-f32', tol: 1e-4, tie: 1e-3 },
  { file: 'stories260Ktok512-f16', tol: 2e-2, tie: 0.05 },
  { file: 'stories260Ktok512-bf16', tol: 5e-2, tie: 0.1 },
  { file: 'qwen2-gqa-f16', tol: 2e-2, tie: 0.05 },
  { file: 'llama-gqa-k-q8_0', tol: 5e-2, tie: 0.1 },
  { file: 'qwen2-gqa-q8_0', tol: 5e-2, tie: 0.1 },
];

interface Ref {
  model_file: string;
  n_vocab: number;
  prompt: { tokens: number[] };
  logits: { storage: 'full' | 'top64'; file?: string; ids?: number[][]; values?: number[][] };
  per_position: { argmax: number[]; top1_minus_top2: number[] };
  greedy: { tokens: number[]; top1_minus_top2: number[] };
}

describe.skipIf(!HAVE_REFDATA)('logits and greedy tokens match llama.cpp', () => {
  const models: Model[] = [];
  afterAll(async () => {
    for (const m of models) await m.dispose();
  });

  for (const c of CASES) {
    it(`${c.file}`, async () => {
      const ref = refJson<Ref>('refs', `${c.file}.promptA.json`);
      const model = await loadModel(refPath(ref.model_file), { kvType: 'f32', threads: 2 });
      models.push(model);
      expect(model.info.vocabSize).toBe(ref.n_vocab);
      const V = ref.n_vocab;
      const n = ref.prompt.tokens.length;
      const logits = await model.evaluate(ref.prompt.tokens, { allLogits: true });
      expect(logits.length).toBe(n * V);

      let maxDiff = 0;
      if (ref.logits.storage === 'full') {
        const full = refF32('refs', ref.logits.file!);
        for (let i = 0; i < full.length; i++) maxDiff = Math.max(maxDiff, Math.abs(full[i] - logits[i]));
      } else {
        for (let p = 0; p < n; p++) {
          ref.logits.ids![p].forEach((id, k) => {
            maxDiff = Math.max(maxDiff, Math.abs(Math.fround(ref.logits.values![p][k]) - logits[p * V + id]));
          });
        }
      }
      // Argmax wherever llama.cpp's margin is clear.
      let argmaxChecked = 0;
      for (let p = 0; p < n; p++) {
        if (ref.per_position.top1_minus_top2[p] < c.tie) continue;
        let best = 0;
        for (let v = 1; v < V; v++) if (logits[p * V + v] > logits[p * V + best]) best = v;
        expect(best, `argmax at position ${p}`).toBe(ref.per_position.argmax[p]);
        argmaxChecked++;
      }
      // Greedy continuation up to llama.cpp's first near-tie.
      const gen = model.generate(ref.prompt.tokens, { temperature: 0, maxTokens: ref.greedy.tokens.length });
      const out = (await gen.result).tokens;
      let upTo = ref.greedy.top1_minus_top2.findIndex((m) => m < c.tie);
      if (upTo < 0) upTo = ref.greedy.tokens.length;
      expect(out.slice(0, upTo)).toEqual(ref.greedy.tokens.slice(0, upTo));
      let same = 0;
      while (same < out.length && out[same] === ref.greedy.tokens[same]) same++;
      console.log(`[ref] ${c.file}: max |dlogit| ${maxDiff.toExponential(2)} (tol ${c.tol}), argmax ${argmaxChecked}/${n} checked, ` +
        `greedy ${same}/${ref.greedy.tokens.length} identical (asserted ${upTo})`);
      expect(maxDiff).toBeLessThan(c.tol);
    });
  }

  it('stories260K: every 64-token greedy continuation equals llama.cpp token for token', async () => {
    const data = refJson<{ results: { prompt_text: string; prompt_tokens: number[]; greedy_tokens: number[]; continuation_text: string }[] }>(
      'stories260K', 'greedy_64.json');
    const model = await loadModel(refPath('models', 'stories260Ktok512.gguf'), { threads: 2 });
    models.push(model);
    // All four at once: they share engine steps, which must not change anyone's tokens.
    const gens = data.results.map((r) => {
      expect(Array.from(model.tokenize(r.prompt_text))).toEqual(r.prompt_tokens);
      return model.generate(r.prompt_text, { temperature: 0, maxTokens: 64 });
    });
    for (const [i, g] of gens.entries()) {
      const res = await g.result;
      expect(res.tokens).toEqual(data.results[i].greedy_tokens);
      expect(res.text).toBe(data.results[i].continuation_text);
    }
  });
});
