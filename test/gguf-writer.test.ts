// The GGUF writer that tests and the bench use to make models: its conversions match ggml's
// rounding on hand-derived values, every metadata type survives a trip through weft's native
// reader, tensors land at aligned offsets, and a model it writes loads in weft with logits that
// move only by the quantization error between F32, F16, BF16 and Q8_0 copies of the same weights.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, readGguf } from '../lib/index.js';
import { GgufValueType as T } from '../lib/gguf/types.js';
import {
  arr, bool, encode, f32, f64, i16, i32, i64, i8, str, u16, u32, u64, u8, writeGguf,
  type MetaEntry, type TensorSpec, type TensorType,
} from '../lib/gguf/writer.js';

let dir = '';
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'weft-writer-')); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const u16s = async (type: TensorType, xs: number[]) =>
  Array.from(new Uint16Array((await encode(type, Float32Array.from(xs), xs.length)).slice().buffer));

describe('value conversions', () => {
  it('F16 rounds to nearest even, keeps subnormals, overflows to inf', async () => {
    const ulp = 2 ** -10;  // spacing of halves in [1, 2)
    expect(await u16s('F16', [1, 1 + ulp / 2, 1 + 1.5 * ulp, 1 + ulp / 2 + 2 ** -20, -2])).toEqual([0x3c00, 0x3c00, 0x3c02, 0x3c01, 0xc000]);
    expect(await u16s('F16', [2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 2 ** -14 - 2 ** -24])).toEqual([0x0001, 0x0000, 0x0001, 0x03ff]);
    expect(await u16s('F16', [65504, 65519, 65520, -Infinity])).toEqual([0x7bff, 0x7bff, 0x7c00, 0xfc00]);
    const [nan] = await u16s('F16', [NaN]);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  it('BF16 rounds to nearest even and keeps NaN a NaN', async () => {
    const ulp = 2 ** -7;
    expect(await u16s('BF16', [1, 1 + ulp / 2, 1 + 1.5 * ulp, -3.140625])).toEqual([0x3f80, 0x3f80, 0x3f82, 0xc049]);
    const [nan] = await u16s('BF16', [NaN]);
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x7f).not.toBe(0);
  });

  it('Q8_0 stores d = amax/127 as f16 and round(x/d) with halves away from zero', async () => {
    // x_j = (j - 16) / 2: amax 8, d = 8/127 = 0.0629921 = 0x2C08 in f16, q_j = round((j - 16) * 15.875).
    const x = Float32Array.from({ length: 32 }, (_, j) => (j - 16) / 2);
    const b = await encode('Q8_0', x, 32);
    expect(b.length).toBe(34);
    expect(b[0] | (b[1] << 8)).toBe(0x2c08);
    const q = Array.from(new Int8Array(b.buffer, b.byteOffset + 2, 32));
    expect(q.slice(0, 4)).toEqual([-127, -119, -111, -103]);  // -127, -119.06, -111.13, -103.19
    expect(q[16]).toBe(0);
    expect(q[31]).toBe(119);
    // (x/d) = +-0.5 exactly: d = 127/127 = 1 and x = 0.5 round away from zero.
    const half = new Float32Array(32);
    half[0] = 127; half[1] = 0.5; half[2] = -0.5; half[3] = 1.5;
    expect(Array.from(new Int8Array((await encode('Q8_0', half, 32)).buffer, 2, 4))).toEqual([127, 1, -1, 2]);
    // An all-zero block has d = 0 and q = 0, not NaN.
    expect(Array.from(await encode('Q8_0', new Float32Array(32), 32))).toEqual(new Array(34).fill(0));
  });
});

describe('metadata and tensor table round-trip through the native reader', () => {
  it('every value type, arrays of strings and numbers, and u64 beyond 2^53', async () => {
    const big = 2n ** 63n + 12345n;
    const meta: MetaEntry[] = [
      str('general.architecture', 'test'),
      u8('t.u8', 255), i8('t.i8', -128), u16('t.u16', 65535), i16('t.i16', -32768),
      u32('t.u32', 4294967295), i32('t.i32', -2147483648), f32('t.f32', 0.1), f64('t.f64', 0.1),
      bool('t.true', true), bool('t.false', false), str('t.str', 'héllo ▁wörld 🙂'), str('t.empty', ''),
      u64('t.u64.small', 2 ** 40), u64('t.u64.big', big), i64('t.i64', -(2n ** 62n)), i64('t.i64.small', -7),
      arr('t.strings', T.STRING, ['<unk>', '', '▁a', '日本']),
      arr('t.f32s', T.FLOAT32, Float32Array.from([1.5, -2.25, 1e-30])),
      arr('t.i32s', T.INT32, [1, -2, 3]),
      arr('t.u8s', T.UINT8, Uint8Array.from([0, 7, 255])),
      arr('t.i16s', T.INT16, [-1, 2]),
      arr('t.f64s', T.FLOAT64, [Math.PI]),
      arr('t.u64s', T.UINT64, [big, 5n]),
      arr('t.bools', T.BOOL, [true, false, true]),
      arr('t.none', T.INT32, []),
    ];
    const file = path.join(dir, 'meta.gguf');
    await writeGguf(file, meta, []);
    const g = await readGguf(file);
    expect(g.version).toBe(3);
    expect(Object.keys(g.metadata)).toEqual(meta.map((e) => e.key));
    const m = g.metadata;
    expect([m['t.u8'], m['t.i8'], m['t.u16'], m['t.i16'], m['t.u32'], m['t.i32']]).toEqual([255, -128, 65535, -32768, 4294967295, -2147483648]);
    expect(m['t.f32']).toBe(Math.fround(0.1));
    expect(m['t.f64']).toBe(0.1);
    expect([m['t.true'], m['t.false'], m['t.str'], m['t.empty']]).toEqual([true, false, 'héllo ▁wörld 🙂', '']);
    expect([m['t.u64.small'], m['t.u64.big'], m['t.i64'], m['t.i64.small']]).toEqual([2 ** 40, big, -(2n ** 62n), -7]);
    expect(m['t.strings']).toEqual(['<unk>', '', '▁a', '日本']);
    expect(m['t.f32s']).toEqual(Float32Array.from([1.5, -2.25, 1e-30]));
    expect(m['t.i32s']).toEqual(Int32Array.from([1, -2, 3]));
    expect(m['t.u8s']).toEqual(Uint8Array.from([0, 7, 255]));
    expect(m['t.i16s']).toEqual(Int16Array.from([-1, 2]));
    expect(m['t.f64s']).toEqual(Float64Array.from([Math.PI]));
    expect(m['t.u64s']).toEqual(BigUint64Array.from([big, 5n]));
    expect(m['t.bools']).toEqual([true, false, true]);
    expect(m['t.none']).toEqual(new Int32Array(0));
  });

  it('tensor offsets are aligned, sized by type, and the data sits where the table says', async () => {
    for (const alignment of [32, 64, 256]) {
      const x = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k));
      const tensors: TensorSpec[] = [
        { name: 'a', type: 'F32', shape: [3], data: x(3, 0) },  // 12 bytes: the next one needs padding
        { name: 'b', type: 'F16', shape: [5, 3], data: x(15, 1) },
        { name: 'c', type: 'BF16', shape: [7], data: x(7, 2) },
        { name: 'd', type: 'Q8_0', shape: [64, 3, 2], data: (r0, rows, out) => out.set(x(384, 3).subarray(r0 * 64, (r0 + rows) * 64)) },
      ];
      const file = path.join(dir, `t${alignment}.gguf`);
      const layout = await writeGguf(file, [str('general.architecture', 'test')], tensors, { version: 2, alignment });
      const g = await readGguf(file);
      expect(g.version).toBe(2);
      expect(g.alignment).toBe(alignment);
      expect(g.metadata['general.alignment']).toBe(alignment === 32 ? undefined : alignment);
      expect(g.tensors.map((t) => [t.name, t.type, t.shape, t.bytes])).toEqual([
        ['a', 'F32', [3], 12], ['b', 'F16', [5, 3], 30], ['c', 'BF16', [7], 14], ['d', 'Q8_0', [64, 3, 2], 12 * 34],
      ]);
      expect(g.tensors.map((t) => t.offset)).toEqual([0, alignment, 2 * alignment, 3 * alignment]);
      expect(layout.dataOffset % alignment).toBe(0);
      const last = g.tensors[3];
      expect(g.fileBytes).toBe(layout.dataOffset + last.offset + last.bytes);
      const bytes = readFileSync(file);
      for (const [i, t] of tensors.entries()) {
        const at = layout.dataOffset + g.tensors[i].offset;
        const full = typeof t.data === 'function' ? x(384, 3) : t.data;
        expect(bytes.subarray(at, at + g.tensors[i].bytes)).toEqual(Buffer.from(await encode(t.type, full, t.shape[0])));
      }
    }
  });

  it('rejects what it cannot write instead of writing a broken file', async () => {
    const file = path.join(dir, 'bad.gguf');
    await expect(writeGguf(file, [], [{ name: 'q', type: 'Q8_0', shape: [48], data: new Float32Array(48) }])).rejects.toThrow(/multiple of 32/);
    await expect(writeGguf(file, [], [{ name: 'f', type: 'F32', shape: [4], data: new Float32Array(3) }])).rejects.toThrow(/3 values/);
    await expect(writeGguf(file, [u32('x', 'no' as unknown as number)], [])).rejects.toThrow(/x:/);
    await expect(writeGguf(file, [], [], { alignment: 48 })).rejects.toThrow(/power of two/);
  });
});

