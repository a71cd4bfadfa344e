/**
 * The random-weight model shapes of refdata/perf/PERF.md, written with weft's GGUF writer and
 * cached under bench/out/models/:
 *  - smollm2-135m-shape: llama, 30 layers, 576 wide, 9/3 heads, FFN 1536, vocab 49152, tied;
 *    tokenizer keys of llama.cpp's ggml-vocab-llama-spm.gguf padded with `<pad_ID>` tokens.
 *  - qwen25-05b-shape: qwen2 (q/k/v biases), 24 layers, 896 wide, 14/2 heads, FFN 4864, vocab
 *    151936, tied, rope base 1e6; tokenizer keys of ggml-vocab-gpt-2.gguf, padded likewise.
 *  - llama32-1b-shape (opt-in: `--only llama32`): llama, 16 layers, 2048 wide, 32/8 heads, FFN
 *    8192, vocab 128256, tied, rope base 5e5 (Llama 3.2 1B without its rope scaling); tokenizer keys
 *    of ggml-vocab-gpt-2.gguf, padded. Its widths are multiples of 256, so its Q4_K_M is mostly
 *    Q4_K/Q6_K, as the files of Llama 3.x and the larger Qwen2.5 are; no PERF.md figures.
 * Weights are drawn as in refdata MANIFEST.md section 1.3 (the scales only matter for what greedy
 * decoding produces, not for speed). Q4_K_M uses llama-quantize's per-tensor type mix for these
 * shapes (PERF.md section 1), with weft's own round-to-nearest quantizers.
 */
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { readGguf } from '../lib/native.js';
import { GgufValueType as T, type GgufValue } from '../lib/gguf/types.js';
import { arr, bool, f32, str, u32, writeGguf, type MetaEntry, type TensorSpec, type TensorType } from '../lib/gguf/writer.js';
import { Gaussian } from './rng.js';

export interface Shape {
  name: string; arch: 'llama' | 'qwen2'; layers: number; embd: number; heads: number; kvHeads: number;
  headDim: number; ff: number; vocab: number; ropeBase: number; rmsEps: number; ctx: number;
  /** refdata/tokenizer/llama.cpp-vocab file whose tokenizer keys are copied. */
  vocabFile: string; seed: number;
}

export const SHAPES: Record<string, Shape> = {
  'smollm2-135m-shape': {
    name: 'smollm2-135m-shape', arch: 'llama', layers: 30, embd: 576, heads: 9, kvHeads: 3, headDim: 64, ff: 1536,
    vocab: 49152, ropeBase: 100000, rmsEps: 1e-5, ctx: 2048, vocabFile: 'ggml-vocab-llama-spm.gguf', seed: 135,
  },
  'qwen25-05b-shape': {
    name: 'qwen25-05b-shape', arch: 'qwen2', layers: 24, embd: 896, heads: 14, kvHeads: 2, headDim: 64, ff: 4864,
    vocab: 151936, ropeBase: 1000000, rmsEps: 1e-6, ctx: 4096, vocabFile: 'ggml-vocab-gpt-2.gguf', seed: 500,
  },
  'llama32-1b-shape': {
    name: 'llama32-1b-shape', arch: 'llama', layers: 16, embd: 2048, heads: 32, kvHeads: 8, headDim: 64, ff: 8192,
    vocab: 128256, ropeBase: 500000, rmsEps: 1e-5, ctx: 4096, vocabFile: 'ggml-vocab-gpt-2.gguf', seed: 1000,
  },
};

export type FileType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0' | 'Q4_K_M';

// Bump when the weights or metadata written here change, so cached files are rewritten.
const GENERATOR = 'weft-bench model-shapes v2';
// general.file_type values (llama_ftype): ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7,
// MOSTLY_Q4_K_M 15.
const FILE_TYPE: Record<FileType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q4_K_M: 15 };

