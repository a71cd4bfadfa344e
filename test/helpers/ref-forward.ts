/**
 * A plain, slow float64 forward pass of the decoder-only models weft runs (llama, qwen2, qwen3),
 * written from the model definitions and not from weft's C++: tests hold weft's logits against
 * it. One obvious path, no cache: every call recomputes the whole sequence.
 *
 * Weights come from the GGUF itself: readGguf (lib/native) gives the metadata and the tensor
 * table; the bytes are read from the file and widened here (F32, F16, BF16).
 */
import { readFileSync } from 'node:fs';
import { readGguf, type GgufTensorInfo } from '../../lib/native.js';
import type { GgufMetadata } from '../../lib/gguf/types.js';

export interface RefHParams {
  arch: string;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nRot: number;
  nFf: number;
  nVocab: number;
  ropeBase: number;
  /** Positions are multiplied by this (linear RoPE scaling: 1 / factor). */
  ropeFreqScale: number;
  /** Per rotated pair, the angle is divided by this (rope_freqs.weight, or llama3 scaling). */
  ropeFreqFactors: Float64Array | null;
  neox: boolean;
  eps: number;
}

/** Matrix of nOut rows of nIn values (a GGUF 2-D tensor: ne[0] = nIn). */
interface Mat { nIn: number; nOut: number; w: Float64Array }

interface Layer {
  attnNorm: Float64Array;
  wq: Mat; wk: Mat; wv: Mat; wo: Mat;
  bq: Float64Array | null; bk: Float64Array | null; bv: Float64Array | null;
  qNorm: Float64Array | null; kNorm: Float64Array | null;
  ffnNorm: Float64Array;
  gate: Mat; up: Mat; down: Mat;
}

export class RefModel {
  private constructor(
    readonly hp: RefHParams,
    private readonly embd: Mat,
    private readonly outNorm: Float64Array,
    private readonly output: Mat,
    private readonly layers: Layer[],
  ) {}

  /**
   * `dataOffset` is where the file's tensor data section starts (writeGguf's layout.dataOffset,
   * or tensor_data_section_file_offset in refdata's models.json).
   */
  static async load(file: string, dataOffset: number): Promise<RefModel> {
    const g = await readGguf(file);
    const bytes = readFileSync(file);
    const meta = g.metadata;
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    const tensor = (name: string): Float64Array | null => {
      const t = byName.get(name);
      return t ? widen(bytes, dataOffset, t) : null;
    };
    const need = (name: string): Float64Array => {
      const t = tensor(name);
      if (!t) throw new Error(`reference: ${file} lacks ${name}`);
      return t;
    };
    const mat = (name: string): Mat => {
      const t = byName.get(name);
      if (!t || t.shape.length !== 2) throw new Error(`reference: ${name} is not a matrix`);
      return { nIn: t.shape[0], nOut: t.shape[1], w: need(name) };
    };

    const arch = String(meta['general.architecture']);
    const num = (key: string, dflt?: number): number => {
      const v = meta[`${arch}.${key}`];
      if (v === undefined) {
        if (dflt === undefined) throw new Error(`reference: ${file} lacks ${arch}.${key}`);
        return dflt;
      }
      return Number(v);
    };
    const nEmbd = num('embedding_length');
    const nHead = num('attention.head_count');
    const headDim = num('attention.key_length', nEmbd / nHead);
    const nRot = num('rope.dimension_count', headDim);
    const embd = mat('token_embd.weight');
    const hp: RefHParams = {
      arch, nEmbd, nHead, headDim, nRot,
      nLayer: num('block_count'),
      nHeadKv: num('attention.head_count_kv', nHead),
      nFf: num('feed_forward_length'),
      nVocab: embd.nOut,
      ropeBase: num('rope.freq_base', 10000),
      eps: num('attention.layer_norm_rms_epsilon', 1e-5),
      neox: arch === 'qwen2' || arch === 'qwen3',
      ...ropeScaling(meta, arch, nRot, num('rope.freq_base', 10000), tensor('rope_freqs.weight')),
    };
    const layers: Layer[] = [];
    for (let l = 0; l < hp.nLayer; l++) {
      const p = `blk.${l}.`;
      layers.push({
        attnNorm: need(p + 'attn_norm.weight'),
        wq: mat(p + 'attn_q.weight'), wk: mat(p + 'attn_k.weight'), wv: mat(p + 'attn_v.weight'), wo: mat(p + 'attn_output.weight'),
        bq: tensor(p + 'attn_q.bias'), bk: tensor(p + 'attn_k.bias'), bv: tensor(p + 'attn_v.bias'),
        qNorm: tensor(p + 'attn_q_norm.weight'), kNorm: tensor(p + 'attn_k_norm.weight'),
        ffnNorm: need(p + 'ffn_norm.weight'),
        gate: mat(p + 'ffn_gate.weight'), up: mat(p + 'ffn_up.weight'), down: mat(p + 'ffn_down.weight'),
      });
    }
    const output = byName.has('output.weight') ? mat('output.weight') : embd;
    return new RefModel(hp, embd, need('output_norm.weight'), output, layers);
  }

