// The shipped default model (models/weft-reasoner-2m-f16.gguf, see models/README.md): it loads
// as a GQA llama through weft's normal GGUF path, weft's logits match the PyTorch model it was
// exported from (check values written by tools/train-reasoner/export.py), and greedy decoding
// solves fixed easy problems from the held-out test split.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, type Model } from '../lib/index.js';
import { defaultModelPath } from '../lib/default-model.js';
import { extractAnswer } from '../tools/reasoning-data/answer.js';
import { makeProblem } from '../tools/reasoning-data/problems.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHECK = path.join(ROOT, 'tools/train-reasoner/fixtures/check-logits.json');

interface Check {
  cases: { text: string; tokens: number[]; top_ids: number[][]; top_logits: number[][] }[];
}

// PyTorch ran the F16-rounded weights in f32; weft also rounds activations to F16 before each
// matrix product (ggml's vec_dot_type for F16 weights), which moved them by under 2e-3 on an early checkpoint.
const TOL = 0.02;

let model: Model;
beforeAll(async () => { model = await loadModel(defaultModelPath(), { threads: 2, kvType: 'f32' }); });
afterAll(async () => { await model?.dispose(); });

describe('shipped reasoner', () => {
  it('is a small GQA llama with the trainer\'s vocabulary', () => {
    expect(statSync(defaultModelPath()).size).toBeLessThan(20 * 2 ** 20);
    expect(model.info.arch).toBe('llama');
    expect(model.info.kvHeads).toBeLessThan(model.info.heads);
    expect(model.info.tiedOutput).toBe(true);
    expect(model.info.tokenizer).toBe('spm');
    expect(model.tokenizer.bos).toBe(1);
    expect(model.tokenizer.eos).toBe(2);
  });

  it('gives the logits PyTorch gave at every position of the check prompts', async () => {
    const check = JSON.parse(readFileSync(CHECK, 'utf8')) as Check;
    expect(check.cases.length).toBeGreaterThanOrEqual(4);
    const V = model.info.vocabSize;
    for (const c of check.cases) {
      // The ids weft's tokenizer gives the text are the ones the check was computed on.
      expect(Array.from(model.tokenize(c.text))).toEqual(c.tokens);
      const logits = await model.evaluate(c.tokens, { allLogits: true });
      let maxDiff = 0;
      for (let p = 0; p < c.tokens.length; p++) {
        c.top_ids[p].forEach((id, j) => { maxDiff = Math.max(maxDiff, Math.abs(logits[p * V + id] - c.top_logits[p][j])); });
        // Same argmax wherever PyTorch's top two are not a near-tie.
        if (c.top_logits[p][0] - c.top_logits[p][1] > 2 * TOL) {
          const row = logits.subarray(p * V, (p + 1) * V);
          expect(row.indexOf(Math.max(...row)), `${JSON.stringify(c.text)} position ${p}`).toBe(c.top_ids[p][0]);
        }
      }
      expect(maxDiff, JSON.stringify(c.text)).toBeLessThan(TOL);
    }
  });

  it('solves the first 20 one-step test-split problems greedily', async () => {
    const problems = Array.from({ length: 20 }, (_, i) => makeProblem('test', 1, i));
    const outs = await Promise.all(problems.map((p) => model.generate(p.question + '\n', { temperature: 0, maxTokens: 64 }).result));
    const wrong = problems.flatMap((p, i) => (extractAnswer(outs[i].text) === p.answer ? [] : [`${p.question} -> ${JSON.stringify(outs[i].text)}`]));
    expect(wrong).toEqual([]);
    // The trained format: step lines, then the answer line, then end of sequence.
    expect(outs[0].text).toBe(problems[0].solution);
    expect(outs.every((o) => o.finishReason === 'eos')).toBe(true);
  });
});