/** Path of the cached file for (shape, type), writing it first when missing or stale. */
export async function shapeModel(dir: string, shape: Shape, type: FileType, vocabDir: string): Promise<string> {
  const file = path.join(dir, `${shape.name}-${type}.gguf`);
  try {
    if ((await readGguf(file)).metadata['weft.bench.generator'] === GENERATOR) return file;
  } catch {
    // missing or unreadable: write it
  }
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  await writeGguf(`${file}.tmp`, await metadata(shape, type, path.join(vocabDir, shape.vocabFile)), tensors(shape, type));
  await rename(`${file}.tmp`, file);
  console.error(`wrote ${file} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return file;
}

async function metadata(s: Shape, type: FileType, vocabFile: string): Promise<MetaEntry[]> {
  const A = (k: string) => `${s.arch}.${k}`;
  const meta: MetaEntry[] = [
    str('general.architecture', s.arch), str('general.name', s.name), u32('general.file_type', FILE_TYPE[type]),
    str('weft.bench.generator', GENERATOR),
    u32(A('context_length'), s.ctx), u32(A('embedding_length'), s.embd), u32(A('block_count'), s.layers),
    u32(A('feed_forward_length'), s.ff), u32(A('attention.head_count'), s.heads),
    u32(A('attention.head_count_kv'), s.kvHeads), f32(A('rope.freq_base'), s.ropeBase),
    f32(A('attention.layer_norm_rms_epsilon'), s.rmsEps), u32(A('rope.dimension_count'), s.headDim),
    u32(A('vocab_size'), s.vocab),
  ];
  if (type !== 'F32' && type !== 'F16') meta.push(u32('general.quantization_version', 2));
  const vocab = (await readGguf(vocabFile)).metadata;
  for (const [key, value] of Object.entries(vocab)) {
    if (key.startsWith('tokenizer.')) meta.push(padded(s.vocab, key, value));
  }
  return meta;
}

// Copies a tokenizer key with the type it had in the vocab file; the per-token arrays are padded
// to the model's vocabulary with unique `<pad_ID>` tokens (score 0, type 1 = NORMAL).
function padded(vocab: number, key: string, v: GgufValue): MetaEntry {
  if (key === 'tokenizer.ggml.tokens') {
    const tokens = v as string[];
    return arr(key, T.STRING, [...tokens, ...Array.from({ length: vocab - tokens.length }, (_, i) => `<pad_${tokens.length + i}>`)]);
  }
  if (key === 'tokenizer.ggml.scores') {
    const out = new Float32Array(vocab);
    out.set(v as Float32Array);
    return arr(key, T.FLOAT32, out);
  }
  if (key === 'tokenizer.ggml.token_type') {
    const out = new Int32Array(vocab).fill(1);
    out.set(v as Int32Array);
    return arr(key, T.INT32, out);
  }
  if (key === 'tokenizer.ggml.merges') return arr(key, T.STRING, v as string[]);
  if (typeof v === 'string') return str(key, v);
  if (typeof v === 'boolean') return bool(key, v);
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return u32(key, v);  // token ids
  throw new Error(`cannot copy tokenizer key ${key} (${typeof v})`);
}

// llama-quantize's use_more_bits(): the first and last eighth of the layers and every third one
// between get the larger type in Q4_K_M.
const moreBits = (l: number, n: number) => l < n / 8 || l >= (7 * n) / 8 || (l - n / 8) % 3 === 2;

/** The type llama-quantize gives each matrix in a Q4_K_M file, after its fallback for rows that
 * are not a multiple of 256 long (Q4_K -> Q5_0, Q6_K -> Q8_0), as PERF.md lists for these shapes. */
function q4kmType(role: string, cols: number, layer: number, layers: number): TensorType {
  const fallback = (t: TensorType): TensorType => (cols % 256 === 0 ? t : t === 'Q4_K' ? 'Q5_0' : t === 'Q6_K' ? 'Q8_0' : t);
  if (role === 'token_embd') return 'Q8_0';
  if (role === 'attn_v' || role === 'ffn_down') return fallback(moreBits(layer, layers) ? 'Q6_K' : 'Q4_K');
  return fallback('Q4_K');
}

function tensors(s: Shape, type: FileType): TensorSpec[] {
  const { embd, ff, layers, vocab } = s;
  const kvDim = s.kvHeads * s.headDim;
  // Q4_0: llama-quantize gives a tied embedding (the output) Q6_K, or Q8_0 where its rows are not a
  // multiple of 256 long, and every other matrix Q4_0.
  const typeOf = (role: string, cols: number, layer: number): TensorType =>
    type === 'Q4_K_M' ? q4kmType(role, cols, layer, layers)
      : type === 'Q4_0' && role === 'token_embd' ? (cols % 256 === 0 ? 'Q6_K' : 'Q8_0') : type;
  let seed = s.seed;
  const noise = (std: number, mean = 0) => {
    const g = new Gaussian(seed++);
    return (_r: number, _rows: number, out: Float32Array) => g.fill(out, std, mean);
  };
  const mat = (layer: number, role: string, cols: number, rows: number, std: number): TensorSpec =>
    ({ name: `blk.${layer}.${role}.weight`, type: typeOf(role, cols, layer), shape: [cols, rows], data: noise(std) });
  const vec = (name: string, n: number, std: number, mean = 0): TensorSpec => ({ name, type: 'F32', shape: [n], data: noise(std, mean) });
  const e = 1 / Math.sqrt(embd);

  // Tied output: row j of token_embd ~ N(0, (3/sqrt(embd))^2) * s_j with a log-normal row scale
  // s = exp(0.3 g) / rms(exp(0.3 g)), and output_norm with random signs (MANIFEST.md 1.3).
  const g = new Gaussian(seed++);
  const scale = Float64Array.from({ length: vocab }, () => Math.exp(0.3 * g.next()));
  const rms = Math.sqrt(scale.reduce((a, x) => a + x * x, 0) / vocab);
  const embRows = new Gaussian(seed++);
  const signs = new Gaussian(seed++);
  const onorm = new Gaussian(seed++);
  const out: TensorSpec[] = [
    {
      name: 'token_embd.weight', type: typeOf('token_embd', embd, 0), shape: [embd, vocab],
      data: (r0, rows, x) => {
        for (let r = 0; r < rows; r++) embRows.fill(x.subarray(r * embd, (r + 1) * embd), (3 * e * scale[r0 + r]) / rms);
      },
    },
    {
      name: 'output_norm.weight', type: 'F32', shape: [embd],
      data: (_r, _n, x) => { for (let i = 0; i < embd; i++) x[i] = (1 + 0.1 * onorm.next()) * (signs.next() < 0 ? -1 : 1); },
    },
  ];
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    out.push(
      vec(p + 'attn_norm.weight', embd, 0.1, 1),
      mat(l, 'attn_q', embd, embd, 1.5 * e),
      mat(l, 'attn_k', embd, kvDim, e),
      mat(l, 'attn_v', embd, kvDim, e),
    );
    if (s.arch === 'qwen2') {
      out.push(vec(p + 'attn_q.bias', embd, 0.5), vec(p + 'attn_k.bias', kvDim, 0.5), vec(p + 'attn_v.bias', kvDim, 0.5));
    }
    out.push(
      mat(l, 'attn_output', embd, embd, 0.7 * e),
      vec(p + 'ffn_norm.weight', embd, 0.1, 1),
      mat(l, 'ffn_gate', embd, ff, e),
      mat(l, 'ffn_up', embd, ff, e),
      mat(l, 'ffn_down', ff, embd, 1.4 / Math.sqrt(ff)),
    );
  }
  return out;
}
