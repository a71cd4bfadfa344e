/**
 * Multi-step arithmetic problems with checkable answers, for training and evaluating a small
 * reasoning model. A problem is fully determined by (split, level, index): the same triple gives
 * the same problem on every machine, and the splits draw from disjoint seed streams.
 *
 * Difficulty: `level` is the number of steps (1..8); operand and value bounds are knobs too.
 * Solutions write one step per line as `a op b = c` without spaces (`17+25=42`), then
 * `Answer: N`. Every intermediate value is a non-negative integer no larger than maxValue, and
 * every division is exact, so each line is checkable.
 */
import { Rng } from './rng.js';

export type Split = 'train' | 'val' | 'test';
export type Style = 'chain' | 'story';

export interface ProblemOptions {
  /** Largest addend / subtrahend and starting value (default 49). */
  maxOperand?: number;
  /** Largest value any step may produce (default 499). */
  maxValue?: number;
  /** Force one template family; by default chains and stories alternate at random. */
  style?: Style;
}

export interface Problem {
  split: Split;
  level: number;
  index: number;
  style: Style;
  question: string;
  /** Step lines, then `Answer: N`; no trailing newline. */
  solution: string;
  answer: number;
}

export const MAX_LEVEL = 8;

/**
 * Named difficulty schedules: 'v1' (the shipped model's data) keeps every level within
 * maxOperand 49 / maxValue 499; 'v2' gives levels 5 and up operands to 99 and values to 999.
 */
export type Preset = 'v1' | 'v2';
export function presetOptions(preset: Preset, level: number): ProblemOptions {
  if (preset === 'v2' && level >= 5) return { maxOperand: 99, maxValue: 999 };
  if (preset !== 'v1' && preset !== 'v2') throw new RangeError(`unknown preset '${String(preset)}'`);
  return {};
}

// Disjoint streams: the test split is never the source of a training problem. (A short problem
// can still be *spelled* identically in two splits by chance; the trainer drops such duplicates.)
const SPLIT_SALT: Record<Split, number> = { train: 0x9e3779b1, val: 0x85ebca77, test: 0xc2b2ae3d };

const NAMES: readonly [string, 'she' | 'he'][] = [
  ['Mia', 'she'], ['Leo', 'he'], ['Ava', 'she'], ['Sam', 'he'], ['Noah', 'he'], ['Zoe', 'she'],
  ['Eli', 'he'], ['Ivy', 'she'], ['Max', 'he'], ['Lily', 'she'], ['Omar', 'he'], ['Ruth', 'she'],
];
const ITEMS = ['shells', 'apples', 'stamps', 'marbles', 'coins', 'cards', 'stickers', 'beads', 'pens', 'books'];
const FRACTION = ['', '', 'half', 'a third', 'a quarter'];

type Op =
  | { kind: 'add' | 'sub' | 'mul' | 'div'; n: number }
  | { kind: 'take'; n: number };  // give away 1/n of them: two lines, x/n then x-(x/n)

function seedOf(split: Split, level: number, index: number): number {
  let h = SPLIT_SALT[split] ^ Math.imul(level, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ Math.imul(index + 1, 0x297a2d39);
  h = Math.imul(h ^ (h >>> 12), 0x165667b1);
  return (h ^ (h >>> 16)) >>> 0;
}

function divisors(x: number, lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let d = lo; d <= hi; d++) if (x >= d && x % d === 0) out.push(d);
  return out;
}

function chooseOp(rng: Rng, x: number, style: Style, maxOperand: number, maxValue: number): Op {
  const options: (() => Op)[] = [];
  if (x < maxValue) options.push(() => ({ kind: 'add', n: rng.int(1, Math.min(maxOperand, maxValue - x)) }));
  if (x >= 1) options.push(() => ({ kind: 'sub', n: rng.int(1, Math.min(maxOperand, x)) }));
  if (x >= 1 && 2 * x <= maxValue) options.push(() => ({ kind: 'mul', n: rng.int(2, Math.min(9, Math.floor(maxValue / x))) }));
  const div = divisors(x, 2, 9);
  if (div.length) options.push(() => ({ kind: 'div', n: rng.pick(div) }));
  const take = divisors(x, 2, 4);
  if (style === 'story' && take.length) options.push(() => ({ kind: 'take', n: rng.pick(take) }));
  // x = 0 with maxValue >= 1 always allows 'add', so options is never empty.
  return rng.pick(options)();
}

