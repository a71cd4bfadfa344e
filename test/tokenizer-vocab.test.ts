// Tokenizer rules on small hand-made vocabularies (no reference data needed): metadata
// validation, merge order and ties, special tokens, EOG detection, encode options, and the
// BPE pre-tokenizers.
import { describe, expect, it } from 'vitest';
import type { GgufMetadata } from '../lib/gguf/types.js';
import { WeftError } from '../lib/errors.js';
import { createTokenizer } from '../lib/tokenizer/index.js';
import { preTokenize, preTokenizer } from '../lib/tokenizer/pre-tokenizers.js';

const BYTE_TOKENS = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);

/** SPM: <unk> <s> </s>, 256 byte tokens, then `pieces` as [text, score, type?]. */
function spmMeta(pieces: [string, number, number?][], extra: GgufMetadata = {}): GgufMetadata {
  const tokens = ['<unk>', '<s>', '</s>', ...BYTE_TOKENS, ...pieces.map((p) => p[0])];
  return {
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.scores': Float32Array.from([0, 0, 0, ...BYTE_TOKENS.map(() => 0), ...pieces.map((p) => p[1])]),
    'tokenizer.ggml.token_type': Int32Array.from([2, 3, 3, ...BYTE_TOKENS.map(() => 6), ...pieces.map((p) => p[2] ?? 1)]),
    ...extra,
  };
}
const SPM_BASE = 3 + 256;  // id of the first piece

/** Byte-level BPE over a few letters; 'Ġ' is the alphabet's space. */
function bpeMeta(tokens: string[], merges: string[], extra: GgufMetadata = {}): GgufMetadata {
  return {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': 'gpt-2',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': new Int32Array(tokens.length).fill(1),
    'tokenizer.ggml.merges': merges,
    'tokenizer.ggml.eos_token_id': 0,
    ...extra,
  };
}

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    return (e as WeftError).code;
  }
}

describe('SPM merges', () => {
  it('merges the highest-scoring pair first', () => {
    const tok = createTokenizer(spmMeta([['▁', -9], ['a', -9], ['b', -9], ['c', -9], ['ab', -1], ['bc', -2]], { 'tokenizer.ggml.add_space_prefix': false }));
    expect(Array.from(tok.encode('abc', { addBos: false }))).toEqual([SPM_BASE + 4, SPM_BASE + 3]);  // ab, c
  });

  it('breaks score ties by the leftmost pair', () => {
    const tok = createTokenizer(spmMeta([['▁', -9], ['a', -9], ['aa', -1]], { 'tokenizer.ggml.add_space_prefix': false }));
    expect(Array.from(tok.encode('aaa', { addBos: false }))).toEqual([SPM_BASE + 2, SPM_BASE + 1]);  // aa, a
  });

  it('falls back to byte tokens for characters the vocabulary lacks', () => {
    const tok = createTokenizer(spmMeta([['▁', -9]]));
    expect(Array.from(tok.encode('é', { addBos: false }))).toEqual([SPM_BASE, 3 + 0xc3, 3 + 0xa9]);
    expect(tok.decode(tok.encode('é'))).toBe(' é');
  });

  it('prefixes a space unless add_space_prefix is false', () => {
    const pieces: [string, number][] = [['▁', -9], ['a', -9]];
    expect(Array.from(createTokenizer(spmMeta(pieces)).encode('a', { addBos: false }))).toEqual([SPM_BASE, SPM_BASE + 1]);
    expect(Array.from(createTokenizer(spmMeta(pieces, { 'tokenizer.ggml.add_space_prefix': false })).encode('a', { addBos: false }))).toEqual([SPM_BASE + 1]);
  });
});

