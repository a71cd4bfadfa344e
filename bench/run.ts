/**
 * `npm run bench`: weft beside node-llama-cpp (llama.cpp's CPU build from npm), same files,
 * same thread count, interleaved repetitions, and llama.cpp's published figures from
 * refdata/perf/PERF.md. Prints one table to stdout (progress goes to stderr) and writes
 * bench/out/bench-<time>.json with every sample.
 *
 *   --quick        one repetition of a small subset (under two minutes)
 *   --only <a,b>   only models whose name contains one of these texts (the opt-in
 *                  smollm2-135m-shape-Q4_0, qwen25-05b-shape-Q4_0 and llama32-1b-shape-Q4_K_M,
 *                  867 MB, run only when named this way)
 *   --wait-idle    before each model, wait (up to 2 minutes) for other processes to leave the CPU
 *   --profile      also print where weft's forward pass spends its time, per phase and test
 *                  (Model.profile(): wall time per phase, measured at the barriers that end them)
 *   --mmap         both engines map the model file; by default both read it into memory
 *                  (useMmap: false in each), which is weft's faster setting (LoadOptions.useMmap)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readGguf, WeftError, type NativeProfile } from '../lib/index.js';
import { PUBLISHED, PUBLISHED_MEMBW_GBS, type Published } from './llama-cpp-published.js';
import { LlamaCppRunner, llamaCppVersion } from './llama-cpp-runner.js';
import { decodeRate, median, randomIds, type Runner } from './measure.js';
import { measureMembw } from './membw.js';
import { otherLoad, waitIdle } from './cpu-load.js';
import { SHAPES, shapeModel, type FileType } from './model-shapes.js';
import { fmt, formatTable, ratio } from './table.js';
import { addProfile, profileTable } from './profile.js';
import { WeftRunner } from './weft-runner.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'bench', 'out');
const REFDATA = process.env.WEFT_REFDATA ?? path.resolve(ROOT, '../shared/refdata');
const THREADS = 2;
const PROMPT = 512;      // prefill length (llama-bench pp512)
const GEN = 128;         // tokens per sequence (tg128)
const SHORT_PROMPT = 16; // each decoding sequence's own prompt
const BATCHES = [1, 4, 16];
const LONG_TEST = `tg B=1 @${PROMPT}`;
const SHARED_TEST = `tg B=16 @${PROMPT} shared`;

const { values: args } = parseArgs({
  options: { quick: { type: 'boolean' }, only: { type: 'string' }, 'wait-idle': { type: 'boolean' }, profile: { type: 'boolean' }, mmap: { type: 'boolean' } },
});
const quick = args.quick ?? false;
const useMmap = args.mmap ?? false;
// Repetitions per test (the table shows medians). One B=16 run is 2048 tokens, long enough to
// average over and, at node-llama-cpp's speed, too long to repeat within the time budget.
const reps = (batch = 0) => (quick || batch === 16 ? 1 : 3);
const QUICK_MODELS = ['smollm2-135m-shape-Q8_0', 'smollm2-135m-shape-Q4_K_M', 'stories260Ktok512-f16', 'llama-gqa-k-q4_0'];

interface Sample {
  weft: number[]; llamaCpp: number[]; weftTokens: number[]; profile?: NativeProfile;
  /** B=1: read bandwidth around each repetition (mean of the readings just before and after). */
  membwAround?: { weft: number[]; llamaCpp: number[] };
}
interface ModelResult {
  name: string;
  file: string;
  weightBytes: number;
  status: string;  // 'ok', 'unsupported (...)' or an error
  weftKernels?: string;
  /** % of all CPU time that other processes used while this model was measured. */
  othersPct?: number;
  seconds?: number;
  tests: Record<string, Sample>;
  published?: Published;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<void> {
  const started = new Date();
  const machine = {
    cpu: lscpuModel(), cores: os.cpus().length, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    loadAtStart: os.loadavg().map((x) => +x.toFixed(2)), node: process.version, llamaCpp: await llamaCppVersion(),
  };
  log(`machine: ${machine.cpu}, ${machine.cores} cores; measuring read bandwidth...`);
  // Bandwidth drifts (PERF.md saw 28-37 GB/s; a Zen 5 VM here flipped between ~50 and ~80 GB/s
  // within seconds), so it is read before every model and at the end, and the roofline is the
  // best seen: a decode that ran while the machine was slow is not credited with a slow roofline.
  const membw: number[] = [measureMembw(ROOT, THREADS)];

  const models = await modelList();
  const results: ModelResult[] = [];
  const runLoad = otherLoad();
  for (const m of models) {
    if (args['wait-idle']) await waitIdle(5, 120, log);
    const modelLoad = otherLoad();
    const t0 = performance.now();
    if (m !== models[0]) membw.push(measureMembw(ROOT, THREADS));
    const r = await benchModel(m.name, m.file);
    r.othersPct = modelLoad();
    r.seconds = Math.round((performance.now() - t0) / 1000);
    results.push(r);
  }
  const othersPct = runLoad();
  membw.push(measureMembw(ROOT, THREADS));
  const bandwidth = Math.max(...membw);

  const finished = new Date();
  const header = [
    `weft bench  ${started.toISOString()}  ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB  node ${machine.node}`,
    `threads ${THREADS}; model files ${useMmap ? 'mapped' : 'read into memory'} by both (useMmap: ${useMmap}); peer: ${machine.llamaCpp}; read bandwidth ${bandwidth.toFixed(1)} GB/s ` +
      `(bench-membw, 2 threads, best of 15 passes (10 with software prefetch 4 or 8 KiB ahead) before each model and at the end: ${membw.map((x) => x.toFixed(1)).join(' / ')}; PERF.md: ${PUBLISHED_MEMBW_GBS})`,
    `other processes used ${othersPct}% of the CPU during the run${othersPct > 5 ? ' (the machine was not quiet: figures are disturbed)' : ''}; ` +
      `load average at start ${machine.loadAtStart.join(' ')}, at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}` +
      `${quick ? '; --quick: one repetition' : ''}`,
  ];
  const table = formatTable(
    ['model', 'test', 'weft', 'node-llama-cpp', 'llama.cpp PERF.md', 'weft/nlc', 'weft/llama.cpp', 'roof% weft', 'roof% nlc', 'others%'],
    results.flatMap((r) => rows(r, bandwidth)),
  );
  const legend = [
    'tok/s, medians over repetitions. pp512: one 512-token prompt (random ids) from an empty cache.',
    `tg B=n: n sequences at once, each greedy-decoding ${GEN} tokens after its own ${SHORT_PROMPT}-token prompt; aggregate tok/s counted`,
    '  from the moment every sequence has its first token (prompt processing excluded). "(k tok)": weft stopped early at EOS.',
    `${LONG_TEST}: one sequence greedy-decoding ${GEN} tokens after a ${PROMPT}-token prompt (context ${PROMPT}-${PROMPT + GEN}), tok/s as above.`,
    'llama.cpp PERF.md: llama-bench pp512/tg128 (median of 3 passes); B=4/16: batched-bench -pps S_TG (shared 512 prompt, so more context);',
    `  ${LONG_TEST}: batched-bench -pps B=1 S_TG (the same context); ${SHARED_TEST}: its B=16 S_TG, the same setup (16 trajectories`,
    `  sampled at temperature 0.8 over one ${PROMPT}-token prompt whose KV blocks they share; weft only).`,
    'roof%: weight bytes x decode steps/s / read bandwidth (steps/s = tok/s / B): how close decode is to streaming the weights at full speed.',
    '  At B=1 "a / b": a against the best reading of the run; b the median over repetitions of each against the mean of',
    '  two 256 MiB readings taken just before and just after it (the bandwidth the machine gave at that moment).',
    'others%: CPU time other processes took while that model ran (0 on a quiet machine).',
    `repetitions: ${quick ? '1' : '3, and 1 for B=16 (2048 tokens)'}.`,
  ];
  console.log([...header, '', table, '', ...legend].join('\n'));
  if (args.profile) {
    for (const r of results) {
      const tests = Object.entries(r.tests).filter(([, t]) => t.profile).map(([name, t]) => ({ name, profile: t.profile! }));
      if (tests.length) console.log(`\n${r.name}: weft forward time per step, ms (share)\n${profileTable(tests)}`);
    }
    console.log('\nPhases end at barriers; a phase\'s time includes waiting for its slowest thread. Steps include prompt chunks.');
  }

  mkdirSync(OUT, { recursive: true });
  const json = path.join(OUT, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(json, JSON.stringify({
    started, finished, quick, threads: THREADS, prompt: PROMPT, gen: GEN, shortPrompt: SHORT_PROMPT,
    machine, membwGBs: membw, othersPct, results,
  }, null, 1));
  log(`wrote ${path.relative(process.cwd(), json)}`);
}

async function modelList(): Promise<{ name: string; file: string }[]> {
  const vocabDir = path.join(REFDATA, 'tokenizer', 'llama.cpp-vocab');
  const list: { name: string; file: string }[] = [];
  const generated: [string, FileType[], boolean][] = [  // [shape, types, opt-in]
    ['smollm2-135m-shape', ['F32', 'F16', 'Q8_0', 'Q4_K_M'], false],
    ['qwen25-05b-shape', ['Q8_0', 'Q4_K_M'], false],
    ['smollm2-135m-shape', ['Q4_0'], true],
    ['qwen25-05b-shape', ['Q4_0'], true],
    ['llama32-1b-shape', ['Q4_K_M'], true],
  ];
  for (const [shape, types, optIn] of generated) {
    for (const type of types) {
      const name = `${shape}-${type}`;
      if (want(name) && (!optIn || args.only !== undefined)) list.push({ name, file: await shapeModel(path.join(OUT, 'models'), SHAPES[shape], type, vocabDir) });
    }
  }
  const shared = path.join(REFDATA, 'models');
  if (existsSync(shared)) {
    for (const f of readdirSync(shared).filter((f) => f.endsWith('.gguf')).sort()) {
      const name = f.replace(/\.gguf$/, '');
      if (want(name)) list.push({ name, file: path.join(shared, f) });
    }
  } else {
    log(`${shared} is absent: only the generated models are benched`);
  }
  return list;
}

function want(name: string): boolean {
  if (args.only !== undefined) return args.only.split(',').some((part) => name.includes(part));
  return !quick || QUICK_MODELS.includes(name);
}

const failure = (e: unknown) =>
  e instanceof WeftError && e.code === 'E_UNSUPPORTED' ? `unsupported (${e.message})` : `failed: ${String(e)}`;

async function benchModel(name: string, file: string): Promise<ModelResult> {
  const res: ModelResult = { name, file, weightBytes: 0, status: 'ok', tests: {}, published: PUBLISHED[name] };
  log(`${name}: loading`);
  let weft: WeftRunner;
  let vocab: number;
  try {
    const g = await readGguf(file);
    res.weightBytes = g.tensors.reduce((a, t) => a + t.bytes, 0);
    vocab = (g.metadata['tokenizer.ggml.tokens'] as string[]).length;
    const kvTokens = Math.max(PROMPT, BATCHES[BATCHES.length - 1] * (SHORT_PROMPT + GEN)) + 1024;
    weft = await WeftRunner.load(file, THREADS, kvTokens, useMmap);
  } catch (e) {
    res.status = failure(e);
    log(`  ${res.status}`);
    return res;
  }
  res.weftKernels = weft.info.kernels;
  let peer: LlamaCppRunner | null = null;
  try {
    peer = await LlamaCppRunner.load(file, THREADS, useMmap);
  } catch (e) {
    log(`  node-llama-cpp could not load it: ${String(e)}`);
  }
  const runners: ['weft' | 'llamaCpp', Runner][] = [['weft', weft]];
  if (peer) runners.push(['llamaCpp', peer]);
  // One measured call; for weft, the forward-pass profile of just that call joins the sample's.
  const profiled = async <T>(who: 'weft' | 'llamaCpp', sample: Sample, call: () => Promise<T>): Promise<T> => {
    if (who !== 'weft') return call();
    await weft.profile();  // drops what the calls before left
    const out = await call();
    sample.profile = addProfile(sample.profile, await weft.profile());
    return out;
  };
  // One measured decode call into the sample: its aggregate tok/s, and for weft its token count.
  const decodeInto = async (who: 'weft' | 'llamaCpp', sample: Sample, call: () => Promise<number[][]>) => {
    const rate = decodeRate(await profiled(who, sample, call));
    sample[who].push(rate.tokPerS);
    if (who === 'weft') sample.weftTokens.push(rate.tokens);
  };

  try {
    // Prompt ids avoid the control tokens and, in padded vocabularies, the padding.
    const hi = Math.min(vocab, 32000);
    const ids = (n: number, seed: number) => randomIds(n, 3, hi, seed);
    for (const [, r] of runners) {  // warm-up: page the weights in, let each engine size its buffers
      await r.prefill(ids(PROMPT, 1));
      await r.decode([ids(SHORT_PROMPT, 2)], 8);
    }
    const pp: Sample = res.tests.pp512 = { weft: [], llamaCpp: [], weftTokens: [] };
    for (let i = 0; i < reps(); i++) {
      // Alternate which engine goes first so drift in machine speed hits both alike.
      for (const [who, r] of i % 2 ? [...runners].reverse() : runners) {
        pp[who].push(PROMPT / await profiled(who, pp, () => r.prefill(ids(PROMPT, 100 + i))));
      }
    }
    log(`  pp512 weft ${fmt(median(pp.weft))} nlc ${fmt(median(pp.llamaCpp))}`);
    for (const b of BATCHES) {
      const s: Sample = res.tests[`tg B=${b}`] = { weft: [], llamaCpp: [], weftTokens: [] };
      // At B=1 the bandwidth is also read between repetitions, for a roofline against what the
      // machine gave at that moment (see the legend).
      const around: Sample['membwAround'] = b === 1 ? (s.membwAround = { weft: [], llamaCpp: [] }) : undefined;
      let before = around ? measureMembw(ROOT, THREADS, 256) : 0;
      for (let i = 0; i < reps(b); i++) {
        const prompts = Array.from({ length: b }, (_, k) => ids(SHORT_PROMPT, 1000 * (i + 1) + k));
        for (const [who, r] of i % 2 ? [...runners].reverse() : runners) {
          await decodeInto(who, s, () => r.decode(prompts, GEN));
          if (around) {
            const after = measureMembw(ROOT, THREADS, 256);
            around[who].push((before + after) / 2);
            before = after;
          }
        }
      }
      log(`  tg B=${b} weft ${fmt(median(s.weft))} nlc ${fmt(median(s.llamaCpp))}`);
    }
    // Decode over a longer context, where attention's share of a step grows: batched-bench's
    // B=1 -pps setup (512-token prompt, then 128 tokens).
    const far: Sample = res.tests[LONG_TEST] = { weft: [], llamaCpp: [], weftTokens: [] };
    for (let i = 0; i < reps(); i++) {
      for (const [who, r] of i % 2 ? [...runners].reverse() : runners) {
        // weft evaluates the prompt first, so that the decode call finds it in its prefix cache
        // and the profile shows decode steps rather than the prompt's (tok/s excludes it anyway).
        if (who === 'weft') await r.prefill(ids(PROMPT, 5000 + i));
        await decodeInto(who, far, () => r.decode([ids(PROMPT, 5000 + i)], GEN));
      }
    }
    log(`  ${LONG_TEST} weft ${fmt(median(far.weft))} nlc ${fmt(median(far.llamaCpp))}`);
    // batched-bench -pps's own setup: 16 sequences over one shared 512-token prompt (weft only:
    // node-llama-cpp would evaluate the prompt 16 times).
    const shared: Sample = res.tests[SHARED_TEST] = { weft: [], llamaCpp: [], weftTokens: [] };
    for (let i = 0; i < reps(16); i++) {
      const prompt = ids(PROMPT, 7000 + i);
      await weft.prefill(prompt);  // into the prefix cache, so that the profile shows decode steps
      await decodeInto('weft', shared, () => weft.fork(prompt, 16, GEN, 1 + i));
    }
    log(`  ${SHARED_TEST} weft ${fmt(median(shared.weft))}`);
  } catch (e) {
    res.status = failure(e);
    log(`  ${res.status}`);
  } finally {
    await weft.dispose();
    await peer?.dispose();
  }
  return res;
}

function rows(r: ModelResult, membw: number): string[][] {
  if (r.status !== 'ok' && Object.keys(r.tests).length === 0) {
    const short = r.status.startsWith('unsupported') ? 'unsupported' : r.status.slice(0, 60);
    return [[r.name, short, '-', '-', '-', '-', '-', '-', '-', '-']];
  }
  const published: Record<string, number | undefined> = {
    pp512: r.published?.pp512, 'tg B=1': r.published?.tg128, 'tg B=4': r.published?.tgB4, 'tg B=16': r.published?.tgB16,
    [LONG_TEST]: r.published?.tgB1At512, [SHARED_TEST]: r.published?.tgB16,
  };
  const out = Object.entries(r.tests).map(([test, s], i) => {
    const w = median(s.weft);
    const l = s.llamaCpp.length ? median(s.llamaCpp) : undefined;
    const b = test === 'pp512' ? 0 : Number(/B=(\d+)/.exec(test)?.[1]);
    const pct = (tokPerS: number, gbs: number) => (100 * r.weightBytes * (tokPerS / b)) / (gbs * 1e9);
    // Against the run's best reading, and at B=1 also the median against the readings around
    // each repetition.
    const roof = (who: 'weft' | 'llamaCpp', x: number | undefined) => {
      if (!b || !x || test.includes('@')) return '-';  // their K/V reads are not in weightBytes
      const near = s.membwAround?.[who];
      const adj = near?.length ? ` / ${fmt(median(s[who].map((t, k) => pct(t, near[k]))), 0)}` : '';
      return fmt(pct(x, membw), 0) + adj;
    };
    const expected = b * GEN;
    const shortRun = b && s.weftTokens.some((t) => t < expected) ? ` (${median(s.weftTokens)} tok)` : '';
    return [
      i === 0 ? r.name : '', test, fmt(w) + shortRun, fmt(l), fmt(published[test]),
      ratio(w, l), ratio(w, published[test]), roof('weft', w), roof('llamaCpp', l), i === 0 ? String(r.othersPct ?? '-') : '',
    ];
  });
  if (r.status !== 'ok') out.push(['', r.status.slice(0, 60), '', '', '', '', '', '', '', '']);
  return out;
}

/** CPU model, with family/model and AVX-512 because PERF.md's machine (family 25 model 1) had none. */
function lscpuModel(): string {
  let text = '';
  try {
    text = execFileSync('lscpu', { encoding: 'utf8' });
  } catch {
    return os.cpus()[0]?.model ?? 'unknown CPU';
  }
  const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(text)?.[1].trim() ?? '?';
  const avx512 = /\bavx512f\b/.test(field('Flags')) ? 'AVX-512' : 'no AVX-512';
  return `${field('Model name')} (family ${field('CPU family')} model ${field('Model')}, ${avx512})`;
}

await main();
