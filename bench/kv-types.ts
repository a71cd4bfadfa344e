/**
 * `npm --prefix bench run bench:kv-types`: what a q8_0 KV cache buys against the default f16 one,
 * where attention's K/V reads are a large share of a decode step: long contexts, several
 * sequences. The SmolLM2-135M shape in Q8_0 (written by `npm run bench`'s generator; needs
 * ../shared/refdata for its tokenizer keys): 30 layers x 3 KV heads x 64, so 23 KB of f16 K/V a
 * token against 144 MB of weights; at 8 x 1984 tokens a step reads 2.6x the weights' bytes in K/V.
 * Each setting: distinct random prompts, 64 greedy tokens each, aggregate decode tok/s (tokens
 * after every sequence has its first), weft and node-llama-cpp alternating, median of the rounds.
 * node-llama-cpp runs with flash attention on for both cache types here (llama.cpp's quantized V
 * cache needs it; the main bench runs it off). Prints a table, writes bench/out/kv-types-<time>.json.
 *
 *   --rounds N   rounds per setting (default 2)
 *   --no-llama   weft only
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { KvType } from '../lib/index.js';
import { otherLoad, waitIdle } from './cpu-load.js';
import { LlamaCppRunner, llamaCppVersion } from './llama-cpp-runner.js';
import { decodeRate, median, randomIds, type Runner } from './measure.js';
import { SHAPES, shapeModel } from './model-shapes.js';
import { fmt, formatTable, ratio } from './table.js';
import { WeftRunner } from './weft-runner.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'bench', 'out');
const REFDATA = process.env.WEFT_REFDATA ?? path.resolve(ROOT, '../shared/refdata');
const THREADS = 2;
const GEN = 64;
// (sequences, prompt tokens): a short context for scale, then K/V-heavy ones within the shape's
// 2048-token training context.
const SETTINGS = [[1, 256], [1, 1984], [8, 1984]] as const;
const TYPES = ['f16', 'q8_0'] as const;

const { values: args } = parseArgs({ options: { rounds: { type: 'string' }, 'no-llama': { type: 'boolean' } } });
const rounds = Number(args.rounds ?? 2);
const withLlama = !args['no-llama'];
const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<void> {
  const started = new Date();
  const shape = SHAPES['smollm2-135m-shape'];
  const file = await shapeModel(path.join(OUT, 'models'), shape, 'Q8_0', path.join(REFDATA, 'tokenizer', 'llama.cpp-vocab'));
  const kvBytesPerToken = (t: KvType) => shape.layers * 2 * shape.kvHeads * (t === 'q8_0' ? (shape.headDim / 32) * 34 : shape.headDim * 2);
  const engines = withLlama ? ['weft', 'node-llama-cpp'] as const : ['weft'] as const;
  const results: { engine: string; kv: KvType; seqs: number; ctx: number; tokPerS: number[] }[] = [];
  const at = (engine: string, kv: KvType, seqs: number, ctx: number) => {
    let r = results.find((x) => x.engine === engine && x.kv === kv && x.seqs === seqs && x.ctx === ctx);
    if (!r) results.push(r = { engine, kv, seqs, ctx, tokPerS: [] });
    return r;
  };
  const load = otherLoad();
  for (let round = 0; round < rounds; round++) {
    for (const engine of engines) {
      for (const kv of TYPES) {
        await waitIdle(10, 30, log);
        const runner: Runner = engine === 'weft'
          ? await WeftRunner.load(file, THREADS, 8 * (1984 + GEN) + 64, true, kv)
          : await LlamaCppRunner.load(file, THREADS, true, { type: kv, flashAttention: true });
        try {
          // Warm-up: first steps page the weights in and size the scratch buffers.
          await runner.decode([randomIds(64, 3, 32000, 1)], 8);
          for (const [seqs, ctx] of SETTINGS) {
            const prompts = Array.from({ length: seqs }, (_, i) => randomIds(ctx, 3, 32000, 1000 * round + 10 * ctx + i));
            const rate = decodeRate(await runner.decode(prompts, GEN)).tokPerS;
            at(engine, kv, seqs, ctx).tokPerS.push(rate);
            log(`round ${round + 1}: ${engine} ${kv} ${seqs} x ${ctx}: ${fmt(rate)} tok/s`);
          }
        } finally {
          await runner.dispose();
        }
      }
    }
  }
  const othersPct = load();

  const med = (engine: string, kv: KvType, seqs: number, ctx: number) => median(at(engine, kv, seqs, ctx).tokPerS);
  const rows = SETTINGS.map(([seqs, ctx]) => {
    const kvMb = (t: KvType) => (seqs * (ctx + GEN / 2) * kvBytesPerToken(t)) / 1e6;
    const w16 = med('weft', 'f16', seqs, ctx), w8 = med('weft', 'q8_0', seqs, ctx);
    const l16 = withLlama ? med('node-llama-cpp', 'f16', seqs, ctx) : NaN, l8 = withLlama ? med('node-llama-cpp', 'q8_0', seqs, ctx) : NaN;
    return [
      `${seqs} x ${ctx}`, `${fmt(kvMb('f16'), 0)} / ${fmt(kvMb('q8_0'), 0)}`, fmt(w16), fmt(w8), ratio(w8, w16),
      fmt(l16), fmt(l8), ratio(l8, l16), ratio(w16, l16), ratio(w8, l8),
    ];
  });
  console.log([
    `weft KV cache types  ${started.toISOString()}  ${os.cpus()[0]?.model ?? '?'}, ${os.cpus().length} cores, ${THREADS} threads; ` +
      `${withLlama ? await llamaCppVersion() : 'weft only'}; other processes used ${othersPct}% of the CPU${othersPct > 5 ? ' (figures disturbed)' : ''}`,
    `smollm2-135m-shape-Q8_0, ${GEN} greedy tokens per sequence, aggregate decode tok/s, medians of ${rounds} rounds`,
    formatTable(['seqs x prompt', 'K/V MB a step f16 / q8_0', 'weft f16', 'weft q8_0', 'q8/f16', 'nlc f16', 'nlc q8_0', 'q8/f16',
      'weft/nlc f16', 'weft/nlc q8_0'], rows),
    '   K/V MB a step: the K/V bytes one decode step reads at mid-generation (every sequence, every layer).',
  ].join('\n'));
  mkdirSync(OUT, { recursive: true });
  const json = path.join(OUT, `kv-types-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(json, JSON.stringify({ started, threads: THREADS, gen: GEN, othersPct, results }, null, 1));
  log(`wrote ${path.relative(process.cwd(), json)}`);
}

await main();
