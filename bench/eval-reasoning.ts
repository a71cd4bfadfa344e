/**
 * `npm --prefix bench run eval:reasoning`: the shipped reasoner (or -m MODEL) on the held-out
 * test split of tools/reasoning-data, per difficulty level: greedy accuracy; majority-vote
 * accuracy over k sampled trajectories (k = 1, 4, 16, 64, from n = 64 samples per problem, each
 * k averaged over the n/k disjoint groups); tokens generated; wall time; and how well a
 * trajectory's lowest group confidence (DeepConf C over a 16- or 64-token window, and per step
 * line) predicts that its answer is right (AUROC), beside the same for the lowest 16-token mean
 * log-prob of the sampled tokens themselves. Prints one table, writes bench/out/eval-reasoning-<time>/summary.json
 * and trajectories.jsonl (every trajectory's text, answer, per-token log-prob and confidence).
 *
 *   --per-level N   test problems per level (default 50)     --levels A-B  (default 1-8)
 *   --n N           sampled trajectories per problem (64)     --temp T      (0.7)
 *   --top-p P       (1.0)  --seed S (1)  --threads T (2)     --parallel P  problems in flight (4)
 *   --preset v1|v2|v3  the generator's difficulty schedule (v3, what the shipped model was last trained on)
 *
 * A second table splits each level by problem family (chain / story / total), since only some
 * families have more than one solution path.
 *
 * Answers are read with tools/reasoning-data/answer.ts (last "Answer: N", else the last step's
 * "=N"; anything else counts as wrong).
 */
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel, type GenerateOptions, type Model } from '../lib/index.js';
import { defaultModelPath } from '../lib/default-model.js';
import { extractAnswer } from '../tools/reasoning-data/answer.js';
import { auroc, lowestStepMean, lowestWindowMean, majorityAccuracy } from '../tools/reasoning-data/metrics.js';
import { MAX_LEVEL, makeProblem, presetOptions, type Preset, type Problem } from '../tools/reasoning-data/problems.js';
import { formatTable } from './table.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VOTE_K = [1, 4, 16, 64];
const WINDOW = 16;
const WIDE_WINDOW = 64;
const MAX_TOKENS = 240;  // the longest test solution is about 160 tokens

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', short: 'm' },
    'per-level': { type: 'string', default: '50' },
    levels: { type: 'string', default: `1-${MAX_LEVEL}` },
    n: { type: 'string', default: '64' },
    temp: { type: 'string', default: '0.7' },
    'top-p': { type: 'string', default: '1.0' },
    seed: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
    parallel: { type: 'string', default: '4' },
    preset: { type: 'string', default: 'v3' },
  },
});
const modelPath = a.model ?? defaultModelPath();
const perLevel = Number(a['per-level']);
const [lo, hi] = a.levels!.split('-').map(Number);
const n = Number(a.n);
const temperature = Number(a.temp);
const topP = Number(a['top-p']);
const seed = Number(a.seed);
const parallel = Number(a.parallel);
const preset = a.preset as Preset;
const ks = VOTE_K.filter((k) => k <= n);

interface Trajectory {
  text: string;
  answer: number | null;
  correct: boolean;
  tokens: number[];
  logprobs: number[];
  confidences: number[];
  tokenTexts: string[];
}

/** The greedy answer, then n sampled trajectories forked from one prefill (trajectory i: seed + i). */
async function sample(model: Model, prompt: string, truth: number): Promise<Trajectory[]> {
  const run = async (opts: GenerateOptions, width: number): Promise<Trajectory[]> => {
    const ts: Trajectory[] = Array.from({ length: width }, () => ({ text: '', answer: null, correct: false, tokens: [], logprobs: [], confidences: [], tokenTexts: [] }));
    const gen = model.generate(prompt, { ...opts, n: width, maxTokens: MAX_TOKENS });
    for await (const ev of gen) {
      const t = ts[ev.trajectory];
      t.tokens.push(ev.token);
      t.logprobs.push(ev.logprob);
      t.confidences.push(ev.confidence);
      t.tokenTexts.push(ev.text);
    }
    const result = await gen.result;
    for (const [i, t] of ts.entries()) {
      t.text = result.trajectories[i].text;
      t.answer = extractAnswer(t.text);
      t.correct = t.answer === truth;
    }
    return ts;
  };
  const [greedy, samples] = await Promise.all([
    run({ temperature: 0 }, 1),
    run({ temperature, topP, topK: 0, minP: 0, seed }, n),
  ]);
  return [...greedy, ...samples];
}

const model = await loadModel(modelPath, { threads: Number(a.threads), kvCacheTokens: 1 << 17 });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = path.join(ROOT, 'bench', 'out', `eval-reasoning-${stamp}`);
mkdirSync(outDir, { recursive: true });
const dump = createWriteStream(path.join(outDir, 'trajectories.jsonl'));

interface Tally { problems: number; greedy: number; majority: Record<number, number> }
interface LevelResult extends Tally {
  byStyle: Record<string, Tally>;
  level: number; tokens: number; greedyTokens: number; wallS: number;
  auroc: { window: number; step: number; logprob: number }; sampledAccuracy: number;
}
const results: LevelResult[] = [];
const hard = { window: [] as number[], wide: [] as number[], step: [] as number[], logprob: [] as number[], labels: [] as boolean[] };
const seeds = Array.from({ length: n }, (_, i) => seed + i);  // trajectory i's seed, for the dump

