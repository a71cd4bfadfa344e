// StreamDecoder: text arrives token by token, and characters whose UTF-8 bytes are split
// across tokens (SPM byte-fallback tokens, GPT-2 byte-level tokens) come out whole.
import { beforeAll, describe, expect, it } from 'vitest';
import { readGgufMetadata } from '../lib/native.js';
import { createTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { HAVE_REFDATA, refPath } from './refdata.js';

const TEXTS = [
  'CJK & emoji: 你好，世界 こんにちは 안녕하세요 🦙🚀 👍🏽 ❤️ 👨‍👩‍👧',
  '🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～',
];
const BROKEN = /\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const VOCABS = [
  ['llama-spm', ['tokenizer', 'llama.cpp-vocab', 'ggml-vocab-llama-spm.gguf']],
  ['gpt-2', ['tokenizer', 'llama.cpp-vocab', 'ggml-vocab-gpt-2.gguf']],
  ['stories260K', ['models', 'stories260Ktok512.gguf']],
] as const;

for (const [name, file] of VOCABS) {
  describe.skipIf(!HAVE_REFDATA)(`StreamDecoder, ${name}`, () => {
    let tok: Tokenizer;
    beforeAll(async () => {
      tok = createTokenizer(await readGgufMetadata(refPath(...file)));
    });

    it.each(TEXTS)('streams %s whole, and equal to decode()', (text) => {
      const ids = tok.encode(text);
      const stream = tok.createStreamDecoder();
      const pushed = Array.from(ids, (id) => stream.push(id));
      const rest = stream.flush();
      for (const s of pushed) expect(s).not.toMatch(BROKEN);
      expect(pushed.join('') + rest).toBe(tok.decode(ids));
      expect(rest).toBe('');
      // The text really splits characters across tokens: some tokens give no text of their own.
      const partial = Array.from(ids).filter((id, i) => pushed[i] === '' && tok.tokenBytes(id).length > 0);
      expect(partial.length).toBeGreaterThan(0);
    });
  });
}

describe.skipIf(!HAVE_REFDATA)('StreamDecoder, ends and specials', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = createTokenizer(await readGgufMetadata(refPath('tokenizer', 'llama.cpp-vocab', 'ggml-vocab-llama-spm.gguf')));
  });

  it('flushes an unfinished character as U+FFFD and starts afresh', () => {
    const llama = Array.from(tok.encode('🦙', { addBos: false }));
    // '▁' then the four byte tokens of U+1F999.
    expect(llama.slice(1).map((id) => Buffer.from(tok.tokenBytes(id)).toString('hex'))).toEqual(['f0', '9f', 'a6', '99']);
    const stream = tok.createStreamDecoder();
    expect(llama.slice(0, 3).map((id) => stream.push(id)).join('')).toBe(' ');
    expect(stream.flush()).toBe('\uFFFD');
    expect(llama.map((id) => stream.push(id)).join('') + stream.flush()).toBe(' 🦙');
  });

  it('renders control tokens only when asked to', () => {
    const ids = tok.encode('Hi');
    const plain = tok.createStreamDecoder();
    expect(Array.from(ids, (id) => plain.push(id)).join('')).toBe(' Hi');
    const special = tok.createStreamDecoder({ special: true });
    expect(Array.from(ids, (id) => special.push(id)).join('')).toBe('<s> Hi');
  });
});
