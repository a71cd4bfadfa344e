// llama.cpp's tokenizer test vectors (../shared/refdata/tokenizer/llama.cpp-vocab), read the way
// test-tokenizer-0 reads them.
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { refPath } from '../refdata.js';

/**
 * test-tokenizer-0's format: the .inp file is every input followed by
 * "\n__ggml_vocab_test__\n"; the .out file has one line of space-separated ids per input.
 * They were made with add_special = false and parse_special = false (MANIFEST.md 2.4).
 */
export function inpOut(vocab: string): { text: string; ids: number[] }[] {
  const base = refPath('tokenizer', 'llama.cpp-vocab', `ggml-vocab-${vocab}.gguf`);
  const inputs = readFileSync(`${base}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  const outputs = readFileSync(`${base}.out`, 'utf8').split('\n');
  // Both files end with their separator, which leaves one empty string at the end.
  expect(inputs.pop()).toBe('');
  expect(outputs.pop()).toBe('');
  expect(outputs.length).toBe(inputs.length);
  return inputs.map((text, i) => ({ text, ids: outputs[i].split(' ').filter(Boolean).map(Number) }));
}

/** A test name for an input: quoted, cut at 40 characters. */
export const label = (text: string) => JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text);
