/**
 * A streaming GGUF (v2/v3) writer, for tests that craft small or broken models and for the bench,
 * which writes 500 MB random-weight models without holding them in memory.
 *
 * Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, the kv pairs, the tensor infos (name,
 * u32 n_dims, i64 ne[], u32 type, u64 offset relative to the data section), zero padding to the
 * alignment, then each tensor's data at an aligned offset. Strings are u64 length + UTF-8 bytes.
 * Tensor values are given as float32 and converted the way ggml's reference code does it, so a
 * file written here holds the same bytes llama.cpp's tools would write for the same floats.
 */
import { open } from 'node:fs/promises';
import { GgufValueType, type GgufValue } from './types.js';

export interface MetaEntry {
  key: string;
  type: GgufValueType;
  value: GgufValue;
  /** Element type when type is ARRAY (arrays of arrays are not supported). */
  elemType?: GgufValueType;
}

const T = GgufValueType;
type Num = number | bigint;
export const u8 = (key: string, value: number): MetaEntry => ({ key, type: T.UINT8, value });
export const i8 = (key: string, value: number): MetaEntry => ({ key, type: T.INT8, value });
export const u16 = (key: string, value: number): MetaEntry => ({ key, type: T.UINT16, value });
export const i16 = (key: string, value: number): MetaEntry => ({ key, type: T.INT16, value });
export const u32 = (key: string, value: number): MetaEntry => ({ key, type: T.UINT32, value });
export const i32 = (key: string, value: number): MetaEntry => ({ key, type: T.INT32, value });
export const u64 = (key: string, value: Num): MetaEntry => ({ key, type: T.UINT64, value });
export const i64 = (key: string, value: Num): MetaEntry => ({ key, type: T.INT64, value });
export const f32 = (key: string, value: number): MetaEntry => ({ key, type: T.FLOAT32, value });
export const f64 = (key: string, value: number): MetaEntry => ({ key, type: T.FLOAT64, value });
export const bool = (key: string, value: boolean): MetaEntry => ({ key, type: T.BOOL, value });
export const str = (key: string, value: string): MetaEntry => ({ key, type: T.STRING, value });
export const arr = (key: string, elemType: GgufValueType, value: GgufValue): MetaEntry =>
  ({ key, type: T.ARRAY, elemType, value });

/** A callback fills `out` ([rows][shape[0]]) with the rows starting at rowStart. */
export type RowSource = (rowStart: number, rows: number, out: Float32Array) => void;

export interface TensorSpec {
  name: string;
  type: TensorType;
  /** ggml order: shape[0] is the row length. */
  shape: number[];
  data: Float32Array | RowSource;
}

/** Types encoded natively, by the core's reference quantizers: [ggml id, values per block, bytes per block]. */
const NATIVE_TYPES = {
  Q4_0: [2, 32, 18], Q4_1: [3, 32, 20], Q5_0: [6, 32, 22], Q5_1: [7, 32, 24],
  Q4_K: [12, 256, 144], Q5_K: [13, 256, 176], Q6_K: [14, 256, 210],
} as const;
type NativeType = keyof typeof NATIVE_TYPES;

export type TensorType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | NativeType;
const GGML_TYPE_ID: Record<TensorType, number> = {
  F32: 0, F16: 1, Q8_0: 8, BF16: 30,
  ...(Object.fromEntries(Object.entries(NATIVE_TYPES).map(([k, v]) => [k, v[0]])) as Record<NativeType, number>),
};
const QK8_0 = 32;           // values per Q8_0 block
const Q8_0_BLOCK_BYTES = 34; // f16 scale + 32 int8

/** Where things landed in the file (offsets of tensors are relative to dataOffset). */
export interface GgufLayout {
  dataOffset: number;
  fileBytes: number;
  tensors: { name: string; offset: number; bytes: number }[];
}

export interface WriteOptions {
  version?: 2 | 3;
  /** Tensor data alignment; written as general.alignment when not 32 and not already in meta. */
  alignment?: number;
}

const CHUNK_BYTES = 4 << 20;

