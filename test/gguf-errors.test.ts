// Corrupt, truncated and unsupported model files give a WeftError with a stable code and a
// message naming the problem, and never crash the process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, readGguf, WeftError } from '../lib/index.js';
import { HAVE_REFDATA, refJson, refPath } from './refdata.js';

let dir = '';
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'weft-gguf-')); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p;
    if (v && typeof (v as { dispose?: unknown }).dispose === 'function') await (v as { dispose(): Promise<void> }).dispose();
    return 'OK';
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    return (e as WeftError).code;
  }
}

function variant(name: string, bytes: Uint8Array): string {
  const p = path.join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

describe('GGUF files that are not what they claim', () => {
  it('a missing file is E_INVALID_ARGUMENT naming the path', async () => {
    await expect(loadModel(path.join(tmpdir(), 'no-such-model.gguf'))).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT', message: /no-such-model\.gguf/ });
  });

  it('an empty or non-GGUF file is E_MODEL_FORMAT', async () => {
    await expect(readGguf(variant('empty.gguf', new Uint8Array()))).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: /empty/ });
    await expect(readGguf(variant('text.gguf', new TextEncoder().encode('hello, this is not a model file at all')))).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: /magic/ });
  });
});

describe.skipIf(!HAVE_REFDATA)('GGUF validation on copies of the shared models', () => {
  const src = () => new Uint8Array(readFileSync(refPath('models', 'stories260Ktok512.gguf')));
  const u64At = (b: Uint8Array, off: number, v: bigint) => new DataView(b.buffer).setBigUint64(off, v, true);

  it('reads metadata and the tensor table exactly as gguf-py saw them', async () => {
    const models = refJson<Record<string, any>>('models', 'models.json');
    const entry = Object.entries(models).find(([k]) => k.includes('llama-mha-odd-f32'));
    const g = await readGguf(refPath('models', 'llama-mha-odd-f32.gguf'));
    expect(g.version).toBe(3);
    expect(g.metadata['general.architecture']).toBe('llama');
    expect(g.metadata['llama.attention.head_count']).toBe(6);
    expect((g.metadata['tokenizer.ggml.tokens'] as string[]).length).toBe(32000);
    expect(g.metadata['tokenizer.ggml.scores']).toBeInstanceOf(Float32Array);
    if (entry) {
      const tensors = (entry[1] as { tensors: { name: string; ne: number[]; file_offset: number }[] }).tensors;
      expect(g.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
      expect(g.tensors.map((t) => t.shape)).toEqual(tensors.map((t) => t.ne));
    }
  });

  it('wrong magic, impossible counts and an unknown tensor type are named', async () => {
    const magic = src();
    magic[0] = 0x47 ^ 0xff;
    await expect(loadModel(variant('magic.gguf', magic))).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: /magic/ });

    const tensors = src();
    u64At(tensors, 8, 1n << 60n);
    await expect(loadModel(variant('ntensors.gguf', tensors))).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: /tensor count/ });

    const kvs = src();
    u64At(kvs, 16, 1n << 40n);
    await expect(loadModel(variant('nkv.gguf', kvs))).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: /metadata count/ });

    // The first tensor info: name, u32 rank, i64 dims, u32 type.
    const type = src();
    const name = new TextEncoder().encode('token_embd.weight');
    const at = Buffer.from(type).indexOf(Buffer.from(name));
    expect(at).toBeGreaterThan(0);
    const dv = new DataView(type.buffer);
    const rank = dv.getUint32(at + name.length, true);
    dv.setUint32(at + name.length + 4 + 8 * rank, 99, true);
    await expect(loadModel(variant('type.gguf', type))).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: /token_embd\.weight.*type id 99/ });

    const dims = src();
    new DataView(dims.buffer).setBigInt64(at + name.length + 4, 1n << 50n, true);
    await expect(loadModel(variant('dims.gguf', dims))).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: /token_embd\.weight/ });
  });

  it('a missing required key and an unknown architecture are reported', async () => {
    const b = src();
    const key = Buffer.from('llama.block_count');
    const at = Buffer.from(b).indexOf(key);
    b[at + key.length - 1] = 'X'.charCodeAt(0);
    await expect(loadModel(variant('nokey.gguf', b))).rejects.toMatchObject({ code: 'E_MODEL_FORMAT', message: /llama\.block_count/ });

    const arch = src();
    // 'llama' as the value of general.architecture: the string right after the key and its type.
    const k = Buffer.from('general.architecture');
    const ka = Buffer.from(arch).indexOf(k);
    const valueAt = ka + k.length + 4 + 8;
    arch.set(new TextEncoder().encode('lxama'), valueAt);
    await expect(loadModel(variant('arch.gguf', arch))).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: /lxama/ });
  });

  it('weight types without kernels yet are E_UNSUPPORTED naming the type', async () => {
    // IQ4_NL blocks have Q4_0's size (32 weights in 18 bytes), so relabelling one Q4_0 tensor
    // leaves a file that is well-formed but holds a type weft has no kernel for.
    const b = new Uint8Array(readFileSync(refPath('models', 'llama-gqa-k-q4_0.gguf')));
    const name = new TextEncoder().encode('blk.0.attn_q.weight');
    const at = Buffer.from(b).indexOf(Buffer.from(name));
    const dv = new DataView(b.buffer);
    const typeAt = at + name.length + 4 + 8 * dv.getUint32(at + name.length, true);
    expect(dv.getUint32(typeAt, true)).toBe(2); // Q4_0
    dv.setUint32(typeAt, 20, true); // IQ4_NL
    await expect(loadModel(variant('iq4nl.gguf', b))).rejects.toMatchObject({ code: 'E_UNSUPPORTED', message: /IQ4_NL/ });
  });

  it('truncation anywhere is E_MODEL_FORMAT', async () => {
    const b = src();
    const cuts = new Set<number>();
    for (let i = 0; i < 4096; i += 37) cuts.add(i);           // dense through the header
    for (let i = 0; i < 120; i++) cuts.add(Math.floor((b.length * i) / 120));
    cuts.add(b.length - 1);
    const p = path.join(dir, 'cut.gguf');
    for (const n of cuts) {
      writeFileSync(p, b.subarray(0, n));
      expect(await codeOf(loadModel(p, { kvCacheTokens: 64 })), `cut at ${n}`).toBe('E_MODEL_FORMAT');
    }
  });

  it('random byte flips in the header never crash: load fails cleanly or the model runs', async () => {
    const b = src();
    const g = await readGguf(refPath('models', 'stories260Ktok512.gguf'));
    // The header ends where the first tensor's data begins (offset 0 in the data section).
    const headerEnd = b.length - g.tensors.reduce((s, t) => s + t.bytes, 0) - 64;
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const p = path.join(dir, 'flip.gguf');
    const outcomes = new Map<string, number>();
    for (let trial = 0; trial < 300; trial++) {
      const c = b.slice();
      for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) c[Math.floor(rnd() * headerEnd)] ^= 1 << Math.floor(rnd() * 8);
      writeFileSync(p, c);
      let code: string;
      try {
        const m = await loadModel(p, { kvCacheTokens: 64 });
        try {
          await m.evaluate([1, 2, 3]);
          code = 'OK';
        } finally {
          await m.dispose();
        }
      } catch (e) {
        expect(e, `trial ${trial}`).toBeInstanceOf(WeftError);
        code = (e as WeftError).code;
      }
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
    }
    for (const code of outcomes.keys()) expect(['OK', 'E_MODEL_FORMAT', 'E_UNSUPPORTED', 'E_INVALID_ARGUMENT']).toContain(code);
    expect(outcomes.get('E_MODEL_FORMAT') ?? 0).toBeGreaterThan(0);
  });
});
