// The tokenizers against llama.cpp's own token ids for its vocab-only GGUFs: every case of
// the .inp/.out vectors llama.cpp's test-tokenizer-0 uses, and every case of the refdata
// tokenizer JSON (with and without BOS and special-token parsing).
import { beforeAll, describe, expect, it } from 'vitest';
import { readGgufMetadata } from '../lib/native.js';
import { createTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { HAVE_REFDATA, refJson, refPath } from './refdata.js';
import { inpOut, label } from './helpers/llamacpp-vectors.js';

interface JsonCase { text: string; ids: number[]; ids_no_bos_no_special: number[] }

const VOCABS = [
  // SPM's space prefix: decoding gives back the text with the leading space it was given
  // (none for empty text, which has no fragment to prefix).
  { name: 'llama-spm', kind: 'spm', roundTrip: (text: string) => (text === '' ? '' : ' ' + text) },
  { name: 'gpt-2', kind: 'bpe', roundTrip: (text: string) => text },
] as const;

for (const vocab of VOCABS) {
  describe.skipIf(!HAVE_REFDATA)(`ggml-vocab-${vocab.name}.gguf`, () => {
    const vectors = HAVE_REFDATA ? inpOut(vocab.name) : [];
    const cases = HAVE_REFDATA ? refJson<{ cases: JsonCase[] }>('tokenizer', `${vocab.name}.json`).cases : [];
    let tok: Tokenizer;
    beforeAll(async () => {
      tok = createTokenizer(await readGgufMetadata(refPath('tokenizer', 'llama.cpp-vocab', `ggml-vocab-${vocab.name}.gguf`)));
    });

    it('is the expected kind of tokenizer, with every vector present', () => {
      expect(tok.kind).toBe(vocab.kind);
      expect(vectors.length).toBe(46);
      expect(cases.length).toBe(10);
    });

    describe('.inp/.out vectors (no BOS, no special parsing)', () => {
      it.each(vectors.map((v, i) => [i, label(v.text), v] as const))('#%i %s', (_i, _l, v) => {
        expect(Array.from(tok.encode(v.text, { addBos: false }))).toEqual(v.ids);
      });
    });

    describe(`${vocab.name}.json`, () => {
      it.each(cases.map((c) => [label(c.text), c] as const))('%s: llama-tokenize defaults (BOS as the vocab says, parse_special)', (_l, c) => {
        expect(Array.from(tok.encode(c.text, { parseSpecial: true }))).toEqual(c.ids);
      });
      it.each(cases.map((c) => [label(c.text), c] as const))('%s: --no-bos --no-parse-special', (_l, c) => {
        expect(Array.from(tok.encode(c.text, { addBos: false }))).toEqual(c.ids_no_bos_no_special);
      });
    });

    it('decodes every encoded vector back to its text (SPM: plus the leading space it added)', () => {
      const texts = [...vectors.map((v) => v.text), ...cases.map((c) => c.text)];
      for (const text of texts) {
        expect(tok.decode(tok.encode(text))).toBe(vocab.roundTrip(text));
        expect(tok.decode(tok.encode(text, { addBos: false }))).toBe(vocab.roundTrip(text));
      }
    });
  });
}