describe('BPE merges', () => {
  const tokens = ['<|endoftext|>', 'a', 'b', 'c', 'Ġ', 'ab', 'bc', 'abc', 'Ġa'];
  it('merges by rank, lowest first', () => {
    const tok = createTokenizer(bpeMeta(tokens, ['a b', 'b c', 'ab c']));
    expect(Array.from(tok.encode('abc'))).toEqual([7]);
    const reversed = createTokenizer(bpeMeta(tokens, ['b c', 'a b', 'ab c']));
    expect(Array.from(reversed.encode('abc'))).toEqual([1, 6]);  // a, bc
  });

  it('maps the byte alphabet back to text, spaces included', () => {
    const tok = createTokenizer(bpeMeta(tokens, ['Ġ a', 'a b']));
    expect(Array.from(tok.encode('ab ab'))).toEqual([5, 8, 2]);
    expect(tok.decode([5, 8, 2])).toBe('ab ab');
    expect(Array.from(tok.tokenBytes(4))).toEqual([0x20]);
  });

  it('keeps a leading U+FEFF when decoding (it is text, not a byte-order mark)', () => {
    const tok = createTokenizer(bpeMeta(['ï', '»', '¿', 'h', 'i'], []));  // U+FEFF is EF BB BF
    const ids = tok.encode('\uFEFFhi');
    expect(Array.from(ids)).toEqual([0, 1, 2, 3, 4]);
    expect(tok.decode(ids)).toBe('\uFEFFhi');
    const stream = tok.createStreamDecoder();
    expect(Array.from(ids, (id) => stream.push(id)).join('') + stream.flush()).toBe('\uFEFFhi');
  });

  it("takes a word that is a token whole under Llama 3's ignore_merges, where merging would split it", () => {
    // 'abc' is a token, but no merge path reaches it: 'a b' then 'b c' is ranked first.
    const meta = bpeMeta(tokens, ['b c', 'a b'], { 'tokenizer.ggml.add_bos_token': false });
    expect(Array.from(createTokenizer(meta).encode('abc'))).toEqual([1, 6]);
    expect(Array.from(createTokenizer({ ...meta, 'tokenizer.ggml.pre': 'llama-bpe' }).encode('abc'))).toEqual([7]);
  });

  it('adds BOS by default for Llama 3 vocabularies, as llama.cpp does, unless add_bos_token says no', () => {
    const meta = bpeMeta(tokens, [], { 'tokenizer.ggml.pre': 'llama-bpe', 'tokenizer.ggml.bos_token_id': 0 });
    expect(Array.from(createTokenizer(meta).encode('a'))).toEqual([0, 1]);
    expect(createTokenizer(meta).addBos).toBe(true);
    expect(Array.from(createTokenizer({ ...meta, 'tokenizer.ggml.add_bos_token': false }).encode('a'))).toEqual([1]);
    expect(createTokenizer({ ...meta, 'tokenizer.ggml.pre': 'qwen2' }).addBos).toBe(false);
  });

  it('adds no BOS without add_bos_token, and ignores the eos default outside the vocabulary', () => {
    const tok = createTokenizer(bpeMeta(tokens, []));
    expect(tok.encode('a')).toEqual(Int32Array.of(1));
    expect(tok.eos).toBe(0);
    expect(tok.bos).toBeUndefined();  // llama.cpp's BPE default, 11, is not a token here
  });
});