// ---- a tiny llama model, written in several tensor types from the same float weights ----------

const HP = { embd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 128 };
const HEAD_DIM = HP.embd / HP.heads;

/** llama-spm style vocabulary: unk, bos, eos, 256 byte tokens, then word pieces. */
function vocab(): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  for (const w of ['the', 'a', 'cat', 'dog', 'sat', 'on', 'mat', 'and', 'ran', 'to', 'is', 'in', 'it', 'was', 'big', 'red']) tokens.push(`▁${w}`);
  for (const c of 'abcdefghijklmnopqrstuvwxyz') tokens.push(c);
  const types = Int32Array.from(tokens, (t, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
  const scores = Float32Array.from(tokens, (_, i) => (i < 259 ? 0 : -(i - 259)));
  return { tokens, scores, types };
}

// Deterministic weights: a small LCG through Box-Muller, so every variant gets the same floats.
function gaussians(n: number, seed: number, std: number, mean = 0): Float32Array {
  let s = seed >>> 0;
  const uni = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni());
  return out;
}

function tinyLlama(matrixType: TensorType): { meta: MetaEntry[]; tensors: TensorSpec[] } {
  const v = vocab();
  const nVocab = v.tokens.length;
  const kvDim = HP.kvHeads * HEAD_DIM;
  const meta = [
    str('general.architecture', 'llama'), str('general.name', 'writer-tiny'),
    u32('llama.context_length', 256), u32('llama.embedding_length', HP.embd), u32('llama.block_count', HP.layers),
    u32('llama.feed_forward_length', HP.ff), u32('llama.attention.head_count', HP.heads),
    u32('llama.attention.head_count_kv', HP.kvHeads), f32('llama.rope.freq_base', 10000),
    f32('llama.attention.layer_norm_rms_epsilon', 1e-5), u32('llama.rope.dimension_count', HEAD_DIM),
    u32('llama.vocab_size', nVocab),
    str('tokenizer.ggml.model', 'llama'), str('tokenizer.ggml.pre', 'default'),
    arr('tokenizer.ggml.tokens', T.STRING, v.tokens), arr('tokenizer.ggml.scores', T.FLOAT32, v.scores),
    arr('tokenizer.ggml.token_type', T.INT32, v.types),
    u32('tokenizer.ggml.bos_token_id', 1), u32('tokenizer.ggml.eos_token_id', 2), u32('tokenizer.ggml.unknown_token_id', 0),
    bool('tokenizer.ggml.add_bos_token', true), bool('tokenizer.ggml.add_eos_token', false),
  ];
  let seed = 1;
  const mat = (name: string, cols: number, rows: number, std: number): TensorSpec =>
    ({ name, type: matrixType, shape: [cols, rows], data: gaussians(cols * rows, seed++, std) });
  const norm = (name: string): TensorSpec => ({ name, type: 'F32', shape: [HP.embd], data: gaussians(HP.embd, seed++, 0.1, 1) });
  const e = 1 / Math.sqrt(HP.embd);
  const tensors = [mat('token_embd.weight', HP.embd, nVocab, 1), norm('output_norm.weight'), mat('output.weight', HP.embd, nVocab, 3 * e)];
  for (let l = 0; l < HP.layers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      norm(p + 'attn_norm.weight'), mat(p + 'attn_q.weight', HP.embd, HP.embd, 1.5 * e), mat(p + 'attn_k.weight', HP.embd, kvDim, e),
      mat(p + 'attn_v.weight', HP.embd, kvDim, e), mat(p + 'attn_output.weight', HP.embd, HP.embd, 0.7 * e), norm(p + 'ffn_norm.weight'),
      mat(p + 'ffn_gate.weight', HP.embd, HP.ff, e), mat(p + 'ffn_up.weight', HP.embd, HP.ff, e),
      mat(p + 'ffn_down.weight', HP.ff, HP.embd, 1.4 / Math.sqrt(HP.ff)),
    );
  }
  return { meta, tensors };
}

