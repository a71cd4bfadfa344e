import { SAMPLING_FIELDS, type StepBatch } from '../native.js';
import type { BlockManager } from '../kv/block-manager.js';
import type { StepPlan } from './scheduler.js';

/** One output row of a step: logits for a prompt position and/or a sampled token. */
export interface OutRow {
  /** Index into plan.chunks. */
  chunk: number;
  /** Position of the token whose logits this row holds. */
  pos: number;
  /** Trajectory the sample is for (differs from the chunk's own at a fork). */
  trajectory: number;
  sample: boolean;
  logits: boolean;
}

/**
 * The one native crossing of a step (DESIGN.md "one step = one crossing"), built from a plan:
 * each chunk's tokens at their positions, one block-table row per chunk, output rows for the
 * logits the request asked for and for the token sampled after the last computed one. A
 * sequence that forks on its last prompt token gets one sampled row per trajectory there, each
 * with that trajectory's seed and counter 0.
 */
export function buildStepBatch(plan: StepPlan, bm: BlockManager): { batch: StepBatch; rows: OutRow[] } {
  const { chunks } = plan;
  const nTok = chunks.reduce((a, c) => a + c.count, 0);
  const maxBlocks = Math.max(...chunks.map((c) => bm.table(c.seq.id).length));
  const tokens = new Int32Array(nTok);
  const positions = new Int32Array(nTok);
  const seqIdx = new Int32Array(nTok);
  const blockTables = new Int32Array(chunks.length * maxBlocks).fill(-1);
  const rows: OutRow[] = [];
  const outIdx: number[] = [];
  let t = 0;
  chunks.forEach((c, i) => {
    const s = c.seq;
    const want = s.request.req.logits;
    const promptLen = s.request.req.prompt.length;
    blockTables.set(bm.table(s.id), i * maxBlocks);
    for (let k = 0; k < c.count; k++, t++) {
      const pos = c.from + k;
      tokens[t] = s.tokens[pos];
      positions[t] = pos;
      seqIdx[t] = i;
      const logits = pos < promptLen && (want === 'all' || (want === 'last' && pos === promptLen - 1));
      const last = pos === s.tokens.length - 1;
      if (last && s.outputsAtTarget > 1) {
        for (let traj = 0; traj < s.outputsAtTarget; traj++) {
          rows.push({ chunk: i, pos, trajectory: traj, sample: true, logits: logits && traj === 0 });
          outIdx.push(t);
        }
      } else if (logits || (last && s.outputsAtTarget === 1)) {
        rows.push({ chunk: i, pos, trajectory: s.trajectory, sample: last, logits });
        outIdx.push(t);
      }
    }
  });
  const sampling = new Float64Array(rows.length * SAMPLING_FIELDS);
  const wantLogits = new Uint8Array(rows.length);
  let topN = 0;
  rows.forEach((r, o) => {
    const s = chunks[r.chunk].seq;
    const p = s.request.req.sampling;
    // Before a fork nothing has been sampled, so every trajectory's counter is the parent's 0.
    sampling.set([p.temperature, p.topK, p.topP, p.minP, p.seed + r.trajectory, s.nSampled], o * SAMPLING_FIELDS);
    wantLogits[o] = r.logits ? 1 : 0;
    topN = Math.max(topN, s.request.req.topN);
  });
  const batch: StepBatch = {
    tokens, positions, seqIdx, blockTables, maxBlocks,
    outIdx: Int32Array.from(outIdx), sampling, topN,
    wantLogits: wantLogits.some((w) => w) ? wantLogits : undefined,
    copies: plan.copies.length ? Int32Array.from(plan.copies) : undefined,
  };
  return { batch, rows };
}