describe('special tokens', () => {
  const meta = spmMeta([['▁', -9], ['<', -9], ['>', -9], ['t', -9], ['x', -9], ['<tool>', 0, 4], ['<|im_end|>', -9, 1]]);
  const TOOL = SPM_BASE + 5;
  const IM_END = SPM_BASE + 6;

  it('splits control tokens out of text only with parseSpecial', () => {
    const tok = createTokenizer(meta);
    expect(Array.from(tok.encode('x</s>x', { addBos: false, parseSpecial: true }))).toEqual([SPM_BASE, SPM_BASE + 4, 2, SPM_BASE, SPM_BASE + 4]);
    expect(Array.from(tok.encode('x</s>x', { addBos: false }))).not.toContain(2);
  });

  it('splits the longest special token first', () => {
    const tok = createTokenizer(spmMeta([['▁', -9], ['x', -9], ['ab', 0, 4], ['abc', 0, 4]]));
    expect(Array.from(tok.encode('xabcx', { addBos: false }))).toEqual([SPM_BASE, SPM_BASE + 1, SPM_BASE + 3, SPM_BASE, SPM_BASE + 1]);
  });

  it('always splits user-defined tokens out, and decodes them as their text', () => {
    const tok = createTokenizer(meta);
    const ids = Array.from(tok.encode('x<tool>x', { addBos: false }));
    expect(ids).toContain(TOOL);
    expect(tok.decode(ids)).toBe(' x<tool> x');
  });

  it('knows end-of-generation tokens by name and treats them as control tokens, as llama.cpp does', () => {
    const tok = createTokenizer(meta);
    expect(tok.isEog(IM_END)).toBe(true);
    expect(tok.isEog(2)).toBe(true);
    expect(tok.isEog(1)).toBe(false);
    expect(tok.decode([IM_END])).toBe('');
    expect(tok.decode([IM_END], { special: true })).toBe('<|im_end|>');
    expect(Array.from(tok.encode('<|im_end|>', { addBos: false }))).not.toContain(IM_END);
    expect(Array.from(tok.encode('<|im_end|>', { addBos: false, parseSpecial: true }))).toEqual([IM_END]);
  });

  it('ends generation at fill-in-the-middle pad, repo and file-separator tokens, by key or by text', () => {
    const tokens = ['<|endoftext|>', 'a', '<|fim_pad|>', '<reponame>', '<|file_sep|>', '<fim_pad>'];
    const tok = createTokenizer(bpeMeta(tokens, []));
    expect(tok.eogIds).toEqual([0, 2, 3, 4]);  // eos; pad: the lowest id of the two texts; repo; sep
    const byKey = createTokenizer(bpeMeta(tokens, [], { 'tokenizer.ggml.fim_pad_token_id': 5 }));
    expect(byKey.eogIds).toEqual([0, 3, 4, 5]);
    // Found by text, they become control tokens: text cannot spell them without special parsing.
    expect(Array.from(tok.encode('<reponame>'))).not.toContain(3);
  });

  it('takes eot and eom ids from their keys', () => {
    const tok = createTokenizer(spmMeta([['▁', -9], ['x', -9]], { 'tokenizer.ggml.eot_token_id': SPM_BASE + 1 }));
    expect(tok.isEog(SPM_BASE + 1)).toBe(true);
    expect(tok.isEog(SPM_BASE)).toBe(false);
  });

  it('adds EOS when the vocabulary asks for it, or when told to', () => {
    const pieces: [string, number][] = [['▁', -9], ['x', -9]];
    expect(Array.from(createTokenizer(spmMeta(pieces, { 'tokenizer.ggml.add_eos_token': true })).encode('x'))).toEqual([1, SPM_BASE, SPM_BASE + 1, 2]);
    expect(Array.from(createTokenizer(spmMeta(pieces)).encode('x', { addEos: true, addBos: false }))).toEqual([SPM_BASE, SPM_BASE + 1, 2]);
    expect(Array.from(createTokenizer(spmMeta(pieces)).encode(''))).toEqual([1]);
  });
});

describe('errors', () => {
  const good = spmMeta([['▁', -9]]);

  it('rejects tokenizer models it does not implement, naming them', () => {
    expect(() => createTokenizer({ ...good, 'tokenizer.ggml.model': 'bert' })).toThrow(/'bert'/);
    expect(codeOf(() => createTokenizer({ ...good, 'tokenizer.ggml.model': 'bert' }))).toBe('E_UNSUPPORTED');
    expect(codeOf(() => createTokenizer(bpeMeta(['a'], [], { 'tokenizer.ggml.pre': 'no-such-pre' })))).toBe('E_UNSUPPORTED');
  });

  it('rejects missing or inconsistent tokenizer keys', () => {
    const scores = good['tokenizer.ggml.scores'] as Float32Array;
    expect(codeOf(() => createTokenizer({ ...good, 'tokenizer.ggml.scores': scores.subarray(0, scores.length - 1) }))).toBe('E_MODEL_FORMAT');
    expect(codeOf(() => createTokenizer({ ...good, 'tokenizer.ggml.token_type': new Int32Array(5) }))).toBe('E_MODEL_FORMAT');
    expect(codeOf(() => createTokenizer({ ...good, 'tokenizer.ggml.token_type': new Float32Array(260) }))).toBe('E_MODEL_FORMAT');
    const { 'tokenizer.ggml.tokens': _tokens, ...noTokens } = good;
    expect(codeOf(() => createTokenizer(noTokens))).toBe('E_MODEL_FORMAT');
    const { 'tokenizer.ggml.model': _model, ...noModel } = good;
    expect(codeOf(() => createTokenizer(noModel))).toBe('E_MODEL_FORMAT');
    const { 'tokenizer.ggml.merges': _merges, ...noMerges } = bpeMeta(['a'], []);
    expect(codeOf(() => createTokenizer(noMerges))).toBe('E_MODEL_FORMAT');
    expect(codeOf(() => createTokenizer({ ...good, 'tokenizer.ggml.bos_token_id': 'one' }))).toBe('E_MODEL_FORMAT');
    expect(codeOf(() => createTokenizer(bpeMeta(['a'], [], { 'tokenizer.ggml.add_bos_token': true })))).toBe('E_MODEL_FORMAT');
  });

  it('keeps the default for a special id outside the vocabulary, as llama.cpp does', () => {
    const tok = createTokenizer({ ...good, 'tokenizer.ggml.eos_token_id': 0xffffffff, 'tokenizer.ggml.padding_token_id': 0xffffffff });
    expect(tok.eos).toBe(2);
  });

  it('rejects bad arguments', () => {
    const tok = createTokenizer(good);
    expect(codeOf(() => tok.decode([tok.vocabSize]))).toBe('E_INVALID_ARGUMENT');
    expect(codeOf(() => tok.decode([-1]))).toBe('E_INVALID_ARGUMENT');
    expect(codeOf(() => tok.tokenBytes(1.5))).toBe('E_INVALID_ARGUMENT');
    expect(codeOf(() => tok.encode(42 as unknown as string))).toBe('E_INVALID_ARGUMENT');
    expect(codeOf(() => tok.encode('x', { addBos: 'yes' as unknown as boolean }))).toBe('E_INVALID_ARGUMENT');
    expect(codeOf(() => createTokenizer(bpeMeta(['a'], [])).encode('a', { addBos: true }))).toBe('E_INVALID_ARGUMENT');
  });
});

