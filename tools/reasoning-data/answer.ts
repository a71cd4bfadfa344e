/**
 * Reading a model's final answer out of its output, tolerant of format slips: the integer after
 * the last "Answer:" (any case, spaces, a sign, thousands commas); failing that, the result of
 * the last `...=N` step line, which is what the model was about to report. Null when neither
 * appears (a truncated or garbled trajectory counts as wrong, never as a guess).
 */
const ANSWER = /answer\s*[:=]?\s*(-?\s*[\d,]*\d)/gi;
const STEP_RESULT = /=\s*(-?\d[\d,]*)\s*$/gm;

function toInt(s: string): number | null {
  const n = Number(s.replace(/[\s,]/g, ''));
  return Number.isSafeInteger(n) ? n : null;
}

export function extractAnswer(text: string): number | null {
  const answers = [...text.matchAll(ANSWER)];
  if (answers.length) return toInt(answers[answers.length - 1][1]);
  const steps = [...text.matchAll(STEP_RESULT)];
  return steps.length ? toInt(steps[steps.length - 1][1]) : null;
}
