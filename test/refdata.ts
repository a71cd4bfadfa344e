// Where llama.cpp's reference data lives (../shared/refdata beside the repo), and a way for
// tests to skip cleanly, saying why, when it is absent.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REFDATA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/refdata');
export const HAVE_REFDATA = existsSync(path.join(REFDATA, 'MANIFEST.md'));
if (!HAVE_REFDATA) {
  console.warn(`[weft tests] ${REFDATA} is absent: tests that compare with llama.cpp's outputs are skipped`);
}

export function refPath(...parts: string[]): string {
  return path.join(REFDATA, ...parts);
}

export function refJson<T = any>(...parts: string[]): T {
  return JSON.parse(readFileSync(refPath(...parts), 'utf8')) as T;
}

/** Raw little-endian float32 file as a Float32Array. */
export function refF32(...parts: string[]): Float32Array {
  const b = readFileSync(refPath(...parts));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
