/**
 * llama.cpp's own figures for the SmolLM2-135M shape, from refdata/perf/PERF.md (llama.cpp
 * b4747, CPU, 2 threads, 2-core AMD EPYC; measured 2026-11-22). pp512 and tg128 are the
 * median of the three llama-bench passes (section 2a); B=4/16 are llama-batched-bench S_TG
 * with -pps (section 2b: one shared 512-token prompt, so 512-640 tokens of context per
 * sequence), published for Q8_0 only.
 */
export interface Published {
  pp512: number;
  tg128: number;
  tgB4?: number;
  tgB16?: number;
}

export const PUBLISHED: Record<string, Published> = {
  // pp512 passes 332.24 / 416.86 / 370.77; tg128 67.46 / 71.68 / 63.67
  'smollm2-135m-shape-F16': { pp512: 370.77, tg128: 67.46 },
  // pp512 322.26 / 394.55 / 332.34; tg128 91.67 / 114.45 / 94.46; -pps S_TG B=4 135.59, B=16 162.16
  'smollm2-135m-shape-Q8_0': { pp512: 332.34, tg128: 94.46, tgB4: 135.59, tgB16: 162.16 },
};

/** Where PERF.md measured llama.cpp's read bandwidth: median of five membw runs, GB/s. */
export const PUBLISHED_MEMBW_GBS = 34.7;
