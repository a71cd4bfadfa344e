// model.chat() and generate({ messages }) end to end on a small GGUF written here: a llama
// graph with a ChatML byte-level BPE vocabulary and a chat template in its metadata. Its
// weights make it a bigram model — every layer is zero, so the residual stream at a position
// is the embedding of the token there, and the output matrix maps one-hot embeddings to a fixed
// successor — so greedy decoding after "<|im_start|>assistant\n" must say "Hi" and then end the
// turn with <|im_end|>, which only stops the generation if weft knows it ends generation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, WeftError, type Model } from '../lib/index.js';
import { GgufValueType as T } from '../lib/gguf/types.js';
import { arr, bool, f32, str, u32, writeGguf, type MetaEntry, type TensorSpec } from '../lib/gguf/writer.js';
import { BYTE_TO_CHAR } from '../lib/tokenizer/byte-alphabet.js';

const CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// Vocabulary: the 256 byte tokens in byte order (so a byte's id is its value), ChatML's
// control tokens, and merges that spell "user".
const TOKENS = [...BYTE_TO_CHAR, '<|endoftext|>', '<|im_start|>', '<|im_end|>', 'us', 'use', 'user'];
const [ENDOFTEXT, IM_START, IM_END, USER] = [256, 257, 258, 261];
const MERGES = ['u s', 'us e', 'use r'];
const TYPES = Int32Array.from(TOKENS, (_, i) => (i >= 256 && i < 259 ? 3 : 1));
const NL = 0x0a, H = 0x48, I = 0x69;
/** The bigram chain greedy decoding follows: after '\n' comes 'H', then 'i', then <|im_end|>. */
const NEXT: [number, number][] = [[NL, H], [H, I], [I, IM_END]];

const EMBD = 64, FF = 128, HEADS = 4, KV_HEADS = 2;

function tinyChatModel(template: string | undefined): { meta: MetaEntry[]; tensors: TensorSpec[] } {
  const nVocab = TOKENS.length;
  const meta = [
    str('general.architecture', 'llama'), str('general.name', 'chat-tiny'),
    u32('llama.context_length', 256), u32('llama.embedding_length', EMBD), u32('llama.block_count', 1),
    u32('llama.feed_forward_length', FF), u32('llama.attention.head_count', HEADS),
    u32('llama.attention.head_count_kv', KV_HEADS), f32('llama.rope.freq_base', 10000),
    f32('llama.attention.layer_norm_rms_epsilon', 1e-5), u32('llama.rope.dimension_count', EMBD / HEADS),
    u32('llama.vocab_size', nVocab),
    str('tokenizer.ggml.model', 'gpt2'), str('tokenizer.ggml.pre', 'qwen2'),
    arr('tokenizer.ggml.tokens', T.STRING, TOKENS), arr('tokenizer.ggml.token_type', T.INT32, TYPES),
    arr('tokenizer.ggml.merges', T.STRING, MERGES),
    u32('tokenizer.ggml.bos_token_id', ENDOFTEXT), u32('tokenizer.ggml.eos_token_id', IM_END),
    bool('tokenizer.ggml.add_bos_token', false),
    ...(template === undefined ? [] : [str('tokenizer.chat_template', template)]),
  ];
  // [n_vocab][EMBD]: token NEXT[k][0] is the one-hot e_k; every other token embeds as zero.
  const embd = new Float32Array(nVocab * EMBD);
  // [n_vocab][EMBD]: row NEXT[k][1] reads e_k, so after token NEXT[k][0] its logit is the only non-zero one.
  const out = new Float32Array(nVocab * EMBD);
  NEXT.forEach(([from, to], k) => {
    embd[from * EMBD + k] = 1;
    out[to * EMBD + k] = 1;
  });
  const ones = (name: string): TensorSpec => ({ name, type: 'F32', shape: [EMBD], data: new Float32Array(EMBD).fill(1) });
  const zeros = (name: string, cols: number, rows: number): TensorSpec => ({ name, type: 'F32', shape: [cols, rows], data: new Float32Array(cols * rows) });
  const kvDim = KV_HEADS * (EMBD / HEADS);
  const tensors: TensorSpec[] = [
    { name: 'token_embd.weight', type: 'F32', shape: [EMBD, nVocab], data: embd },
    ones('output_norm.weight'),
    { name: 'output.weight', type: 'F32', shape: [EMBD, nVocab], data: out },
    ones('blk.0.attn_norm.weight'), zeros('blk.0.attn_q.weight', EMBD, EMBD), zeros('blk.0.attn_k.weight', EMBD, kvDim),
    zeros('blk.0.attn_v.weight', EMBD, kvDim), zeros('blk.0.attn_output.weight', EMBD, EMBD), ones('blk.0.ffn_norm.weight'),
    zeros('blk.0.ffn_gate.weight', EMBD, FF), zeros('blk.0.ffn_up.weight', EMBD, FF), zeros('blk.0.ffn_down.weight', FF, EMBD),
  ];
  return { meta, tensors };
}

