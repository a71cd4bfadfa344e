/**
 * The random-weight SmolLM2-135M-shape model of PERF.md (llama, 30 layers, 576 wide, 9/3 heads,
 * FFN 1536, vocab 49152, tied embeddings), written with weft's GGUF writer and cached under
 * bench/out/models/. Weights are drawn as in refdata MANIFEST.md section 1.3 (the scales only
 * matter for what greedy decoding produces, not for speed); the tokenizer keys are those of
 * llama.cpp's ggml-vocab-llama-spm.gguf, padded with `<pad_ID>` tokens to 49152.
 */
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { readGguf } from '../lib/native.js';
import { GgufValueType as T, type GgufValue } from '../lib/gguf/types.js';
import { arr, bool, f32, str, u32, writeGguf, type MetaEntry, type TensorSpec, type TensorType } from '../lib/gguf/writer.js';
import { Gaussian } from './rng.js';

export const SHAPE = {
  name: 'smollm2-135m-shape', layers: 30, embd: 576, heads: 9, kvHeads: 3, headDim: 64, ff: 1536,
  vocab: 49152, ropeBase: 100000, rmsEps: 1e-5, ctx: 2048,
} as const;

// Bump when the weights or metadata written here change, so cached files are rewritten.
const GENERATOR = 'weft-bench smollm2-shape v1';
const SEED = 135;
const FILE_TYPE: Record<TensorType, number> = { F32: 0, F16: 1, BF16: 32, Q8_0: 7 };

export async function smollm2Model(dir: string, type: 'F32' | 'F16' | 'Q8_0', vocabFile: string): Promise<string> {
  const file = path.join(dir, `${SHAPE.name}-${type}.gguf`);
  try {
    if ((await readGguf(file)).metadata['weft.bench.generator'] === GENERATOR) return file;
  } catch {
    // missing or unreadable: write it
  }
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  await writeGguf(`${file}.tmp`, [...await metadata(type, vocabFile)], tensors(type));
  await rename(`${file}.tmp`, file);
  console.error(`wrote ${file} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return file;
}

async function metadata(type: TensorType, vocabFile: string): Promise<MetaEntry[]> {
  const L = (k: string) => `llama.${k}`;
  const meta: MetaEntry[] = [
    str('general.architecture', 'llama'), str('general.name', SHAPE.name), u32('general.file_type', FILE_TYPE[type]),
    str('weft.bench.generator', GENERATOR),
    u32(L('context_length'), SHAPE.ctx), u32(L('embedding_length'), SHAPE.embd), u32(L('block_count'), SHAPE.layers),
    u32(L('feed_forward_length'), SHAPE.ff), u32(L('attention.head_count'), SHAPE.heads),
    u32(L('attention.head_count_kv'), SHAPE.kvHeads), f32(L('rope.freq_base'), SHAPE.ropeBase),
    f32(L('attention.layer_norm_rms_epsilon'), SHAPE.rmsEps), u32(L('rope.dimension_count'), SHAPE.headDim),
    u32(L('vocab_size'), SHAPE.vocab),
  ];
  if (type === 'Q8_0') meta.push(u32('general.quantization_version', 2));
  const vocab = (await readGguf(vocabFile)).metadata;
  for (const [key, value] of Object.entries(vocab)) {
    if (key.startsWith('tokenizer.')) meta.push(padded(key, value));
  }
  return meta;
}

// Copies a tokenizer key with the type it had in the vocab file; the three per-token arrays are
// padded to the model's vocabulary with unique `<pad_ID>` tokens (score 0, type 1 = NORMAL).
function padded(key: string, v: GgufValue): MetaEntry {
  const pad = (n: number) => SHAPE.vocab - n;
  if (key === 'tokenizer.ggml.tokens') {
    const tokens = v as string[];
    return arr(key, T.STRING, [...tokens, ...Array.from({ length: pad(tokens.length) }, (_, i) => `<pad_${tokens.length + i}>`)]);
  }
  if (key === 'tokenizer.ggml.scores') {
    const out = new Float32Array(SHAPE.vocab);
    out.set(v as Float32Array);
    return arr(key, T.FLOAT32, out);
  }
  if (key === 'tokenizer.ggml.token_type') {
    const out = new Int32Array(SHAPE.vocab).fill(1);
    out.set(v as Int32Array);
    return arr(key, T.INT32, out);
  }
  if (typeof v === 'string') return str(key, v);
  if (typeof v === 'boolean') return bool(key, v);
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return u32(key, v);  // token ids
  throw new Error(`cannot copy tokenizer key ${key} (${typeof v})`);
}

function tensors(matrixType: 'F32' | 'F16' | 'Q8_0'): TensorSpec[] {
  const { embd, ff, layers, vocab } = SHAPE;
  const kvDim = SHAPE.kvHeads * SHAPE.headDim;
  let seed = SEED;
  const noise = (std: number, mean = 0) => {
    const g = new Gaussian(seed++);
    return (_r: number, _rows: number, out: Float32Array) => g.fill(out, std, mean);
  };
  const mat = (name: string, cols: number, rows: number, std: number): TensorSpec =>
    ({ name, type: matrixType, shape: [cols, rows], data: noise(std) });
  const norm = (name: string): TensorSpec => ({ name, type: 'F32', shape: [embd], data: noise(0.1, 1) });
  const e = 1 / Math.sqrt(embd);

  // Tied output: row j of token_embd ~ N(0, (3/sqrt(embd))^2) * s_j with a log-normal row scale
  // s = exp(0.3 g) / rms(exp(0.3 g)), and output_norm with random signs (MANIFEST.md 1.3).
  const g = new Gaussian(seed++);
  const s = Float64Array.from({ length: vocab }, () => Math.exp(0.3 * g.next()));
  const rms = Math.sqrt(s.reduce((a, x) => a + x * x, 0) / vocab);
  const embRows = new Gaussian(seed++);
  const signs = new Gaussian(seed++);
  const onorm = new Gaussian(seed++);
  const out: TensorSpec[] = [
    {
      name: 'token_embd.weight', type: matrixType, shape: [embd, vocab],
      data: (r0, rows, x) => {
        for (let r = 0; r < rows; r++) embRows.fill(x.subarray(r * embd, (r + 1) * embd), (3 * e * s[r0 + r]) / rms);
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
      norm(p + 'attn_norm.weight'),
      mat(p + 'attn_q.weight', embd, embd, 1.5 * e),
      mat(p + 'attn_k.weight', embd, kvDim, e),
      mat(p + 'attn_v.weight', embd, kvDim, e),
      mat(p + 'attn_output.weight', embd, embd, 0.7 * e),
      norm(p + 'ffn_norm.weight'),
      mat(p + 'ffn_gate.weight', embd, ff, e),
      mat(p + 'ffn_up.weight', embd, ff, e),
      mat(p + 'ffn_down.weight', ff, embd, 1.4 / Math.sqrt(ff)),
    );
  }
  return out;
}
