/**
 * `npm --prefix bench run bench:kv`: what the paged KV cache and the scheduler buy (issue 4).
 *  1. n = 1, 4, 16, 64 trajectories over one 512-token prompt, 128 tokens each: KV blocks in use
 *     at the peak against n separate copies, and aggregate decode tok/s beside llama.cpp's
 *     batched-bench with a shared prompt (-pps, PERF.md section 2b: the same 512 + 128 setup).
 *  2. Time to first token of a 1024-token prefix + 16-token question, prefix cached or not.
 *  3. Poisson arrivals of chat-like requests: p50/p99 time per output token, with and without
 *     chunked prefill (a 128-token step budget either way).
 * Models: TinyStories 260K from refdata and the SmolLM2-135M shape (Q8_0) that `npm run bench`
 * writes to bench/out/models (both need ../shared/refdata). Prints tables to stdout, writes
 * bench/out/kv-<time>.json.
 *
 *   --quick   smaller runs (n up to 16, fewer arrivals)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel, type Model } from '../lib/index.js';
import { otherLoad } from './cpu-load.js';
import { decodeRate, median, randomIds } from './measure.js';
import { SHAPES, shapeModel } from './model-shapes.js';
import { fmt, formatTable } from './table.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'bench', 'out');
const REFDATA = process.env.WEFT_REFDATA ?? path.resolve(ROOT, '../shared/refdata');
const THREADS = 2;
const BLOCK = 16;
const PROMPT = 512;
const GEN = 128;
// llama-batched-bench -pps S_TG (t/s), smollm2-135m-shape Q8_0, PERF.md section 2b.
const LLAMA_PPS_TG: Record<number, number> = { 1: 72.24, 4: 135.59, 16: 162.16 };
const POISSON_RATE = 0.5;  // requests per second: below what 2 cores serve, with queues in bursts

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' } } });
const quick = args.quick ?? false;
const log = (s: string) => process.stderr.write(`${s}\n`);

interface Bench { name: string; file: string; vocabHi: number }

async function main(): Promise<void> {
  const started = new Date();
  const load = otherLoad();
  const smollm = await shapeModel(path.join(OUT, 'models'), SHAPES['smollm2-135m-shape'], 'Q8_0', path.join(REFDATA, 'tokenizer', 'llama.cpp-vocab'));
  const models: Bench[] = [
    { name: 'stories260K', file: path.join(REFDATA, 'models', 'stories260Ktok512.gguf'), vocabHi: 512 },
    { name: 'smollm2-135m-shape-Q8_0', file: smollm, vocabHi: 32000 },
  ];
  const widths = quick ? [1, 4, 16] : [1, 4, 16, 64];

  const widthRows: string[][] = [];
  const widthJson: unknown[] = [];
  for (const m of models) {
    for (const n of widths) {
      const r = await trajectories(m, n);
      widthJson.push({ model: m.name, n, ...r });
      const naive = n * Math.ceil((PROMPT + GEN) / BLOCK);
      widthRows.push([
        m.name, String(n), String(r.peakBlocks), String(naive), fmt(naive / r.peakBlocks, 1) + 'x', fmt(r.meanTokens, 0),
        fmt(r.ttftMs, 0), fmt(r.tgTokPerS), m.name.startsWith('smollm') ? fmt(LLAMA_PPS_TG[n]) : '-',
      ]);
      log(`${m.name} n=${n}: peak ${r.peakBlocks} blocks, tg ${fmt(r.tgTokPerS)} tok/s`);
    }
  }

  const ttftRows: string[][] = [];
  const ttftJson: unknown[] = [];
  for (const m of models) {
    const r = await cachedPrefix(m);
    ttftJson.push({ model: m.name, ...r });
    ttftRows.push([m.name, '1024 + 16', fmt(r.coldMs, 0), fmt(r.warmMs, 0), fmt(r.coldMs / r.warmMs, 1) + 'x', String(r.cachedTokens)]);
    log(`${m.name}: TTFT cold ${fmt(r.coldMs, 0)} ms, cached ${fmt(r.warmMs, 0)} ms`);
  }

  const poissonRows: string[][] = [];
  const poissonJson: unknown[] = [];
  for (const chunked of [true, false]) {
    const r = await poisson(models[1], chunked, quick ? 12 : 24);
    poissonJson.push({ model: models[1].name, chunked, ...r });
    poissonRows.push([
      models[1].name, chunked ? 'chunked, 128/step' : 'whole prompts', String(r.requests), fmt(r.tpot.p50, 1), fmt(r.tpot.p99, 1),
      fmt(r.itl.p50, 1), fmt(r.itl.p99, 0), fmt(r.ttft.p50, 0), fmt(r.ttft.p99, 0), fmt(r.seconds, 0),
    ]);
    log(`poisson ${chunked ? 'chunked' : 'whole'}: TPOT p50 ${fmt(r.tpot.p50)} p99 ${fmt(r.tpot.p99)} ms`);
  }
  const othersPct = load();

  console.log([
    `weft KV / scheduler bench  ${started.toISOString()}  ${os.cpus()[0]?.model ?? '?'}, ${os.cpus().length} cores, ${THREADS} threads, ` +
      `block ${BLOCK} tokens; other processes used ${othersPct}% of the CPU${othersPct > 5 ? ' (figures disturbed)' : ''}`,
    '',
    `1. n trajectories over one ${PROMPT}-token prompt, up to ${GEN} tokens each (temperature 0.8, seeds seed + i)`,
    formatTable(['model', 'n', 'peak blocks', 'naive blocks', 'saved', 'tok/traj', 'prompt ms', 'TG tok/s', 'llama.cpp -pps S_TG'], widthRows),
    '   naive = n separate sequences of prompt + 128 tokens; TG tok/s counts tokens after every trajectory has its first;',
    '   llama.cpp: llama-batched-bench -npp 512 -ntg 128 -pps (PERF.md 2b), B=1/4/16 only. tok/traj < 128: trajectories hit EOS.',
    '',
    '2. time to first token, 1024-token prefix + 16-token question (medians of 3)',
    formatTable(['model', 'prompt', 'cold ms', 'cached prefix ms', 'speed-up', 'cached tokens'], ttftRows),
    '',
    `3. Poisson arrivals (${POISSON_RATE} requests/s): prompts log-normal (median 200, 16..1024), outputs log-normal (median 60, 8..256)`,
    formatTable(['model', 'prefill', 'requests', 'TPOT p50 ms', 'TPOT p99 ms', 'ITL p50 ms', 'ITL p99 ms', 'TTFT p50 ms', 'TTFT p99 ms', 'wall s'], poissonRows),
    '   TPOT: per request (last token - first token) / (tokens - 1); ITL: every gap between two tokens of a request.',
  ].join('\n'));

  mkdirSync(OUT, { recursive: true });
  const json = path.join(OUT, `kv-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(json, JSON.stringify({ started, quick, threads: THREADS, othersPct, widths: widthJson, ttft: ttftJson, poisson: poissonJson }, null, 1));
  log(`wrote ${path.relative(process.cwd(), json)}`);
}

async function withModel<T>(m: Bench, opts: Parameters<typeof loadModel>[1], fn: (model: Model) => Promise<T>): Promise<T> {
  const model = await loadModel(m.file, { threads: THREADS, blockSize: BLOCK, kvType: 'f16', ...opts });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

async function trajectories(m: Bench, n: number) {
  return withModel(m, { kvCacheTokens: 16384 }, async (model) => {
    // Warm-up: page the weights in and size the scratch for a 512-token step.
    await model.evaluate(randomIds(PROMPT, 3, m.vocabHi, 1));
    const prompt = randomIds(PROMPT, 3, m.vocabHi, 77);
    const stamps: number[][] = Array.from({ length: n }, () => []);
    let peak = 0;
    const t0 = performance.now();
    const gen = model.generate(prompt, { n, maxTokens: GEN, temperature: 0.8, seed: 1 });
    for await (const ev of gen) {
      stamps[ev.trajectory].push(performance.now());
      peak = Math.max(peak, model.stats().blocksUsed);
    }
    const r = await gen.result;
    const rate = decodeRate(stamps);
    return {
      peakBlocks: peak,
      meanTokens: r.usage.completionTokens / n,
      ttftMs: Math.min(...stamps.map((s) => s[0])) - t0,
      tgTokPerS: rate.tokPerS,
      totalS: (performance.now() - t0) / 1000,
    };
  });
}

async function cachedPrefix(m: Bench) {
  return withModel(m, { kvCacheTokens: 8192 }, async (model) => {
    await model.evaluate(randomIds(PROMPT, 3, m.vocabHi, 1));
    const ttft = async (ids: number[]) => {
      const t0 = performance.now();
      const gen = model.generate(ids, { maxTokens: 1, temperature: 0 });
      for await (const _ of gen) break;
      const r = await gen.result;
      return { ms: performance.now() - t0, cached: r.usage.cachedPromptTokens };
    };
    const cold: number[] = [], warm: number[] = [];
    let cachedTokens = 0;
    for (let rep = 0; rep < 3; rep++) {
      const prefix = randomIds(1024, 3, m.vocabHi, 500 + rep);
      cold.push((await ttft([...prefix, ...randomIds(16, 3, m.vocabHi, 600 + rep)])).ms);
      const w = await ttft([...prefix, ...randomIds(16, 3, m.vocabHi, 700 + rep)]);
      warm.push(w.ms);
      cachedTokens = w.cached;
    }
    return { coldMs: median(cold), warmMs: median(warm), cachedTokens };
  });
}

async function poisson(m: Bench, chunked: boolean, count: number) {
  return withModel(m, { kvCacheTokens: 16384, stepTokens: 128, chunkedPrefill: chunked }, async (model) => {
    await model.evaluate(randomIds(128, 3, m.vocabHi, 1));
    // The same trace for both runs: seeded arrival gaps and lengths.
    let s = 12345;
    const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
    const logNormal = (median: number, sigma: number, lo: number, hi: number) =>
      Math.round(Math.min(hi, Math.max(lo, median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())))));
    const ratePerS = POISSON_RATE;
    let at = 0;
    const trace = Array.from({ length: count }, (_, i) => {
      at += -Math.log(u()) / ratePerS;
      return { at: at * 1000, prompt: randomIds(logNormal(200, 0.8, 16, 1024), 3, m.vocabHi, 900 + i), maxTokens: logNormal(60, 0.6, 8, 256) };
    });
    const t0 = performance.now();
    const runs = trace.map(async (req) => {
      await new Promise((r) => setTimeout(r, Math.max(0, req.at - (performance.now() - t0))));
      const sent = performance.now();
      const stamps: number[] = [];
      for await (const _ of model.generate(req.prompt, { maxTokens: req.maxTokens, temperature: 0.8, seed: 1 })) stamps.push(performance.now());
      return { sent, stamps };
    });
    const done = await Promise.all(runs);
    const tpot = done.filter((d) => d.stamps.length > 1).map((d) => (d.stamps[d.stamps.length - 1] - d.stamps[0]) / (d.stamps.length - 1));
    const itl = done.flatMap((d) => d.stamps.slice(1).map((t, i) => t - d.stamps[i]));
    const ttft = done.map((d) => d.stamps[0] - d.sent);
    return { requests: count, seconds: (performance.now() - t0) / 1000, tpot: pct(tpot), itl: pct(itl), ttft: pct(ttft), preemptions: model.stats().preemptions };
  });
}

function pct(xs: number[]): { p50: number; p99: number } {
  const v = [...xs].sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  return { p50: at(0.5), p99: at(0.99) };
}

await main();