function chainSentence(op: Op): string {
  switch (op.kind) {
    case 'add': return `Add ${op.n}.`;
    case 'sub': return `Subtract ${op.n}.`;
    case 'mul': return `Multiply by ${op.n}.`;
    default: return `Divide by ${op.n}.`;
  }
}

// The verb phrase after the pronoun ("finds 25 more.").
function storyPhrase(rng: Rng, op: Op): string {
  switch (op.kind) {
    case 'add': return `${rng.pick(['finds', 'buys', 'gets'])} ${op.n} more.`;
    case 'sub': return `${rng.pick(['gives away', 'loses', 'sells'])} ${op.n}.`;
    case 'mul':
      if (op.n === 2) return 'doubles them.';
      if (op.n === 3) return 'triples them.';
      return `makes the pile ${op.n} times as big.`;
    case 'div':
      if (op.n <= 4) return `keeps ${FRACTION[op.n]} of them.`;
      return `splits them into ${op.n} equal piles and keeps one.`;
    case 'take': return `gives away ${FRACTION[op.n]} of them.`;
  }
}

/** Applies op to x, appending its solution lines; returns the new value. */
function apply(op: Op, x: number, lines: string[]): number {
  switch (op.kind) {
    case 'add': lines.push(`${x}+${op.n}=${x + op.n}`); return x + op.n;
    case 'sub': lines.push(`${x}-${op.n}=${x - op.n}`); return x - op.n;
    case 'mul': lines.push(`${x}*${op.n}=${x * op.n}`); return x * op.n;
    case 'div': lines.push(`${x}/${op.n}=${x / op.n}`); return x / op.n;
    case 'take': {
      const part = x / op.n;
      lines.push(`${x}/${op.n}=${part}`, `${x}-${part}=${x - part}`);
      return x - part;
    }
  }
}

const capitalize = (s: string) => s[0].toUpperCase() + s.slice(1);

export function makeProblem(split: Split, level: number, index: number, opts: ProblemOptions = {}): Problem {
  if (!Number.isInteger(level) || level < 1 || level > MAX_LEVEL) throw new RangeError(`level must be an integer in 1..${MAX_LEVEL}`);
  if (!Number.isInteger(index) || index < 0) throw new RangeError('index must be a non-negative integer');
  const maxOperand = opts.maxOperand ?? 49;
  const maxValue = opts.maxValue ?? 499;
  if (!(maxOperand >= 2 && maxValue >= maxOperand)) throw new RangeError('need 2 <= maxOperand <= maxValue');

  const rng = new Rng(seedOf(split, level, index));
  const style: Style = opts.style ?? (rng.next() < 0.5 ? 'chain' : 'story');
  let x = rng.int(2, maxOperand);
  const sentences: string[] = [];
  const lines: string[] = [];
  if (style === 'chain') {
    sentences.push(`Start at ${x}.`);
    for (let s = 0; s < level; s++) {
      const op = chooseOp(rng, x, style, maxOperand, maxValue);
      sentences.push(chainSentence(op));
      x = apply(op, x, lines);
    }
  } else {
    const [name, pronoun] = rng.pick(NAMES);
    const item = rng.pick(ITEMS);
    sentences.push(`${name} has ${x} ${item}.`);
    for (let s = 0; s < level; s++) {
      const op = chooseOp(rng, x, style, maxOperand, maxValue);
      sentences.push(s === 0 ? `${capitalize(pronoun)} ${storyPhrase(rng, op)}` : `Then ${pronoun} ${storyPhrase(rng, op)}`);
      x = apply(op, x, lines);
    }
    sentences.push(`How many ${item} does ${pronoun} have now?`);
  }
  lines.push(`Answer: ${x}`);
  return { split, level, index, style, question: sentences.join(' '), solution: lines.join('\n'), answer: x };
}