try {
  for (let level = lo; level <= hi; level++) {
    const t0 = performance.now();
    const problems = Array.from({ length: perLevel }, (_, i) => makeProblem('test', level, i, presetOptions(preset, level)));
    const r: LevelResult = { level, problems: perLevel, greedy: 0, majority: {}, byStyle: {}, tokens: 0, greedyTokens: 0, wallS: 0, auroc: { window: NaN, step: NaN, logprob: NaN }, sampledAccuracy: 0 };
    const win: number[] = [], wide: number[] = [], step: number[] = [], logprob: number[] = [], labels: boolean[] = [];
    for (const k of ks) r.majority[k] = 0;
    for (let s = 0; s < problems.length; s += parallel) {
      await Promise.all(problems.slice(s, s + parallel).map(async (p: Problem) => {
        const prompt = p.question + '\n';
        const [greedy, ...samples] = await sample(model, prompt, p.answer);
        r.greedyTokens += greedy.tokens.length;
        const answers = samples.map((t) => t.answer);
        const family = (r.byStyle[p.style] ??= { problems: 0, greedy: 0, majority: Object.fromEntries(ks.map((k) => [k, 0])) });
        for (const tally of [r, family]) {
          tally.greedy += greedy.correct ? 1 : 0;
          for (const k of ks) tally.majority[k] += majorityAccuracy(answers, p.answer, k);
        }
        family.problems++;
        for (const [i, t] of [greedy, ...samples].entries()) {
          r.tokens += t.tokens.length;
          if (i > 0) {
            win.push(lowestWindowMean(t.confidences, WINDOW));
            wide.push(lowestWindowMean(t.confidences, WIDE_WINDOW));
            step.push(lowestStepMean(t.tokenTexts, t.confidences));
            logprob.push(lowestWindowMean(t.logprobs, WINDOW));
            labels.push(t.correct);
            r.sampledAccuracy += t.correct ? 1 : 0;
          }
          dump.write(JSON.stringify({
            level, index: p.index, style: p.style, question: p.question, truth: p.answer, seed: i === 0 ? null : seeds[i - 1],
            temperature: i === 0 ? 0 : temperature, topP: i === 0 ? 1 : topP,
            text: t.text, answer: t.answer, correct: t.correct, tokens: t.tokens, logprobs: t.logprobs, confidences: t.confidences,
          }) + '\n');
        }
      }));
    }
    for (const tally of [r, ...Object.values(r.byStyle)]) {
      tally.greedy /= tally.problems;
      for (const k of ks) tally.majority[k] /= tally.problems;
    }
    r.sampledAccuracy /= perLevel * n;
    r.auroc = { window: auroc(win, labels), step: auroc(step, labels), logprob: auroc(logprob, labels) };
    if (level >= 6) {
      hard.window.push(...win);
      hard.wide.push(...wide);
      hard.step.push(...step);
      hard.logprob.push(...logprob);
      hard.labels.push(...labels);
    }
    r.wallS = (performance.now() - t0) / 1000;
    results.push(r);
    process.stderr.write(`level ${level}: greedy ${(100 * r.greedy).toFixed(1)}%, maj@${ks.at(-1)} ${(100 * r.majority[ks.at(-1)!]).toFixed(1)}%, ${r.wallS.toFixed(0)} s\n`);
  }
} finally {
  dump.end();
  await model.dispose();
}

const pct = (x: number) => (100 * x).toFixed(1);
const rows = results.map((r) => [
  String(r.level), String(r.problems), pct(r.greedy), ...ks.map((k) => pct(r.majority[k])),
  String(r.tokens), (r.greedyTokens / r.problems).toFixed(0), r.wallS.toFixed(0),
  r.auroc.window.toFixed(3), r.auroc.step.toFixed(3), r.auroc.logprob.toFixed(3),
]);
const hardAuroc = {
  window: auroc(hard.window, hard.labels), wide: auroc(hard.wide, hard.labels),
  step: auroc(hard.step, hard.labels), logprob: auroc(hard.logprob, hard.labels),
};
process.stdout.write(`model ${modelPath}; test split (preset ${preset}), ${perLevel} problems per level; sampling: temperature ${temperature}, top-p ${topP}, ` +
  `n = ${n} per problem, seeds ${seed}..${seed + n - 1}; greedy = temperature 0\n`);
process.stdout.write(formatTable(
  ['level', 'problems', 'greedy %', ...ks.map((k) => `maj@${k} %`), 'tokens', 'greedy tok/problem', 'wall s', `AUROC C win${WINDOW}`, 'AUROC C step', `AUROC lp win${WINDOW}`],
  rows,
) + '\n');
process.stdout.write(formatTable(
  ['level', 'family', 'problems', 'greedy %', ...ks.map((k) => `maj@${k} %`)],
  results.flatMap((r) => Object.entries(r.byStyle).sort().map(([style, t]) =>
    [String(r.level), style, String(t.problems), pct(t.greedy), ...ks.map((k) => pct(t.majority[k]))])),
) + '\n');
process.stdout.write(`hard levels (6-8) pooled, AUROC for a correct answer of the lowest group confidence C over ` +
  `${WINDOW} tokens ${hardAuroc.window.toFixed(3)}, over ${WIDE_WINDOW} tokens ${hardAuroc.wide.toFixed(3)}, over a step line ` +
  `${hardAuroc.step.toFixed(3)}; of the lowest ${WINDOW}-token mean log-prob of the sampled tokens ${hardAuroc.logprob.toFixed(3)} ` +
  `(${hard.labels.length} trajectories, ` +
  `${pct(hard.labels.filter(Boolean).length / Math.max(1, hard.labels.length))}% correct)\n`);
writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify({
  model: modelPath, preset, perLevel, n, temperature, topP, seed, window: WINDOW, wideWindow: WIDE_WINDOW, maxTokens: MAX_TOKENS, levels: results, hardAuroc,
}, null, 2));
process.stderr.write(`wrote ${outDir}\n`);