const bytes = (s: string) => Array.from(Buffer.from(s, 'utf8'));
// "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", tokenized by hand.
const PROMPT = [IM_START, USER, NL, ...bytes('Hello'), IM_END, NL, IM_START, ...bytes('assistant'), NL];

describe('chat generation on a GGUF that carries a chat template', () => {
  let dir: string;
  let model: Model;
  let bare: Model;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'weft-chat-'));
    const load = async (name: string, template: string | undefined) => {
      const { meta, tensors } = tinyChatModel(template);
      const file = path.join(dir, name);
      await writeGguf(file, meta, tensors);
      return loadModel(file, { threads: 2, kvCacheTokens: 256 });
    };
    model = await load('chat.gguf', CHATML);
    bare = await load('bare.gguf', undefined);
  });
  afterAll(async () => {
    await model?.dispose();
    await bare?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const messages = [{ role: 'user', content: 'Hello' }];

  it("renders the model's template and tokenizes its markup as control tokens", () => {
    expect(model.info.chatTemplate).toBe(CHATML);
    const text = model.applyChatTemplate(messages);
    expect(text).toBe('<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n');
    expect(Array.from(model.tokenize(text, { parseSpecial: true }))).toEqual(PROMPT);
  });

  it('chat() answers, stopping at <|im_end|>, which the text leaves out', async () => {
    const gen = model.chat(messages, { temperature: 0, maxTokens: 16 });
    let streamed = '';
    for await (const ev of gen) streamed += ev.text;
    const r = await gen.result;
    expect(r.text).toBe('Hi');
    expect(streamed).toBe('Hi');
    expect(r.finishReason).toBe('eos');
    expect(r.tokens).toEqual([H, I]);  // the end-of-generation token is not output
    expect(r.usage.promptTokens).toBe(PROMPT.length);
    expect(model.detokenize([H, I, IM_END])).toBe('Hi');
    expect(model.detokenize([H, I, IM_END], { special: true })).toBe('Hi<|im_end|>');
  });

  it('generate({ messages }) is the same request', async () => {
    const r = await model.generate({ messages, temperature: 0, maxTokens: 16 }).result;
    expect(r.text).toBe('Hi');
    expect(r.finishReason).toBe('eos');
    expect(r.usage.promptTokens).toBe(PROMPT.length);
  });

  it('a string prompt spells special tokens as their ids by default, and as text with parseSpecial: false', async () => {
    const text = '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n';
    const r = await model.generate(text, { temperature: 0, maxTokens: 16 }).result;
    expect(r.usage.promptTokens).toBe(PROMPT.length);
    expect(r.text).toBe('Hi');
    const plain = await model.generate(text, { temperature: 0, maxTokens: 4, parseSpecial: false }).result;
    expect(plain.usage.promptTokens).toBeGreaterThan(PROMPT.length);
  });

  it('stops at the length limit inside the answer', async () => {
    const r = await model.chat(messages, { temperature: 0, maxTokens: 1 }).result;
    expect(r).toMatchObject({ text: 'H', finishReason: 'length' });
  });

  it('a model without a template cannot chat unless one is given', async () => {
    expect(bare.info.chatTemplate).toBeUndefined();
    for (const f of [() => bare.chat(messages), () => bare.generate({ messages }), () => bare.applyChatTemplate(messages)]) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(WeftError);
      expect((err as WeftError).code).toBe('E_INVALID_ARGUMENT');
      expect((err as WeftError).message).toMatch(/no chat template/);
    }
    const r = await bare.chat(messages, { chatTemplate: CHATML, temperature: 0, maxTokens: 16 }).result;
    expect(r).toMatchObject({ text: 'Hi', finishReason: 'eos' });
  });

  it('rejects bad messages and a broken template before generating', () => {
    expect(() => model.chat([{ role: 'user' } as never])).toThrow(WeftError);
    expect(() => model.chat([])).toThrow(/non-empty/);
    expect(() => model.chat(messages, { chatTemplate: '{% if %}' })).toThrow(/chatTemplate option/);
  });
});
