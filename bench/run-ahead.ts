/**
 * `npm --prefix bench run bench:run-ahead`: what running decode ahead (LoadOptions.runAhead)
 * buys and costs, on the SmolLM2-135M shape (Q8_0, Q4_K_M) that `npm run bench` writes.
 * Three copies of each model are loaded side by side, runAhead 1, 4 and 8, and used in turn each
 * round, so that the VM's drift hits both alike:
 *  - decode: B=1 greedy, 128 tokens after a 16-token prompt, tok/s from the token stamps;
 *  - time to first token of a 16-token request arriving while another sequence decodes: what a
 *    newcomer waits for the call in flight.
 *
 *   --rounds N   rounds per model (default 12)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel, type Model } from '../lib/index.js';
import { decodeRate, median, randomIds } from './measure.js';
import { SHAPES, shapeModel, type FileType } from './model-shapes.js';
import { fmt, formatTable } from './table.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REFDATA = process.env.WEFT_REFDATA ?? path.resolve(ROOT, '../shared/refdata');
const SETTINGS = [1, 4, 8];
const PROMPT = 16;
const GEN = 128;

const { values: args } = parseArgs({ options: { rounds: { type: 'string' } } });
const rounds = Number(args.rounds ?? 12);
const log = (s: string) => process.stderr.write(`${s}\n`);
const ids = (seed: number) => randomIds(PROMPT, 3, 30000, seed);

async function decode(m: Model, seed: number): Promise<number> {
  const stamps: number[] = [];
  const g = m.generate(ids(seed), { temperature: 0, maxTokens: GEN });
  for await (const _ of g) stamps.push(performance.now());
  await g.result;
  return decodeRate([stamps]).tokPerS;
}

async function ttft(m: Model, seed: number, delayMs: number): Promise<number> {
  const background = m.generate(ids(seed), { temperature: 0, maxTokens: 2 * GEN });
  await new Promise((r) => setTimeout(r, delayMs));
  const t0 = performance.now();
  const g = m.generate(ids(seed + 1), { temperature: 0, maxTokens: 2 });
  let first = NaN;
  for await (const _ of g) {
    first = performance.now() - t0;
    break;
  }
  await g.result;
  await background.result;
  return first;
}

const rows: string[][] = [];
for (const type of ['Q8_0', 'Q4_K_M'] as FileType[]) {
  const file = await shapeModel(path.join(ROOT, 'bench', 'out', 'models'), SHAPES['smollm2-135m-shape'], type, path.join(REFDATA, 'tokenizer', 'llama.cpp-vocab'));
  log(`${path.basename(file)}: ${rounds} rounds`);
  const models = await Promise.all(SETTINGS.map((runAhead) => loadModel(file, { threads: 2, kvCacheTokens: 4096, runAhead })));
  try {
    const rate: number[][] = SETTINGS.map(() => []);
    const wait: number[][] = SETTINGS.map(() => []);
    for (const m of models) await decode(m, 1);  // warm-up
    for (let r = 0; r < rounds; r++) {
      for (let v = 0; v < models.length; v++) {
        rate[v].push(await decode(models[v], 100 + r));
        wait[v].push(await ttft(models[v], 200 + r, 100 + 7 * r));
      }
    }
    SETTINGS.forEach((k, v) => {
      const st = models[v].stats();
      rows.push([path.basename(file, '.gguf'), String(k), fmt(median(rate[v])), fmt(median(wait[v])), fmt(Math.max(...wait[v])), fmt(st.steps / st.calls, 2)]);
    });
  } finally {
    for (const m of models) await m.dispose();
  }
}
console.log(formatTable(['model', 'runAhead', 'decode B=1 tok/s', 'newcomer TTFT ms', 'max', 'steps per call'], rows));
console.log(`medians over ${rounds} interleaved rounds; TTFT: a ${PROMPT}-token request arriving while one sequence decodes`);
