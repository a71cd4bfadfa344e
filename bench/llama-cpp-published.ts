/**
 * llama.cpp's own figures for the SmolLM2-135M and Qwen2.5-0.5B shapes, from refdata/perf/PERF.md (llama.cpp
 * b4747, CPU, 2 threads, 2-core AMD EPYC; measured 2026-11-22). pp512 and tg128 are the
 * median of the three llama-bench passes (section 2a); B=4/16 are llama-batched-bench S_TG
 * with -pps (section 2b: one shared 512-token prompt, so 512-640 tokens of context per
 * sequence), published for the Q8_0 files and SmolLM2 Q4_K_M; tgB1At512 is that tool's B=1 S_TG with
 * -pps: one sequence decoding 128 tokens after a 512-token prompt.
 */
export interface Published {
  pp512: number;
  tg128: number;
  tgB4?: number;
  tgB16?: number;
  tgB1At512?: number;
}

export const PUBLISHED: Record<string, Published> = {
  // pp512 passes 332.24 / 416.86 / 370.77; tg128 67.46 / 71.68 / 63.67
  'smollm2-135m-shape-F16': { pp512: 370.77, tg128: 67.46 },
  // pp512 322.26 / 394.55 / 332.34; tg128 91.67 / 114.45 / 94.46; -pps S_TG B=1 72.24, B=4 135.59, B=16 162.16
  'smollm2-135m-shape-Q8_0': { pp512: 332.34, tg128: 94.46, tgB4: 135.59, tgB16: 162.16, tgB1At512: 72.24 },
  // pp512 248.10 / 270.60 / 307.74; tg128 106.36 / 118.82 / 113.52; -pps S_TG B=1 98.87, B=4 160.99, B=16 163.17
  'smollm2-135m-shape-Q4_K_M': { pp512: 270.60, tg128: 113.52, tgB4: 160.99, tgB16: 163.17, tgB1At512: 98.87 },
  // pp512 104.06 / 142.62 / 136.40; tg128 31.26 / 36.07 / 35.02; -pps S_TG B=1 33.21, B=4 56.09, B=16 69.38
  'qwen25-05b-shape-Q8_0': { pp512: 136.40, tg128: 35.02, tgB4: 56.09, tgB16: 69.38, tgB1At512: 33.21 },
  // pp512 97.61 / 107.79 / 104.49; tg128 38.04 / 40.66 / 39.01
  'qwen25-05b-shape-Q4_K_M': { pp512: 104.49, tg128: 39.01 },
};

/** Where PERF.md measured llama.cpp's read bandwidth: median of five membw runs, GB/s. */
export const PUBLISHED_MEMBW_GBS = 34.7;
