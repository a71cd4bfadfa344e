// The native KV pool's memory: allocated and touched at load, on 2 MiB pages where the kernel's
// transparent huge page mode allows (attention streams every attended K/V row each step).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index.js';
import { writeModel } from './helpers/random-model.js';

let dir = '';
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'weft-kv-pool-')); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
const thpMode = existsSync(THP) ? /\[(\w+)\]/.exec(readFileSync(THP, 'utf8'))?.[1] : undefined;
const hugeKb = () => Number(/AnonHugePages:\s+(\d+)/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? NaN);

describe.skipIf(thpMode !== 'madvise' && thpMode !== 'always')(`the KV pool on huge pages (THP mode ${thpMode ?? 'absent'})`, () => {
  it('puts most of a 64 MiB pool on 2 MiB pages', async () => {
    const { file } = await writeModel(dir, 'pool', {
      arch: 'llama', embd: 128, layers: 2, heads: 4, kvHeads: 2, ff: 96, ropeBase: 10000, tied: false, qkNorm: false, seed: 61,
    });
    const before = hugeKb();
    const model = await loadModel(file, { kvCacheTokens: 131072, kvType: 'f16' });
    try {
      const poolKb = model.info.kvCache.bytes / 1024;
      expect(poolKb).toBe(65536);
      expect(hugeKb() - before).toBeGreaterThan(0.5 * poolKb);
    } finally {
      await model.dispose();
    }
  });
});
