/**
 * What both engines are asked to do, and how decode speed is read off token timestamps, so weft
 * and node-llama-cpp are timed by the same code.
 */

/** One engine under test, with one model loaded. */
export interface Runner {
  /** Seconds to evaluate `ids` from an empty context (prompt processing, last logits only). */
  prefill(ids: number[]): Promise<number>;
  /**
   * Greedy-decodes up to `maxTokens` after each prompt, all prompts at once (one sequence each),
   * and returns the time (performance.now(), ms) at which each sequence produced each token.
   */
  decode(prompts: number[][], maxTokens: number): Promise<number[][]>;
  dispose(): Promise<void>;
}

/**
 * Aggregate decode speed: the tokens produced after every sequence has its first token (so
 * prompt processing is excluded), divided by the time from that moment to the last token.
 */
export function decodeRate(stamps: number[][]): { tokPerS: number; tokens: number } {
  const start = Math.max(...stamps.map((s) => s[0] ?? Infinity));
  const end = Math.max(...stamps.map((s) => s[s.length - 1] ?? -Infinity));
  const tokens = stamps.reduce((n, s) => n + s.filter((t) => t > start).length, 0);
  return { tokPerS: end > start ? (tokens * 1000) / (end - start) : NaN, tokens: stamps.reduce((n, s) => n + s.length, 0) };
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Seeded random token ids in [lo, hi): prompts are ids, so tokenization is not measured. */
export function randomIds(n: number, lo: number, hi: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + Math.floor(((s >>> 8) / 2 ** 24) * (hi - lo));
  });
}