describe('BPE pre-tokenizers', () => {
  const gpt2 = preTokenizer('gpt-2')!.regexes;

  it("splits as llama.cpp's GPT-2 matcher does: case-sensitive contractions", () => {
    expect(preTokenize("I've We'Ve 'RE", gpt2)).toEqual(['I', "'ve", ' We', "'", 'Ve', " '", 'RE']);
    expect(preTokenize('Hello, world 12345!  \n', gpt2)).toEqual(['Hello', ',', ' world', ' 12345', '!', '  \n']);
    expect(preTokenize('a  b', gpt2)).toEqual(['a', ' ', ' b']);
  });

  it("uses Unicode White_Space for \\s, like llama.cpp's tables (not JavaScript's \\s)", () => {
    // U+FEFF is not White_Space (JS \s has it); U+0085 is (JS \s lacks it).
    expect(preTokenize('a!\uFEFF!\u0085', gpt2)).toEqual(['a', '!\uFEFF!', '\u0085']);
  });

  it("chains 'default' as llama.cpp does: punctuation, GPT-2, digit runs, ASCII digit triples", () => {
    expect(preTokenize('Hello, world 12345!', preTokenizer('default')!.regexes)).toEqual(['Hello', ',', ' world', ' ', '123', '45', '!']);
  });

  it('cuts numbers in threes for Llama 3, digit by digit for Qwen2 and SmolLM', () => {
    const text = "I'M 12345 abc\n\n  x";
    expect(preTokenize(text, preTokenizer('llama-bpe')!.regexes)).toEqual(['I', "'M", ' ', '123', '45', ' abc', '\n\n', ' ', ' x']);
    expect(preTokenize(text, preTokenizer('qwen2')!.regexes)).toEqual(['I', "'M", ' ', '1', '2', '3', '4', '5', ' abc', '\n\n', ' ', ' x']);
    expect(preTokenize(text, preTokenizer('smollm')!.regexes)).toEqual(['I', "'", 'M', ' ', '1', '2', '3', '4', '5', ' abc', '\n\n ', ' x']);
  });

  it('lets a letter run take one leading symbol in the Llama 3 family, and keeps newlines after punctuation', () => {
    expect(preTokenize('_foo (bar);\n\nbaz', preTokenizer('qwen2')!.regexes)).toEqual(['_foo', ' (', 'bar', ');\n\n', 'baz']);
  });

  it('knows only the names it implements', () => {
    expect(preTokenizer('gpt-4o')).toBeUndefined();
    expect(preTokenizer('toString')).toBeUndefined();
  });
});
