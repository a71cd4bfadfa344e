/**
 * The vocabulary as llama.cpp's llama_vocab::load reads it from GGUF metadata: token texts,
 * scores and attributes, the special ids with llama.cpp's defaults, the add_* flags, the
 * end-of-generation set, and the special tokens that are split out of text before
 * tokenizing. Every check that llama.cpp makes when loading is made here, as a WeftError.
 */
import { WeftError } from '../errors.js';
import type { GgufMetadata, GgufValue } from '../gguf/types.js';
import { preTokenizer } from './pre-tokenizers.js';

/** llama.cpp's token attributes (bit flags); GGUF stores a token *type* that maps onto them. */
export const Attr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
} as const;

/** tokenizer.ggml.token_type value -> attribute: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
const TYPE_TO_ATTR = [Attr.UNDEFINED, Attr.NORMAL, Attr.UNKNOWN, Attr.CONTROL, Attr.USER_DEFINED, Attr.UNUSED, Attr.BYTE];

/**
 * Tokens that end generation, found by their text as llama.cpp does (converters often leave
 * them out of the eot/eom keys). llama.cpp also forces them to CONTROL, which decides both
 * how they decode and whether text can spell them when special parsing is off.
 */
const EOG_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|eom_id|>',
  '<EOT>', '_<EOT>', '<|end_of_text|>', '<｜end▁of▁sentence｜>',
]);

/**
 * Fill-in-the-middle padding, repository-name and file-separator tokens: llama.cpp ends
 * generation at these too (a code model that opens another file is done with this one). Each
 * comes from its key, else from its text; where several texts match, llama.cpp takes whichever
 * its hash map yields first, we the lowest id.
 */
