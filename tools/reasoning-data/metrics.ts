/**
 * What the reasoning evaluation measures over sampled trajectories: majority votes over k of
 * them, a trajectory's lowest group confidence (DeepConf: the mean token confidence over a
 * sliding window of tokens, or over one reasoning-step line, at its weakest), and the AUROC of
 * such a score for telling correct trajectories from wrong ones.
 */

/** The most frequent non-null answer; a tie goes to the answer that reached the count first. Null when all are null. */
export function majority(answers: readonly (number | null)[]): number | null {
  const counts = new Map<number, number>();
  let best: number | null = null;
  let bestCount = 0;
  for (const a of answers) {
    if (a === null) continue;
    const c = (counts.get(a) ?? 0) + 1;
    counts.set(a, c);
    if (c > bestCount) {
      best = a;
      bestCount = c;
    }
  }
  return best;
}

/**
 * Majority@k accuracy from n samples: the mean correctness of the vote over each of the
 * floor(n / k) disjoint groups of k consecutive samples, which uses every sample once rather
 * than only the first k.
 */
export function majorityAccuracy(answers: readonly (number | null)[], truth: number, k: number): number {
  const groups = Math.floor(answers.length / k);
  if (groups < 1) throw new RangeError(`majority@${k} needs at least ${k} samples, got ${answers.length}`);
  let right = 0;
  for (let g = 0; g < groups; g++) if (majority(answers.slice(g * k, (g + 1) * k)) === truth) right++;
  return right / groups;
}

/** Lowest mean over every window of `window` consecutive values; the mean of all when fewer; NaN when none. */
export function lowestWindowMean(values: readonly number[], window: number): number {
  if (values.length === 0) return NaN;
  const w = Math.min(window, values.length);
  let sum = 0;
  for (let i = 0; i < w; i++) sum += values[i];
  let lowest = sum / w;
  for (let i = w; i < values.length; i++) {
    sum += values[i] - values[i - w];
    lowest = Math.min(lowest, sum / w);
  }
  return lowest;
}

/**
 * Lowest mean confidence over the trajectory's lines (reasoning steps): a token belongs to the
 * line its text starts in, and the newline token closes its line.
 */
export function lowestStepMean(tokenTexts: readonly string[], confidences: readonly number[]): number {
  let lowest = NaN;
  let sum = 0;
  let count = 0;
  const close = () => {
    if (count) lowest = Number.isNaN(lowest) ? sum / count : Math.min(lowest, sum / count);
    sum = 0;
    count = 0;
  };
  for (let i = 0; i < confidences.length; i++) {
    sum += confidences[i];
    count++;
    if (tokenTexts[i].includes('\n')) close();
  }
  close();
  return lowest;
}

/**
 * Area under the ROC curve of `scores` for predicting `labels` (higher score = more likely
 * true): the probability that a random positive outscores a random negative, ties counting
 * half. NaN when either class is empty or a score is NaN.
 */
export function auroc(scores: readonly number[], labels: readonly boolean[]): number {
  if (scores.some(Number.isNaN)) return NaN;
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0]);
  // Mann-Whitney U from average ranks of the positives.
  let rankSumPos = 0;
  let nPos = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j < order.length && order[j][0] === order[i][0]) j++;
    const avgRank = (i + 1 + j) / 2;
    for (let t = i; t < j; t++) if (labels[order[t][1]]) { rankSumPos += avgRank; nPos++; }
    i = j;
  }
  const nNeg = scores.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
