// The tokenizers inside real model files against what llama.cpp printed for them: the
// stories260K prompts, greedy continuations and perplexity text, and the prompt-A
// references of every model in refs/ (whose tokenizer keys were copied from the vocab GGUFs).
import { beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { readGgufMetadata } from '../lib/native.js';
import { createTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { HAVE_REFDATA, refJson, refPath } from './refdata.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe.skipIf(!HAVE_REFDATA)('stories260Ktok512.gguf', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = createTokenizer(await readGgufMetadata(refPath('models', 'stories260Ktok512.gguf')));
  });

  interface Greedy { prompt_text: string; prompt_tokens: number[]; greedy_tokens: number[]; greedy_pieces: string[]; continuation_text: string; prompt_plus_continuation_text: string }
  const results = HAVE_REFDATA ? refJson<{ results: Greedy[] }>('stories260K', 'greedy_64.json').results : [];

  it('reads the vocabulary as llama.cpp does (no add_bos key: SPM adds BOS; padding id 0xFFFFFFFF ignored)', () => {
    expect(tok.kind).toBe('spm');
    expect(tok.vocabSize).toBe(512);
    expect([tok.bos, tok.eos]).toEqual([1, 2]);
    expect(tok.isEog(2)).toBe(true);
    expect(tok.isEog(1)).toBe(false);
    expect(results.length).toBe(4);
  });

  it.each(results.map((r) => [r.prompt_text, r] as const))('%s: prompt tokens, pieces and continuation text', (_t, r) => {
    expect(Array.from(tok.encode(r.prompt_text))).toEqual(r.prompt_tokens);
    expect(r.greedy_tokens.map((t) => tok.decode([t]))).toEqual(r.greedy_pieces);
    expect(tok.decode(r.greedy_tokens)).toBe(r.continuation_text);
    // llama-cli prints the prompt's pieces too, with the space SPM put before it (MANIFEST 2.2).
    expect(tok.decode([...r.prompt_tokens, ...r.greedy_tokens])).toBe(' ' + r.prompt_plus_continuation_text);
  });

  it('tokenizes tinystories_8.txt into the 1104 tokens llama-perplexity scored', () => {
    const text = readFileSync(refPath('stories260K', 'tinystories_8.txt'), 'utf8');
    const expected = refJson<{ tokens: number[] }>('stories260K', 'perplexity.json').tokens;
    expect(expected.length).toBe(1104);
    expect(Array.from(tok.encode(text))).toEqual(expected);
  });
});

interface PromptRef {
  model_file: string;
  prompt: { source_text: string; tokens: number[]; token_pieces: string[] };
  greedy: { tokens: number[]; pieces_hex: string[]; text: string };
}

describe.skipIf(!HAVE_REFDATA)('refs/*.promptA.json', () => {
  const files = HAVE_REFDATA ? readdirSync(refPath('refs')).filter((f) => f.endsWith('.promptA.json')).sort() : [];

  it('covers every shipped model', () => {
    expect(files.length).toBe(11);
  });

  it.each(files)('%s: prompt tokens, piece bytes of the greedy tokens, and their text', async (file) => {
    const ref = refJson<PromptRef>('refs', file);
    const tok = createTokenizer(await readGgufMetadata(refPath(ref.model_file)));
    const n = ref.prompt.tokens.length;
    // llama-tokenize defaults: BOS as the vocab says, parse_special; the reference keeps 24 ids.
    expect(Array.from(tok.encode(ref.prompt.source_text, { parseSpecial: true }).subarray(0, n))).toEqual(ref.prompt.tokens);
    // token_pieces were printed with special = true (BOS shows as "<s>"); none is partial UTF-8 here.
    expect(ref.prompt.tokens.map((t) => tok.decode([t], { special: true }))).toEqual(ref.prompt.token_pieces);
    expect(ref.greedy.tokens.map((t) => hex(tok.tokenBytes(t)))).toEqual(ref.greedy.pieces_hex);
    expect(tok.decode(ref.greedy.tokens)).toBe(ref.greedy.text);
  });
});
