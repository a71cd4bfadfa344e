// The reasoning task generator (tools/reasoning-data): deterministic per (split, level, index),
// solutions that are correct arithmetic in the trained format, answer extraction that tolerates
// format slips, and the vote / confidence metrics of the evaluation harness.
import { describe, expect, it } from 'vitest';
import { extractAnswer } from '../tools/reasoning-data/answer.js';
import { auroc, lowestStepMean, lowestWindowMean, majority, majorityAccuracy } from '../tools/reasoning-data/metrics.js';
import { MAX_LEVEL, makeProblem, presetOptions, type Preset, type Split } from '../tools/reasoning-data/problems.js';

describe('problem generator', () => {
  it('gives the same problem for the same (split, level, index): golden samples', () => {
    // Written by this generator when the shipped model's data was made; a change here changes
    // the test split the model card's numbers were measured on.
    expect(makeProblem('train', 1, 0)).toEqual({
      split: 'train', level: 1, index: 0, style: 'chain',
      question: 'Start at 21. Subtract 12.', solution: '21-12=9\nAnswer: 9', answer: 9,
    });
    expect(makeProblem('val', 3, 5).question).toBe('Start at 37. Subtract 5. Divide by 4. Multiply by 6.');
    expect(makeProblem('test', 8, 2).solution).toBe('29+26=55\n55/5=11\n11*8=88\n88*5=440\n440+38=478\n478-5=473\n473-31=442\n442/2=221\nAnswer: 221');
    expect(makeProblem('test', 5, 7)).toMatchObject({
      style: 'story',
      question: 'Sam has 41 shells. He buys 19 more. Then he splits them into 5 equal piles and keeps one. ' +
        'Then he gives away half of them. Then he gives away 6. Then he gets 7 more. How many shells does he have now?',
      solution: '41+19=60\n60/5=12\n12/2=6\n12-6=6\n6-6=0\n0+7=7\nAnswer: 7',
      answer: 7,
    });
    expect(makeProblem('test', 4, 11)).toEqual(makeProblem('test', 4, 11));
    // A forced family draws no family from the stream.
    expect(makeProblem('test', 3, 4, { style: 'story' })).toMatchObject({
      question: 'Leo has 31 apples. He makes the pile 9 times as big. Then he buys 26 more. Then he gets 13 more. How many apples does he have now?',
      solution: '31*9=279\n279+26=305\n305+13=318\nAnswer: 318',
    });
  });

  it('draws the splits from different streams', () => {
    const q = (s: Split) => Array.from({ length: 50 }, (_, i) => makeProblem(s, 6, i).question);
    const train = new Set(q('train'));
    expect(q('test').filter((x) => train.has(x))).toEqual([]);
    expect(q('val').filter((x) => train.has(x))).toEqual([]);
  });

  it('writes one checkable step per line and the answer last, within the bounds', () => {
    for (let level = 1; level <= MAX_LEVEL; level++) {
      for (let i = 0; i < 40; i++) {
        const p = makeProblem('test', level, i);
        const lines = p.solution.split('\n');
        expect(lines.at(-1)).toBe(`Answer: ${p.answer}`);
        const steps = lines.slice(0, -1);
        // One line per step, two for "gives away half / a third / a quarter of them".
        expect(steps.length).toBeGreaterThanOrEqual(level);
        expect(steps.length).toBeLessThanOrEqual(2 * level);
        // Each step starts from the previous result, except the second line of a "give away a
        // fraction" step, which subtracts the part from the value the first line divided.
        let prev: number[] = [];
        for (const line of steps) {
          const m = /^(\d+)([-+*/])(\d+)=(\d+)$/.exec(line);
          expect(m, line).not.toBeNull();
          const [x, op, y, z] = [Number(m![1]), m![2], Number(m![3]), Number(m![4])];
          const want = op === '+' ? x + y : op === '-' ? x - y : op === '*' ? x * y : x / y;
          expect(z, line).toBe(want);
          expect(z).toBeLessThanOrEqual(499);
          if (prev.length) expect(prev, line).toContain(x);
          prev = [z, x];
        }
        expect(Number(/(\d+)$/.exec(steps.at(-1)!)![1])).toBe(p.answer);
      }
    }
  });

  it('presets: v2 widens only levels 5 and up', () => {
    expect(presetOptions('v1', 8)).toEqual({});
    expect(presetOptions('v2', 4)).toEqual({});
    expect(presetOptions('v2', 5)).toEqual({ maxOperand: 99, maxValue: 999 });
    expect(makeProblem('test', 3, 9, presetOptions('v2', 3))).toEqual(makeProblem('test', 3, 9));
    const values = Array.from({ length: 200 }, (_, i) => makeProblem('test', 7, i, presetOptions('v2', 7)))
      .flatMap((p) => p.solution.match(/\d+/g)!.map(Number));
    expect(Math.max(...values)).toBeGreaterThan(499);
    expect(Math.max(...values)).toBeLessThanOrEqual(999);
    expect(() => presetOptions('v4' as Preset, 1)).toThrow(RangeError);
  });

  it('v3: totals added in any order and commutative steps either way round, all checkable', () => {
    expect(presetOptions('v3', 2)).toEqual({ totals: true, shuffleOperands: true });
    expect(presetOptions('v3', 6)).toEqual({ maxOperand: 99, maxValue: 999, totals: true, shuffleOperands: true });
    expect(makeProblem('test', 6, 3, presetOptions('v3', 6))).toEqual(makeProblem('test', 6, 3, presetOptions('v3', 6)));
    const styles = new Map<string, number>();
    let swapped = 0;
    let reordered = 0;
    for (let level = 1; level <= MAX_LEVEL; level++) {
      for (let i = 0; i < 60; i++) {
        const p = makeProblem('test', level, i, presetOptions('v3', level));
        styles.set(p.style, (styles.get(p.style) ?? 0) + 1);
        const steps = p.solution.split('\n').slice(0, -1).map((line) => {
          const m = /^(\d+)([-+*/])(\d+)=(\d+)$/.exec(line);
          expect(m, line).not.toBeNull();
          const [x, op, y, z] = [Number(m![1]), m![2], Number(m![3]), Number(m![4])];
          expect(z, line).toBe(op === '+' ? x + y : op === '-' ? x - y : op === '*' ? x * y : x / y);
          expect(z).toBeLessThanOrEqual(level >= 5 ? 999 : 499);
          return { x, op, y, z };
        });
        expect(Number(/(\d+)$/.exec(p.solution)![1])).toBe(p.answer);
        if (p.style !== 'total') {
          // The running value is one of the two operands, on either side.
          for (let k = 1; k < steps.length; k++) {
            const prev = [steps[k - 1].z, steps[k - 1].x];
            expect(prev.includes(steps[k].x) || prev.includes(steps[k].y), JSON.stringify(steps[k])).toBe(true);
            if (steps[k].op === '+' || steps[k].op === '*') swapped += Number(steps[k].y === steps[k - 1].z && steps[k].x !== steps[k - 1].z);
          }
          continue;
        }
        // A total: level + 1 counts from the question, each used once, in some order.
        const inQuestion = p.question.match(/\d+/g)!.map(Number);
        const asked = [...inQuestion].sort((a, b) => a - b);
        expect(asked).toHaveLength(level + 1);
        expect(steps).toHaveLength(level);
        const used = [steps[0].x, steps[0].y];
        for (let k = 1; k < steps.length; k++) {
          const { x, y } = steps[k];
          expect(x === steps[k - 1].z || y === steps[k - 1].z).toBe(true);
          used.push(x === steps[k - 1].z ? y : x);
        }
        reordered += Number(used.join() !== inQuestion.join());
        expect(used.sort((a, b) => a - b)).toEqual(asked);
        expect(p.answer).toBe(asked.reduce((a, b) => a + b, 0));
      }
    }
    for (const s of ['chain', 'story', 'total']) expect(styles.get(s)).toBeGreaterThan(100);
    expect(swapped).toBeGreaterThan(50);
    expect(reordered).toBeGreaterThan(100);
    // v1 is untouched by the new options: its golden problems above still hold.
    expect(makeProblem('test', 8, 2, presetOptions('v1', 8)).solution).toBe(makeProblem('test', 8, 2).solution);
  });

  it('rejects bad arguments', () => {
    expect(() => makeProblem('test', 0, 0)).toThrow(RangeError);
    expect(() => makeProblem('test', MAX_LEVEL + 1, 0)).toThrow(RangeError);
    expect(() => makeProblem('test', 1, -1)).toThrow(RangeError);
    expect(() => makeProblem('test', 1, 0, { maxOperand: 50, maxValue: 10 })).toThrow(RangeError);
  });
});

