// The shipped reasoner's vocabulary is single characters, byte fallback and space-led word
// pieces (tools/train-reasoner/vocab.py). The trainer tokenized its data in Python; weft must
// give the very same ids for the same text, or the model would run on inputs it never saw.
// The fixture holds dataset samples and awkward texts with the Python side's ids.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, type Model } from '../lib/index.js';
import { defaultModelPath } from '../lib/default-model.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../tools/train-reasoner/fixtures/tokenizer-sample.json');

let model: Model;
beforeAll(async () => { model = await loadModel(defaultModelPath(), { threads: 1 }); });
afterAll(async () => { await model?.dispose(); });

describe('reasoner tokenizer', () => {
  const { cases } = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { cases: { text: string; ids: number[] }[] };

  it('fixture covers the dataset and edge cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
    expect(cases.some((c) => c.text.includes('\u00e9'))).toBe(true);
  });

  it('weft tokenizes every fixture text to the trainer\'s ids, and decodes them back', () => {
    for (const c of cases) {
      expect(Array.from(model.tokenize(c.text, { addBos: false })), JSON.stringify(c.text)).toEqual(c.ids);
      expect(model.detokenize(c.ids)).toBe(c.text);
    }
  });

  it('prompts start with BOS and keep digits one token each', () => {
    const ids = Array.from(model.tokenize('Start at 123.'));
    expect(ids[0]).toBe(model.tokenizer.bos);
    expect(model.detokenize(ids.slice(-4, -1))).toBe('123');
    expect(ids.slice(-4, -1).map((t) => model.detokenize([t]))).toEqual(['1', '2', '3']);
  });
});