/** Writes a GGUF file, streaming tensor data in chunks of a few MB. */
export async function writeGguf(file: string, meta: MetaEntry[], tensors: TensorSpec[], opts: WriteOptions = {}): Promise<GgufLayout> {
  const version = opts.version ?? 3;
  if (version !== 2 && version !== 3) throw new Error(`GGUF version ${String(version)} is not writable (2 or 3)`);
  const { alignment, entries } = alignmentOf(meta, opts.alignment);

  const head = new ByteSink();
  head.bytes(utf8.encode('GGUF'));
  head.u32(version);
  head.u64(tensors.length);
  head.u64(entries.length);
  for (const e of entries) writeEntry(head, e);

  const layout: GgufLayout = { dataOffset: 0, fileBytes: 0, tensors: [] };
  let offset = 0;
  for (const t of tensors) {
    const bytes = tensorBytes(t);
    offset = alignUp(offset, alignment);
    head.string(t.name);
    head.u32(t.shape.length);
    for (const n of t.shape) head.u64(n);
    head.u32(GGML_TYPE_ID[t.type]);
    head.u64(offset);
    layout.tensors.push({ name: t.name, offset, bytes });
    offset += bytes;
  }
  layout.dataOffset = alignUp(head.length, alignment);
  layout.fileBytes = layout.dataOffset + offset;
  head.bytes(new Uint8Array(layout.dataOffset - head.length));

  const fh = await open(file, 'w');
  try {
    await writeAll(fh, head.view());
    let pos = 0;
    for (const [i, t] of tensors.entries()) {
      const pad = layout.tensors[i].offset - pos;
      if (pad > 0) await writeAll(fh, new Uint8Array(pad));
      await writeTensorData(fh, t);
      pos = layout.tensors[i].offset + layout.tensors[i].bytes;
    }
  } finally {
    await fh.close();
  }
  return layout;
}

function alignmentOf(meta: MetaEntry[], requested: number | undefined): { alignment: number; entries: MetaEntry[] } {
  const inMeta = meta.find((e) => e.key === 'general.alignment');
  if (inMeta && requested !== undefined && inMeta.value !== requested) {
    throw new Error(`alignment ${requested} disagrees with general.alignment ${String(inMeta.value)} in meta`);
  }
  // A malformed general.alignment (wrong type, not a power of two) is written as given, for tests
  // of the reader; the data is then laid out at 32.
  const fromMeta = inMeta && typeof inMeta.value === 'number' && isPow2(inMeta.value) ? inMeta.value : undefined;
  const alignment = requested ?? fromMeta ?? 32;
  if (!isPow2(alignment)) throw new Error(`alignment ${alignment} is not a power of two`);
  const entries = inMeta || alignment === 32 ? meta : [...meta, u32('general.alignment', alignment)];
  return { alignment, entries };
}

function tensorBytes(t: TensorSpec): number {
  if (!(t.type in GGML_TYPE_ID)) throw new Error(`tensor ${t.name}: type ${String(t.type)} is not writable`);
  if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw new Error(`tensor ${t.name}: shape [${t.shape.join(', ')}] is not 1 to 4 non-negative integers`);
  }
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.data instanceof Float32Array && t.data.length !== n) {
    throw new Error(`tensor ${t.name}: ${t.data.length} values for shape [${t.shape.join(', ')}] (${n})`);
  }
  switch (t.type) {
    case 'F32': return 4 * n;
    case 'F16': case 'BF16': return 2 * n;
    case 'Q8_0':
      if (t.shape[0] % QK8_0 !== 0) throw new Error(`tensor ${t.name}: Q8_0 rows must be a multiple of 32 long, got ${t.shape[0]}`);
      return (n / QK8_0) * Q8_0_BLOCK_BYTES;
    default: {
      const [, block, bytes] = NATIVE_TYPES[t.type];
      if (t.shape[0] % block !== 0) throw new Error(`tensor ${t.name}: ${t.type} rows must be a multiple of ${block} long, got ${t.shape[0]}`);
      return (n / block) * bytes;
    }
  }
}

type FileHandle = Awaited<ReturnType<typeof open>>;

async function writeAll(fh: FileHandle, b: Uint8Array): Promise<void> {
  for (let done = 0; done < b.length;) done += (await fh.write(b, done, b.length - done)).bytesWritten;
}

async function writeTensorData(fh: FileHandle, t: TensorSpec): Promise<void> {
  const rowLen = t.shape[0];
  const nRows = rowLen === 0 ? 0 : t.shape.reduce((a, b) => a * b, 1) / rowLen;
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / 4 / Math.max(1, rowLen)));
  const scratch = typeof t.data === 'function' ? new Float32Array(Math.min(nRows, rowsPerChunk) * rowLen) : null;
  for (let r = 0; r < nRows; r += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, nRows - r);
    let x: Float32Array;
    if (typeof t.data === 'function') {
      x = scratch!.subarray(0, rows * rowLen);
      t.data(r, rows, x);
    } else {
      x = t.data.subarray(r * rowLen, (r + rows) * rowLen);
    }
    await writeAll(fh, await encode(t.type, x, rowLen));
  }
}

/** The bytes of `x` (whole rows of `rowLen` values) stored as `type`. */
export async function encode(type: TensorType, x: Float32Array, rowLen: number): Promise<Uint8Array> {
  switch (type) {
    case 'F32': return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case 'F16': return new Uint8Array(convert16(x, f32BitsToF16).buffer);
    case 'BF16': return new Uint8Array(convert16(x, f32BitsToBf16).buffer);
    case 'Q8_0': return quantizeQ8_0(x);
    default: {
      // Loaded on first use so that writing float files needs no compiled addon.
      const { quantize } = await import('../native.js');
      return quantize(GGML_TYPE_ID[type], x, rowLen);
    }
  }
}