  /**
   * Logits [tokens.length][nVocab]: row i predicts the token after tokens[i]. With kvType
   * 'q8_0', each K and V head row is rounded through Q8_0 blocks before attention reads it, as a
   * q8_0 KV cache stores it.
   */
  forward(tokens: ArrayLike<number>, opts: { kvType?: 'q8_0' } = {}): Float64Array[] {
    const { nEmbd: E, headDim: hd, nHead, nHeadKv, eps } = this.hp;
    const group = nHead / nHeadKv;
    const n = tokens.length;
    const x = Array.from(tokens, (t) => this.embd.w.slice(t * E, (t + 1) * E));
    for (const L of this.layers) {
      const qs: Float64Array[] = [], ks: Float64Array[] = [], vs: Float64Array[] = [];
      for (let t = 0; t < n; t++) {
        const xn = rmsnorm(x[t], L.attnNorm, eps);
        const q = addBias(matvec(L.wq, xn), L.bq), k = addBias(matvec(L.wk, xn), L.bk), v = addBias(matvec(L.wv, xn), L.bv);
        for (let h = 0; h < nHead; h++) this.qkHead(q.subarray(h * hd, (h + 1) * hd), L.qNorm, t);
        for (let h = 0; h < nHeadKv; h++) this.qkHead(k.subarray(h * hd, (h + 1) * hd), L.kNorm, t);
        if (opts.kvType === 'q8_0') { roundQ8_0(k); roundQ8_0(v); }
        qs.push(q); ks.push(k); vs.push(v);
      }
      for (let t = 0; t < n; t++) {
        // Causal GQA attention: query head h reads KV head floor(h / group).
        const att = new Float64Array(nHead * hd);
        for (let h = 0; h < nHead; h++) {
          const kvh = Math.floor(h / group);
          const scores = new Float64Array(t + 1);
          for (let j = 0; j <= t; j++) {
            let d = 0;
            for (let i = 0; i < hd; i++) d += qs[t][h * hd + i] * ks[j][kvh * hd + i];
            scores[j] = d / Math.sqrt(hd);
          }
          const mx = Math.max(...scores);
          let sum = 0;
          for (let j = 0; j <= t; j++) sum += (scores[j] = Math.exp(scores[j] - mx));
          for (let j = 0; j <= t; j++) {
            for (let i = 0; i < hd; i++) att[h * hd + i] += (scores[j] / sum) * vs[j][kvh * hd + i];
          }
        }
        addInto(x[t], matvec(L.wo, att));
      }
      for (let t = 0; t < n; t++) {
        const xn = rmsnorm(x[t], L.ffnNorm, eps);
        const g = matvec(L.gate, xn), u = matvec(L.up, xn);
        for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
        addInto(x[t], matvec(L.down, g));
      }
    }
    return x.map((xt) => matvec(this.output, rmsnorm(xt, this.outNorm, eps)));
  }

  /** Greedy continuation of `prompt` by `steps` tokens, with the top1 - top2 margin of each pick. */
  greedy(prompt: ArrayLike<number>, steps: number, opts: { kvType?: 'q8_0' } = {}): { tokens: number[]; margins: number[] } {
    const seq = Array.from(prompt);
    const tokens: number[] = [], margins: number[] = [];
    for (let s = 0; s < steps; s++) {
      const logits = this.forward(seq, opts).at(-1)!;
      let best = 0;
      for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
      let second = -Infinity;
      for (let v = 0; v < logits.length; v++) if (v !== best) second = Math.max(second, logits[v]);
      tokens.push(best);
      margins.push(logits[best] - second);
      seq.push(best);
    }
    return { tokens, margins };
  }

  /** Optional per-head RMSNorm (qwen3), then RoPE at position pos, in place. */
  private qkHead(x: Float64Array, norm: Float64Array | null, pos: number): void {
    if (norm) x.set(rmsnorm(x, norm, this.hp.eps));
    const { nRot, ropeBase, ropeFreqScale, ropeFreqFactors, neox } = this.hp;
    const half = nRot / 2;
    for (let i = 0; i < half; i++) {
      const theta = (pos * ropeFreqScale * ropeBase ** (-2 * i / nRot)) / (ropeFreqFactors ? ropeFreqFactors[i] : 1);
      const a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
      const x0 = x[a], x1 = x[b];
      x[a] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
      x[b] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
    }
  }
}

