/**
 * Writes the reasoner GGUF from export.py's weights.bin + manifest.json through weft's own GGUF
 * writer: architecture `llama`, matrices in F16 (or Q8_0), 1-D norms in F32 as weft requires,
 * tied output (no output.weight), and the SPM vocabulary with add_space_prefix = false so that
 * weft tokenizes exactly as the trainer did.
 *
 *   tsx tools/train-reasoner/to-gguf.ts runs/r1/export models/weft-reasoner-2m-f16.gguf [F16|Q8_0]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GgufValueType as T } from '../../lib/gguf/types.js';
import { arr, bool, f32, str, u32, writeGguf, type TensorSpec, type TensorType } from '../../lib/gguf/writer.js';

interface Manifest {
  config: { n_vocab: number; n_embd: number; n_layer: number; n_head: number; n_head_kv: number; n_ff: number; n_ctx: number; rope_theta: number; rms_eps: number };
  tokens: string[];
  scores: number[];
  token_types: number[];
  bos: number;
  eos: number;
  unk: number;
  tensors: { name: string; shape: number[]; offset: number }[];
  training: { step: number; tokens: number };
}

const [dir, out, typeArg = 'F16'] = process.argv.slice(2);
if (!dir || !out || (typeArg !== 'F16' && typeArg !== 'Q8_0')) {
  throw new Error('usage: to-gguf.ts EXPORT_DIR OUT.gguf [F16|Q8_0]');
}
const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
const bin = readFileSync(path.join(dir, 'weights.bin'));
const c = m.config;

const tensors: TensorSpec[] = m.tensors.map((t) => {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(bin.buffer.slice(bin.byteOffset + t.offset, bin.byteOffset + t.offset + 4 * n));
  const type: TensorType = t.shape.length === 1 ? 'F32' : (typeArg as TensorType);
  return { name: t.name, type, shape: t.shape, data };
});

const a = 'llama';
await writeGguf(out, [
  str('general.architecture', a),
  str('general.name', 'weft-reasoner'),
  str('general.license', 'MIT'),
  str('general.description', 'A small arithmetic reasoning model trained from scratch for weft (see models/README.md)'),
  u32(`${a}.context_length`, c.n_ctx),
  u32(`${a}.embedding_length`, c.n_embd),
  u32(`${a}.block_count`, c.n_layer),
  u32(`${a}.feed_forward_length`, c.n_ff),
  u32(`${a}.attention.head_count`, c.n_head),
  u32(`${a}.attention.head_count_kv`, c.n_head_kv),
  u32(`${a}.rope.dimension_count`, c.n_embd / c.n_head),
  f32(`${a}.rope.freq_base`, c.rope_theta),
  f32(`${a}.attention.layer_norm_rms_epsilon`, c.rms_eps),
  str('tokenizer.ggml.model', 'llama'),
  arr('tokenizer.ggml.tokens', T.STRING, m.tokens),
  arr('tokenizer.ggml.scores', T.FLOAT32, Float32Array.from(m.scores)),
  arr('tokenizer.ggml.token_type', T.INT32, Int32Array.from(m.token_types)),
  u32('tokenizer.ggml.bos_token_id', m.bos),
  u32('tokenizer.ggml.eos_token_id', m.eos),
  u32('tokenizer.ggml.unknown_token_id', m.unk),
  bool('tokenizer.ggml.add_bos_token', true),
  bool('tokenizer.ggml.add_eos_token', false),
  bool('tokenizer.ggml.add_space_prefix', false),
], tensors);
process.stdout.write(`wrote ${out}: ${tensors.length} tensors, ${typeArg}, trained ${m.training.step} steps / ${m.training.tokens} tokens\n`);