function convert16(x: Float32Array, conv: (bits: number) => number): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = conv(bits[i]);
  return out;
}

/** IEEE half from float32 bits, round to nearest even (subnormals, overflow to inf, NaN kept). */
export function f32BitsToF16(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;  // rebiased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;  // below half the smallest subnormal: +-0
    // Subnormal: shift the mantissa with its implicit bit into place, then round to even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, up to inf, which is the right rounding.
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** bfloat16 from float32 bits, round to nearest even; NaN stays a quiet NaN (as ggml does). */
export function f32BitsToBf16(f: number): number {
  if ((f & 0x7fffffff) >>> 0 > 0x7f800000) return ((f >>> 16) | 0x40) & 0xffff;
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

// ggml's quantize_row_q8_0_ref: per block of 32, d = amax/127 stored as f16, q = roundf(x / d),
// computed in float32 (x * (1/d)), halves rounded away from zero.
function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nBlocks = x.length / QK8_0;
  const out = new Uint8Array(nBlocks * Q8_0_BLOCK_BYTES);
  const q = new Int8Array(out.buffer);
  const dBits = new Uint32Array(1);
  const dF = new Float32Array(dBits.buffer);
  for (let b = 0; b < nBlocks; b++) {
    const base = b * QK8_0;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(x[base + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    dF[0] = d;
    const h = f32BitsToF16(dBits[0]);
    const o = b * Q8_0_BLOCK_BYTES;
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < QK8_0; j++) {
      const v = Math.fround(x[base + j] * id);
      q[o + 2 + j] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
    }
  }
  return out;
}

function writeEntry(s: ByteSink, e: MetaEntry): void {
  s.string(e.key);
  s.u32(e.type);
  if (e.type !== T.ARRAY) {
    writeScalar(s, e.type, e.value, e.key);
    return;
  }
  const et = e.elemType;
  if (et === undefined || et === T.ARRAY) throw new Error(`${e.key}: an ARRAY entry needs a scalar or STRING elemType`);
  const v = e.value;
  if (typeof v !== 'object' || v === null || typeof (v as ArrayLike<unknown>).length !== 'number') {
    throw new Error(`${e.key}: an ARRAY value must be an array or typed array`);
  }
  const items = v as ArrayLike<GgufValue>;
  s.u32(et);
  s.u64(items.length);
  for (let i = 0; i < items.length; i++) writeScalar(s, et, items[i], e.key);
}

function writeScalar(s: ByteSink, type: GgufValueType, v: GgufValue, key: string): void {
  const bad = () => new Error(`${key}: ${typeof v} value does not fit type ${type}`);
  if (type === T.STRING) {
    if (typeof v !== 'string') throw bad();
    s.string(v);
  } else if (type === T.BOOL) {
    if (typeof v !== 'boolean') throw bad();
    s.u8(v ? 1 : 0);
  } else if (type === T.UINT64 || type === T.INT64) {
    if (typeof v !== 'bigint' && typeof v !== 'number') throw bad();
    if (type === T.UINT64) s.u64(v); else s.i64(v);
  } else {
    if (typeof v !== 'number') throw bad();
    switch (type) {
      case T.UINT8: s.u8(v); break;
      case T.INT8: s.grow(1).setInt8(0, v); break;
      case T.UINT16: s.grow(2).setUint16(0, v, true); break;
      case T.INT16: s.grow(2).setInt16(0, v, true); break;
      case T.UINT32: s.u32(v); break;
      case T.INT32: s.grow(4).setInt32(0, v, true); break;
      case T.FLOAT32: s.grow(4).setFloat32(0, v, true); break;
      case T.FLOAT64: s.grow(8).setFloat64(0, v, true); break;
      default: throw new Error(`${key}: unknown value type ${type}`);
    }
  }
}

/** A growable little-endian byte buffer for the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  length = 0;

  /** Reserves n bytes at the end and returns a DataView over them. */
  grow(n: number): DataView {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    const dv = new DataView(this.buf.buffer, this.length, n);
    this.length += n;
    return dv;
  }
  u8(v: number): void { this.grow(1).setUint8(0, v); }
  u32(v: number): void { this.grow(4).setUint32(0, v, true); }
  u64(v: Num): void { this.grow(8).setBigUint64(0, BigInt(v), true); }
  i64(v: Num): void { this.grow(8).setBigInt64(0, BigInt(v), true); }
  bytes(b: Uint8Array): void {
    const dv = this.grow(b.length);
    new Uint8Array(dv.buffer, dv.byteOffset, b.length).set(b);
  }
  string(s: string): void {
    const b = utf8.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  view(): Uint8Array { return this.buf.subarray(0, this.length); }
}

const utf8 = new TextEncoder();
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
