/**
 * Small random-weight GGUF models of the architectures weft runs, written for tests that hold
 * weft against the float64 reference (ref-forward.ts): F32 tensors drawn from a seeded normal,
 * scaled as refdata's random models are, with a llama-spm style vocabulary.
 */
import path from 'node:path';
import { GgufValueType as T } from '../../lib/gguf/types.js';
import { arr, bool, f32, str, u32, writeGguf, type MetaEntry, type TensorSpec } from '../../lib/gguf/writer.js';

export interface Spec {
  arch: 'llama' | 'qwen2' | 'qwen3';
  embd: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Written as attention.key_length/value_length when given. */
  headDim?: number;
  ff: number;
  ropeBase: number;
  tied: boolean;
  qkNorm: boolean;
  /** q/k/v biases (qwen2 has them). */
  biases?: boolean;
  /** rope_freqs.weight, one value per rotated pair. */
  ropeFreqs?: Float32Array;
  extraMeta?: MetaEntry[];
  /** Tensors left out (to test refusals). */
  omit?: string[];
  /** Each tensor's values depend only on this and its name, so specs that differ in one tensor share the rest. */
  seed: number;
}

/** llama-spm style vocabulary: unk, bos, eos, the 256 byte tokens, then letters. */
function vocab(): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  for (const c of 'abcdefghijklmnopqrstuvwxyz') tokens.push(`▁${c}`, c);
  const types = Int32Array.from(tokens, (_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
  const scores = Float32Array.from(tokens, (_, i) => (i < 259 ? 0 : -(i - 259)));
  return { tokens, scores, types };
}
const VOCAB = vocab();
export const N_VOCAB = VOCAB.tokens.length;

/** Deterministic N(mean, std^2) draws: an LCG through Box-Muller. */
export function gaussians(n: number, seed: number, std: number, mean = 0): Float32Array {
  let s = seed >>> 0;
  const uni = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  return Float32Array.from({ length: n }, () => mean + std * Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni()));
}

/**
 * Weights scaled as refdata's random models are (MANIFEST.md 1.3): the output rows get a
 * log-normal scale so that greedy picks have clear margins.
 */
export function modelFile(s: Spec): { meta: MetaEntry[]; tensors: TensorSpec[] } {
  const a = s.arch;
  const hd = s.headDim ?? s.embd / s.heads;
  const meta: MetaEntry[] = [
    str('general.architecture', a), str('general.name', `archs-${a}`),
    u32(`${a}.context_length`, 4096), u32(`${a}.embedding_length`, s.embd), u32(`${a}.block_count`, s.layers),
    u32(`${a}.feed_forward_length`, s.ff), u32(`${a}.attention.head_count`, s.heads),
    u32(`${a}.attention.head_count_kv`, s.kvHeads), f32(`${a}.rope.freq_base`, s.ropeBase),
    f32(`${a}.attention.layer_norm_rms_epsilon`, 1e-6),
    ...(s.headDim ? [u32(`${a}.attention.key_length`, hd), u32(`${a}.attention.value_length`, hd)] : []),
    ...(s.extraMeta ?? []),
    str('tokenizer.ggml.model', 'llama'), str('tokenizer.ggml.pre', 'default'),
    arr('tokenizer.ggml.tokens', T.STRING, VOCAB.tokens), arr('tokenizer.ggml.scores', T.FLOAT32, VOCAB.scores),
    arr('tokenizer.ggml.token_type', T.INT32, VOCAB.types),
    u32('tokenizer.ggml.bos_token_id', 1), u32('tokenizer.ggml.eos_token_id', 2), u32('tokenizer.ggml.unknown_token_id', 0),
    bool('tokenizer.ggml.add_bos_token', true),
  ];
  const seed = (name: string) => {
    let h = Math.imul(s.seed, 0x9e3779b1);
    for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
    return h >>> 0;
  };
  const e = 1 / Math.sqrt(s.embd);
  const draw = (name: string, n: number, std: number, mean = 0): TensorSpec =>
    ({ name, type: 'F32', shape: [n], data: gaussians(n, seed(name), std, mean) });
  const mat = (name: string, cols: number, rows: number, std: number): TensorSpec =>
    ({ ...draw(name, cols * rows, std), shape: [cols, rows] });
  const vec = (name: string, n: number) => draw(name, n, 0.1, 1);
  const rowScale = gaussians(N_VOCAB, seed('row scale'), 0.5).map(Math.exp);
  const out = gaussians(N_VOCAB * s.embd, seed('output'), 3 * e).map((v, i) => v * rowScale[Math.floor(i / s.embd)]);
  const tensors: TensorSpec[] = [
    s.tied ? { name: 'token_embd.weight', type: 'F32', shape: [s.embd, N_VOCAB], data: out } : mat('token_embd.weight', s.embd, N_VOCAB, 1),
    vec('output_norm.weight', s.embd),
  ];
  if (!s.tied) tensors.push({ name: 'output.weight', type: 'F32', shape: [s.embd, N_VOCAB], data: out });
  if (s.ropeFreqs) tensors.push({ name: 'rope_freqs.weight', type: 'F32', shape: [s.ropeFreqs.length], data: s.ropeFreqs });
  const q = s.heads * hd, kv = s.kvHeads * hd;
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      vec(p + 'attn_norm.weight', s.embd), mat(p + 'attn_q.weight', s.embd, q, 1.5 * e), mat(p + 'attn_k.weight', s.embd, kv, e),
      mat(p + 'attn_v.weight', s.embd, kv, e), mat(p + 'attn_output.weight', q, s.embd, 0.7 / Math.sqrt(q)),
    );
    if (s.biases ?? s.arch === 'qwen2') {
      tensors.push(draw(p + 'attn_q.bias', q, 0.5), draw(p + 'attn_k.bias', kv, 0.5), draw(p + 'attn_v.bias', kv, 0.5));
    }
    // Q/K norm weights far from 1 so that a skipped or misplaced norm shows.
    if (s.qkNorm) tensors.push(draw(p + 'attn_q_norm.weight', hd, 0.5, 1.5), draw(p + 'attn_k_norm.weight', hd, 0.5, 1.5));
    tensors.push(
      vec(p + 'ffn_norm.weight', s.embd), mat(p + 'ffn_gate.weight', s.embd, s.ff, e), mat(p + 'ffn_up.weight', s.embd, s.ff, e),
      mat(p + 'ffn_down.weight', s.ff, s.embd, 1.4 / Math.sqrt(s.ff)),
    );
  }
  return { meta, tensors: tensors.filter((t) => !s.omit?.includes(t.name)) };
}

/** Writes spec s as dir/name.gguf; dataOffset is where its tensor data starts (RefModel.load). */
export async function writeModel(dir: string, name: string, s: Spec): Promise<{ file: string; dataOffset: number }> {
  const file = path.join(dir, `${name}.gguf`);
  const { meta, tensors } = modelFile(s);
  const layout = await writeGguf(file, meta, tensors);
  return { file, dataOffset: layout.dataOffset };
}