/**
 * The llama3 RoPE divisors from their defining parameters, as llama.cpp's converter writes them
 * into rope_freqs.weight: short wavelengths keep their frequency, those longer than
 * origCtx / lowFreqFactor are slowed by `factor`, and the band between is interpolated.
 */
export function llama3FreqFactors(
  nRot: number, base: number, p: { factor: number; lowFreqFactor: number; highFreqFactor: number; origCtx: number },
): Float64Array {
  const lowWavelen = p.origCtx / p.lowFreqFactor, highWavelen = p.origCtx / p.highFreqFactor;
  return Float64Array.from({ length: nRot / 2 }, (_, i) => {
    const wavelen = (2 * Math.PI) / base ** (-2 * i / nRot);
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return p.factor;
    const smooth = (p.origCtx / wavelen - p.lowFreqFactor) / (p.highFreqFactor - p.lowFreqFactor);
    return 1 / ((1 - smooth) / p.factor + smooth);
  });
}

// The rope_freqs tensor wins, as in llama.cpp; a factor with no type means linear, as there.
function ropeScaling(meta: GgufMetadata, arch: string, nRot: number, base: number, tensor: Float64Array | null) {
  const get = (k: string) => meta[`${arch}.rope.scaling.${k}`];
  const factor = get('factor') ?? meta[`${arch}.rope.scale_linear`];
  const type = String(get('type') ?? (factor !== undefined ? 'linear' : 'none'));
  let ropeFreqScale = 1, ropeFreqFactors = tensor;
  if (type === 'linear') ropeFreqScale = 1 / Number(factor ?? 1);
  else if (type === 'llama3' && !tensor) {
    ropeFreqFactors = llama3FreqFactors(nRot, base, {
      factor: Number(factor), lowFreqFactor: Number(get('low_freq_factor') ?? 1), highFreqFactor: Number(get('high_freq_factor') ?? 4),
      origCtx: Number(get('original_context_length') ?? 8192),
    });
  } else if (type !== 'none' && type !== 'llama3') throw new Error(`reference: RoPE scaling ${type} is not modelled`);
  return { ropeFreqScale, ropeFreqFactors };
}

function widen(bytes: Buffer, dataOffset: number, t: GgufTensorInfo): Float64Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const at = dataOffset + t.offset;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + at, t.bytes);
  const out = new Float64Array(n);
  switch (t.type) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true); break;
    case 'F16': for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true)); break;
    case 'BF16': {
      const f = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < n; i++) { f.setUint32(0, dv.getUint16(2 * i, true) << 16); out[i] = f.getFloat32(0); }
      break;
    }
    default: throw new Error(`reference: tensor ${t.name} is ${t.type}; only F32, F16 and BF16 are read`);
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * x through ggml's Q8_0 blocks of 32, in place, as its x86 quantizer rounds (a q8_0 KV cache's
 * write): per block d = amax / 127 in float, kept as f16; codes round-half-even(x * (127 / amax));
 * the value read back is f16(d) * code. (Head sizes are multiples of 32 here, so the blocks of a
 * row are each head's own.)
 */
function roundQ8_0(x: Float64Array): void {
  for (let b = 0; b < x.length; b += 32) {
    const blk = x.subarray(b, b + 32).map(Math.fround);
    let amax = 0;
    for (const v of blk) amax = Math.max(amax, Math.abs(v));
    const d = toHalf(Math.fround(amax / 127)), id = amax ? Math.fround(127 / amax) : 0;
    blk.forEach((v, i) => { x[b + i] = d * roundHalfEven(Math.fround(v * id)); });
  }
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x), r = x - f;
  return r > 0.5 || (r === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** The f16 nearest x (ties to even), as a number; finite values within f16's range. */
function toHalf(x: number): number {
  if (x === 0) return 0;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);  // subnormals below 2^-14
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

function rmsnorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * w[i]);
}

function matvec(m: Mat, x: Float64Array): Float64Array {
  const y = new Float64Array(m.nOut);
  for (let r = 0; r < m.nOut; r++) {
    let s = 0;
    const o = r * m.nIn;
    for (let i = 0; i < m.nIn; i++) s += m.w[o + i] * x[i];
    y[r] = s;
  }
  return y;
}

function addBias(x: Float64Array, b: Float64Array | null): Float64Array {
  if (b) addInto(x, b);
  return x;
}

function addInto(x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i];
}