const FIM_EOG: readonly (readonly [key: string, texts: readonly string[]])[] = [
  ['fim_pad_token_id', ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>']],
  ['fim_rep_token_id', ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>']],
  ['fim_sep_token_id', ['<|file_sep|>']],
];

export type TokenizerModel = 'llama' | 'gpt2';

export interface Vocab {
  readonly model: TokenizerModel;
  readonly pre: string;                 // tokenizer.ggml.pre ('default' when absent)
  readonly tokens: readonly string[];   // [n_vocab]
  readonly scores: Float32Array;        // [n_vocab] SPM merge priority (0 when the key is absent)
  readonly attrs: Uint8Array;           // [n_vocab] Attr flags
  readonly ids: ReadonlyMap<string, number>;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly unk: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly addSpacePrefix: boolean;
  readonly eog: ReadonlySet<number>;
  /** Control, user-defined and unknown ids, longest text (in UTF-8 bytes) first. */
  readonly specials: readonly number[];
  /** BPE merges, "left right" in rank order (empty for SPM). */
  readonly merges: readonly string[];
}

const K = 'tokenizer.ggml.';

function formatError(message: string): WeftError {
  return new WeftError('E_MODEL_FORMAT', message);
}

function str(meta: GgufMetadata, key: string): string | undefined {
  const v = meta[K + key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw formatError(`${K + key} must be a string`);
  return v;
}

function bool(meta: GgufMetadata, key: string): boolean | undefined {
  const v = meta[K + key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw formatError(`${K + key} must be a bool`);
  return v;
}

/**
 * A special id from its key, else `fallback`. Like llama.cpp, an id outside the vocabulary
 * (stories260K stores padding_token_id = 0xFFFFFFFF for "none") keeps the default.
 */
function specialId(meta: GgufMetadata, key: string, nVocab: number, fallback: number | undefined): number | undefined {
  const v: GgufValue | undefined = meta[K + key];
  const inVocab = (id: number) => Number.isInteger(id) && id >= 0 && id < nVocab;
  const dflt = fallback !== undefined && inVocab(fallback) ? fallback : undefined;
  if (v === undefined) return dflt;
  if (typeof v !== 'number' && typeof v !== 'bigint') throw formatError(`${K + key} must be an integer token id`);
  const id = Number(v);
  return inVocab(id) ? id : dflt;
}

export function readVocab(meta: GgufMetadata): Vocab {
  const model = str(meta, 'model');
  if (model === undefined) throw formatError(`${K}model is missing`);
  if (model !== 'llama' && model !== 'gpt2') {
    throw new WeftError('E_UNSUPPORTED', `tokenizer model '${model}' is not supported (supported: 'llama' (SPM), 'gpt2' (BPE))`);
  }
  const spm = model === 'llama';

  const rawTokens = meta[K + 'tokens'];
  if (!Array.isArray(rawTokens) || rawTokens.length === 0 || rawTokens.some((t) => typeof t !== 'string')) {
    throw formatError(`${K}tokens must be a non-empty array of strings`);
  }
  const n = rawTokens.length;
  // An empty token would match everywhere as a special token; llama.cpp renames it the same way.
  const tokens = (rawTokens as string[]).map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));

  const scores = new Float32Array(n);
  const rawScores = meta[K + 'scores'];
  if (rawScores !== undefined) {
    if (!(rawScores instanceof Float32Array) && !(rawScores instanceof Int32Array)) {
      throw formatError(`${K}scores must be an array of float32 or int32`);
    }
    if (rawScores.length < n) throw formatError(`${K}scores has ${rawScores.length} entries for ${n} tokens`);
    scores.set(rawScores.subarray(0, n));
  }

  const attrs = new Uint8Array(n).fill(Attr.NORMAL);
  const types = meta[K + 'token_type'];
  if (types !== undefined) {
    if (!(types instanceof Int32Array)) throw formatError(`${K}token_type must be an array of int32`);
    if (types.length < n) throw formatError(`${K}token_type has ${types.length} entries for ${n} tokens`);
    for (let i = 0; i < n; i++) attrs[i] = TYPE_TO_ATTR[types[i]] ?? Attr.UNDEFINED;
  }

  // Later duplicates win, as in llama.cpp's token_to_id[word] = i.
  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) ids.set(tokens[i], i);

  // llama.cpp's per-model defaults, kept so that bos/eos say what llama.cpp would use: LLaMA's
  // ids for SPM, 11 for BPE.
  const bos = specialId(meta, 'bos_token_id', n, spm ? 1 : 11);
  const eos = specialId(meta, 'eos_token_id', n, spm ? 2 : 11);
  const unk = specialId(meta, 'unknown_token_id', n, spm ? 0 : undefined);
  const eot = specialId(meta, 'eot_token_id', n, undefined);
  const eom = specialId(meta, 'eom_token_id', n, undefined);

  const pre = spm ? '' : (str(meta, 'pre') || 'default');
  // Defaults as llama.cpp's: SPM adds BOS, BPE only for pre-tokenizers that say so (Llama 3).
  const addBos = bool(meta, 'add_bos_token') ?? (spm || (preTokenizer(pre)?.addBos ?? false));
  const addEos = bool(meta, 'add_eos_token') ?? false;
  const addSpacePrefix = bool(meta, 'add_space_prefix') ?? spm;
  if (addBos && bos === undefined) throw formatError(`${K}add_bos_token is true but there is no valid bos_token_id`);
  if (addEos && eos === undefined) throw formatError(`${K}add_eos_token is true but there is no valid eos_token_id`);

  const eog = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (EOG_TEXTS.has(tokens[i])) {
      eog.add(i);
      attrs[i] |= Attr.CONTROL;
    }
  }
  for (const id of [eos, eot, eom]) if (id !== undefined) eog.add(id);
  for (const [key, texts] of FIM_EOG) {
    const byKey = specialId(meta, key, n, undefined);
    if (byKey !== undefined) {
      eog.add(byKey);
      continue;
    }
    const found = texts.map((t) => ids.get(t)).filter((i) => i !== undefined).sort((a, b) => a - b);
    if (found.length === 0) continue;
    eog.add(found[0]);
    attrs[found[0]] |= Attr.CONTROL;  // as llama.cpp does with every special token it finds by text
  }

  const specials: number[] = [];
  for (let i = 0; i < n; i++) if (attrs[i] & (Attr.CONTROL | Attr.USER_DEFINED | Attr.UNKNOWN)) specials.push(i);
  const bytes = new Map(specials.map((id) => [id, Buffer.byteLength(tokens[id], 'utf8')]));
  specials.sort((a, b) => bytes.get(b)! - bytes.get(a)! || a - b);

  let merges: string[] = [];
  if (!spm) {
    const m = meta[K + 'merges'];
    if (!Array.isArray(m) || m.some((x) => typeof x !== 'string')) throw formatError(`${K}merges (an array of strings) is required for BPE`);
    merges = m as string[];
  }

  return { model, pre, tokens, scores, attrs, ids, bos, eos, unk, addBos, addEos, addSpacePrefix, eog, specials, merges };
}
