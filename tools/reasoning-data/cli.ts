/**
 * Writes one split as JSON lines, one problem per line, levels round-robin (index i has level
 * 1 + i % 8 unless --levels narrows it). Usage:
 *   tsx tools/reasoning-data/cli.ts --split train --count 400000 --out train.jsonl [--levels 1-8] [--preset v1|v2|v3]
 */
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { MAX_LEVEL, makeProblem, presetOptions, type Preset, type Split } from './problems.js';

const { values } = parseArgs({
  options: {
    split: { type: 'string' },
    count: { type: 'string' },
    out: { type: 'string' },
    levels: { type: 'string', default: `1-${MAX_LEVEL}` },
    preset: { type: 'string', default: 'v1' },
  },
});
const split = values.split as Split;
if (!['train', 'val', 'test'].includes(split) || !values.count || !values.out) {
  throw new Error('usage: --split train|val|test --count N --out FILE [--levels A-B]');
}
const [lo, hi] = values.levels!.split('-').map(Number);
const count = Number(values.count);
const span = hi - lo + 1;
const out = createWriteStream(values.out);
for (let i = 0; i < count; i++) {
  const level = lo + (i % span);
  const p = makeProblem(split, level, Math.floor(i / span), presetOptions(values.preset as Preset, level));
  if (!out.write(JSON.stringify({ level: p.level, style: p.style, question: p.question, solution: p.solution, answer: p.answer }) + '\n')) {
    await new Promise((r) => out.once('drain', r));
  }
}
out.end();
