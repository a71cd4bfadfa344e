import { invalid } from './errors.js';
import type { SamplingSettings } from './scheduler/sequence.js';

/** Checks that `v`, when given, is an integer in [lo, hi]; returns it or the default. */
export function intOption(name: string, v: unknown, lo: number, hi: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw invalid(`${name} must be an integer in [${lo}, ${hi}], got ${String(v)}`);
  }
  return v;
}

export function numberOption(name: string, v: unknown, lo: number, hi: number, dflt: number, loOpen = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v > hi || (loOpen ? v <= lo : v < lo)) {
    throw invalid(`${name} must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${String(v)}`);
  }
  return v;
}

export interface SamplingOptions {
  /** 0 is greedy. Default 0.8 (llama.cpp's default). */
  temperature?: number;
  /** Keep the k most likely tokens; 0 disables. Default 40. */
  topK?: number;
  /** Nucleus sampling mass; 1 disables. Default 0.95. */
  topP?: number;
  /** Drop tokens below minP x the top probability; 0 disables. Default 0.05. */
  minP?: number;
  /** Seed of this sequence's random stream; random when absent. */
  seed?: number;
}

export function samplingSettings(o: SamplingOptions, vocabSize: number): SamplingSettings {
  return {
    temperature: numberOption('temperature', o.temperature, 0, 100, 0.8),
    topK: intOption('topK', o.topK, 0, vocabSize, 40),
    topP: numberOption('topP', o.topP, 0, 1, 0.95, true),
    minP: numberOption('minP', o.minP, 0, 1, 0.05),
    seed: intOption('seed', o.seed, 0, Number.MAX_SAFE_INTEGER, Math.floor(Math.random() * 2 ** 32)),
  };
}
