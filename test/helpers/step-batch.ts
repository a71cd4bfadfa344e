// Pieces of hand-built StepBatches for tests that drive the addon directly.
import { SAMPLING_FIELDS } from '../../lib/native.js';

/** Sampling rows for n outputs: temperature 0 (greedy), top-p 1, everything else 0. */
export const greedy = (n: number): Float64Array =>
  new Float64Array(n * SAMPLING_FIELDS).map((_, i) => (i % SAMPLING_FIELDS === 2 ? 1 : 0));
