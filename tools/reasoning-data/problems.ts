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
export type Style = 'chain' | 'story' | 'total';

export interface ProblemOptions {
  /** Largest addend / subtrahend and starting value (default 49). */
  maxOperand?: number;
  /** Largest value any step may produce (default 499). */
  maxValue?: number;
  /** Force one template family; by default chains and stories (and totals, with `totals`) at random. */
  style?: Style;
  /**
   * Add the 'total' family: level + 1 counts to add up, whose solutions add them in a random
   * order, so one problem has many valid solution paths.
   */
  totals?: boolean;
  /** Write commutative steps either way round (`25+17=42` as well as `17+25=42`), at random. */
  shuffleOperands?: boolean;
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
 * Named difficulty schedules: 'v1' keeps every level within maxOperand 49 / maxValue 499; 'v2'
 * gives levels 5 and up operands to 99 and values to 999; 'v3' is v2 with many solution paths
 * per problem (totals added in any order, commutative steps written either way round), so that
 * sampled trajectories take different routes and their mistakes stop agreeing.
 */
export type Preset = 'v1' | 'v2' | 'v3';
export function presetOptions(preset: Preset, level: number): ProblemOptions {
  if (preset !== 'v1' && preset !== 'v2' && preset !== 'v3') throw new RangeError(`unknown preset '${String(preset)}'`);
  const wide = preset !== 'v1' && level >= 5 ? { maxOperand: 99, maxValue: 999 } : {};
  return preset === 'v3' ? { ...wide, totals: true, shuffleOperands: true } : wide;
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

/** `a+b=c`, or `b+a=c` when swap. */
const commuted = (a: number, sign: string, b: number, c: number, swap: boolean) => swap ? `${b}${sign}${a}=${c}` : `${a}${sign}${b}=${c}`;

/**
 * Applies op to x, appending its solution lines; returns the new value. With shuffle, rng picks
 * the operand order of + and * lines (and is not touched otherwise, so unshuffled presets keep
 * their problems).
 */
function apply(op: Op, x: number, lines: string[], rng: Rng, shuffle: boolean): number {
  switch (op.kind) {
    case 'add': lines.push(commuted(x, '+', op.n, x + op.n, shuffle && rng.next() < 0.5)); return x + op.n;
    case 'sub': lines.push(`${x}-${op.n}=${x - op.n}`); return x - op.n;
    case 'mul': lines.push(commuted(x, '*', op.n, x * op.n, shuffle && rng.next() < 0.5)); return x * op.n;
    case 'div': lines.push(`${x}/${op.n}=${x / op.n}`); return x / op.n;
    case 'take': {
      const part = x / op.n;
      lines.push(`${x}/${op.n}=${part}`, `${x}-${part}=${x - part}`);
      return x - part;
    }
  }
}

const capitalize = (s: string) => s[0].toUpperCase() + s.slice(1);

/** level + 1 counts, each >= 2, summing to at most maxValue. */
function counts(rng: Rng, level: number, maxOperand: number, maxValue: number): number[] {
  const out: number[] = [];
  let room = maxValue;
  for (let k = level + 1; k > 0; k--) {
    const n = rng.int(2, Math.max(2, Math.min(maxOperand, room - 2 * (k - 1))));
    out.push(n);
    room -= n;
  }
  return out;
}

function shuffled<T>(rng: Rng, items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * The 'total' family: "Add up 17, 25 and 38." or "Mia has 17 shells. Leo has 25. ... How many
 * shells do they have together?". The solution adds the counts in a random order.
 */
function totalProblem(rng: Rng, level: number, maxOperand: number, maxValue: number, shuffle: boolean) {
  const ns = counts(rng, level, maxOperand, maxValue);
  let question: string;
  if (rng.next() < 0.5) {
    question = `Add up ${ns.slice(0, -1).join(', ')} and ${ns.at(-1)}.`;
  } else {
    const item = rng.pick(ITEMS);
    const people = shuffled(rng, NAMES).slice(0, ns.length).map(([name]) => name);
    question = ns.map((n, k) => (k === 0 ? `${people[k]} has ${n} ${item}.` : `${people[k]} has ${n}.`)).join(' ') +
      ` How many ${item} do they have together?`;
  }
  const order = shuffled(rng, ns);
  const lines: string[] = [];
  let x = order[0];
  for (const n of order.slice(1)) {
    lines.push(commuted(x, '+', n, x + n, shuffle && rng.next() < 0.5));
    x += n;
  }
  return { question, lines, answer: x };
}

export function makeProblem(split: Split, level: number, index: number, opts: ProblemOptions = {}): Problem {
  if (!Number.isInteger(level) || level < 1 || level > MAX_LEVEL) throw new RangeError(`level must be an integer in 1..${MAX_LEVEL}`);
  if (!Number.isInteger(index) || index < 0) throw new RangeError('index must be a non-negative integer');
  const maxOperand = opts.maxOperand ?? 49;
  const maxValue = opts.maxValue ?? 499;
  if (!(maxOperand >= 2 && maxValue >= maxOperand)) throw new RangeError('need 2 <= maxOperand <= maxValue');

  if (level + 1 > NAMES.length) throw new RangeError('too many counts for the total family');
  const shuffle = opts.shuffleOperands ?? false;
  const rng = new Rng(seedOf(split, level, index));
  // A forced style draws nothing, so its problems do not depend on the options that widen the draw.
  const draw = (r: number): Style => (opts.totals ? (['chain', 'story', 'total'] as const)[Math.floor(r * 3)] : r < 0.5 ? 'chain' : 'story');
  const style: Style = opts.style ?? draw(rng.next());
  if (style === 'total') {
    const t = totalProblem(rng, level, maxOperand, maxValue, shuffle);
    return { split, level, index, style, question: t.question, solution: [...t.lines, `Answer: ${t.answer}`].join('\n'), answer: t.answer };
  }
  let x = rng.int(2, maxOperand);
  const sentences: string[] = [];
  const lines: string[] = [];
  if (style === 'chain') {
    sentences.push(`Start at ${x}.`);
    for (let s = 0; s < level; s++) {
      const op = chooseOp(rng, x, style, maxOperand, maxValue);
      sentences.push(chainSentence(op));
      x = apply(op, x, lines, rng, shuffle);
    }
  } else {
    const [name, pronoun] = rng.pick(NAMES);
    const item = rng.pick(ITEMS);
    sentences.push(`${name} has ${x} ${item}.`);
    for (let s = 0; s < level; s++) {
      const op = chooseOp(rng, x, style, maxOperand, maxValue);
      sentences.push(s === 0 ? `${capitalize(pronoun)} ${storyPhrase(rng, op)}` : `Then ${pronoun} ${storyPhrase(rng, op)}`);
      x = apply(op, x, lines, rng, shuffle);
    }
    sentences.push(`How many ${item} does ${pronoun} have now?`);
  }
  lines.push(`Answer: ${x}`);
  return { split, level, index, style, question: sentences.join(' '), solution: lines.join('\n'), answer: x };
}