describe('answer extraction', () => {
  it('takes the last Answer line, tolerating case, spacing, signs and commas', () => {
    expect(extractAnswer('17+25=42\nAnswer: 42')).toBe(42);
    expect(extractAnswer('1+1=2\nanswer:7\nAnswer : 1,234')).toBe(1234);
    expect(extractAnswer('ANSWER = -5')).toBe(-5);
    expect(extractAnswer('Answer: 12 apples')).toBe(12);
  });

  it('falls back to the last step result, and gives null for no answer at all', () => {
    expect(extractAnswer('17+25=42\n42*2=84\nAnsw')).toBe(84);
    expect(extractAnswer('17+25=42\n42*2=')).toBe(42);
    expect(extractAnswer('I do not know')).toBeNull();
    expect(extractAnswer('')).toBeNull();
  });
});

describe('evaluation metrics', () => {
  it('majority vote skips nulls and breaks ties by first arrival', () => {
    expect(majority([3, 5, 5, 3, null, null])).toBe(5);  // 5 had two votes before 3 did
    expect(majority([null, 4, 5, 5])).toBe(5);
    expect(majority([null, null])).toBeNull();
    // Groups of 2: [1,1] right, [2,1] -> 2 wrong, [1,null] right.
    expect(majorityAccuracy([1, 1, 2, 1, 1, null], 1, 2)).toBeCloseTo(2 / 3);
    expect(() => majorityAccuracy([1], 1, 4)).toThrow(RangeError);
  });

  it('lowest window and lowest step means', () => {
    expect(lowestWindowMean([5, 5, 1, 1, 5], 2)).toBe(1);
    expect(lowestWindowMean([4, 2], 16)).toBe(3);
    expect(lowestWindowMean([], 16)).toBeNaN();
    // Lines "12+3=15\n" (conf 10, 10) and "Answer: 15" (conf 2, 4).
    expect(lowestStepMean(['12+3=15', '\n', 'Answer:', ' 15'], [10, 10, 2, 4])).toBe(3);
  });

  it('AUROC is 1 for perfect separation, 0.5 for ties, and counts ties half', () => {
    expect(auroc([0.9, 0.8, 0.1, 0.2], [true, true, false, false])).toBe(1);
    expect(auroc([0.1, 0.2, 0.9], [true, true, false])).toBe(0);
    expect(auroc([1, 1, 1, 1], [true, false, true, false])).toBe(0.5);
    expect(auroc([3, 2, 2, 1], [true, true, false, false])).toBe(0.875);
    expect(auroc([1, 2], [true, true])).toBeNaN();
  });
});