describe('a tiny llama model written here loads in weft', () => {
  const PROMPT = [1, 262, 260, 280, 300, 4, 100, 270, 261, 290, 265, 259];
  const logitsOf = async (type: TensorType) => {
    const { meta, tensors } = tinyLlama(type);
    const file = path.join(dir, `tiny-${type}.gguf`);
    await writeGguf(file, meta, tensors);
    const model = await loadModel(file, { threads: 2, kvCacheTokens: 256, kvType: 'f32' });
    try {
      return { info: model.info, logits: await model.evaluate(PROMPT, { allLogits: true }) };
    } finally {
      await model.dispose();
    }
  };
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  let ref: Float32Array;

  it('shows the written shape in model.info', async () => {
    const { info, logits } = await logitsOf('F32');
    ref = logits;
    expect(info).toMatchObject({
      arch: 'llama', name: 'writer-tiny', layers: 2, embeddingLength: 64, heads: 4, kvHeads: 2, headDim: 16,
      feedForwardLength: 128, vocabSize: 301, contextLength: 256, tiedOutput: false, tokenizer: 'spm',
    });
    expect(info.tensorTypes).toEqual({ F32: { count: 21, bytes: expect.any(Number) } });
    expect(logits.length).toBe(PROMPT.length * 301);
    expect(logits.every(Number.isFinite)).toBe(true);
  });

  // Bounds: F16 keeps 11 significant bits, BF16 8, Q8_0 about 7 per block of 32, so logits
  // (std about 3 here) move by roughly 1e-2, 1e-1 and 1e-1 at most; a wrongly encoded tensor
  // moves them by the logits' own size.
  it.each([['F16', 0.05], ['BF16', 0.2], ['Q8_0', 0.4]] as const)('%s logits stay within the quantization error of F32', async (type, tol) => {
    const { info, logits } = await logitsOf(type);
    expect(info.tensorTypes[type].count).toBe(2 + 7 * HP.layers);
    const d = maxDiff(logits, ref);
    expect(d).toBeLessThan(tol);
    expect(d).toBeGreaterThan(0);  // the weights really were converted
  });
});
