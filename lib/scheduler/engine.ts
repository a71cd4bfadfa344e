import type { NativeModel, StepBatch, StepResult } from '../native.js';
import { SAMPLING_FIELDS } from '../native.js';
import { BlockAllocator } from '../kv/block-allocator.js';
import { WeftError, toWeftError } from '../errors.js';
import { Sequence, type SequenceEnd, type SequenceRequest } from './sequence.js';

export interface EngineOptions {
  /** Most tokens one step may carry; long prompts are prefilled in chunks of at most this. */
  stepTokens: number;
  isEog(token: number): boolean;
}

export interface EngineStats {
  steps: number;
  tokensComputed: number;
  waiting: number;
  running: number;
  blocksTotal: number;
  blocksUsed: number;
  lastStepMs: number;
}

/**
 * Runs native steps for every admitted sequence, FIFO. One step is in flight at a time; each
 * step carries a decode token for every sequence that is generating and prefill chunks for the
 * rest, up to stepTokens. A sequence is admitted once its whole reservation (prompt +
 * maxTokens) fits in free blocks, so nothing admitted can run out of cache. Aborts and
 * dispose take effect between steps, after which the sequence's blocks are free.
 */
export class Engine {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private pumping: Promise<void> | null = null;
  private disposed = false;
  private readonly counters = { steps: 0, tokensComputed: 0, lastStepMs: 0 };

  constructor(
    private readonly native: NativeModel,
    private readonly blocks: BlockAllocator,
    private readonly opts: EngineOptions,
  ) {}

  /** Queues a sequence; resolves with how it ended, rejects with a WeftError. */
  submit(req: SequenceRequest): Promise<SequenceEnd> {
    if (this.disposed) return Promise.reject(new WeftError('E_DISPOSED', 'the model has been disposed'));
    const seq = new Sequence(req);
    const need = this.blocks.blocksFor(seq.reservedTokens);
    if (need > this.blocks.nBlocks) {
      return Promise.reject(new WeftError('E_KV_EXHAUSTED',
        `prompt (${req.prompt.length} tokens) + maxTokens (${req.maxTokens}) needs ${seq.reservedTokens} KV cache tokens; ` +
        `the cache holds ${this.blocks.nBlocks * this.blocks.blockSize} (raise kvCacheTokens)`));
    }
    if (req.signal?.aborted) return Promise.reject(aborted());
    req.signal?.addEventListener('abort', () => this.kick(), { once: true });
    this.waiting.push(seq);
    this.kick();
    return seq.done;
  }

  stats(): EngineStats {
    return {
      ...this.counters,
      waiting: this.waiting.length,
      running: this.running.length,
      blocksTotal: this.blocks.nBlocks,
      blocksUsed: this.blocks.used,
    };
  }

  /** Rejects everything queued or running with E_DISPOSED once the step in flight is over. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await this.pumping;
    const err = new WeftError('E_DISPOSED', 'the model was disposed during the request');
    for (const s of [...this.waiting.splice(0), ...this.running.splice(0)]) this.finish(s, err);
  }

  private kick(): void {
    if (!this.pumping) {
      // Start on a microtask so that requests submitted in the same tick share the first step.
      this.pumping = Promise.resolve().then(() => this.pump()).finally(() => {
        this.pumping = null;
        // Work that arrived as the loop was ending.
        if (!this.disposed && (this.waiting.length || this.running.length)) this.kick();
      });
    }
  }

  private async pump(): Promise<void> {
    while (!this.disposed) {
      this.reapAborted();
      this.admit();
      if (this.running.length === 0) return;
      const plan = this.plan();
      let res: StepResult;
      try {
        res = await this.native.step(plan.batch);
      } catch (e) {
        const err = toWeftError(e);
        for (const s of plan.seqs) this.finish(s, err);
        continue;
      }
      this.counters.steps++;
      this.counters.tokensComputed += plan.batch.tokens.length;
      this.counters.lastStepMs = res.forwardMs + res.sampleMs;
      this.apply(plan, res);
    }
  }

  private reapAborted(): void {
    for (const list of [this.waiting, this.running]) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i].req.signal?.aborted) this.finish(list.splice(i, 1)[0], aborted());
      }
    }
  }

  private admit(): void {
    while (this.waiting.length) {
      const seq = this.waiting[0];
      const got = this.blocks.allocate(this.blocks.blocksFor(seq.reservedTokens));
      if (!got) return;  // FIFO: later requests wait behind the head
      seq.blocks = got;
      this.running.push(this.waiting.shift()!);
    }
  }

  private plan(): { batch: StepBatch; seqs: Sequence[]; chunks: number[]; outRows: OutRow[] } {
    // Decoding sequences first so a long prefill never delays them by more than one step.
    const order = [...this.running].sort((a, b) => Number(isPrefilling(a)) - Number(isPrefilling(b)));
    let budget = this.opts.stepTokens;
    const seqs: Sequence[] = [];
    const chunks: number[] = [];
    for (const s of order) {
      if (budget === 0) break;
      const n = Math.min(s.tokens.length - s.nComputed, budget);
      seqs.push(s);
      chunks.push(n);
      budget -= n;
    }
    const nTok = chunks.reduce((a, b) => a + b, 0);
    const maxBlocks = Math.max(...seqs.map((s) => s.blocks.length));
    const tokens = new Int32Array(nTok);
    const positions = new Int32Array(nTok);
    const seqIdx = new Int32Array(nTok);
    const blockTables = new Int32Array(seqs.length * maxBlocks).fill(-1);
    const outRows: OutRow[] = [];
    let t = 0;
    seqs.forEach((s, i) => {
      blockTables.set(s.blocks, i * maxBlocks);
      const first = s.nComputed, n = chunks[i];
      const reachesEnd = first + n === s.tokens.length;
      for (let k = 0; k < n; k++, t++) {
        tokens[t] = s.tokens[first + k];
        positions[t] = first + k;
        seqIdx[t] = i;
        const pos = first + k;
        const inPrompt = pos < s.req.prompt.length;
        const wantLogits = inPrompt && (s.req.logits === 'all' || (s.req.logits === 'last' && pos === s.req.prompt.length - 1));
        const last = reachesEnd && k === n - 1;
        if (wantLogits || last) outRows.push({ seq: i, token: t, pos, sample: last, logits: wantLogits });
      }
    });
    const sampling = new Float64Array(outRows.length * SAMPLING_FIELDS);
    const wantLogits = new Uint8Array(outRows.length);
    let topN = 0;
    outRows.forEach((r, o) => {
      const s = seqs[r.seq];
      const p = s.req.sampling;
      sampling.set([p.temperature, p.topK, p.topP, p.minP, p.seed, s.nSampled], o * SAMPLING_FIELDS);
      wantLogits[o] = r.logits ? 1 : 0;
      topN = Math.max(topN, s.req.topN);
    });
    const batch: StepBatch = {
      tokens, positions, seqIdx, blockTables, maxBlocks,
      outIdx: Int32Array.from(outRows, (r) => r.token),
      sampling, topN,
      wantLogits: wantLogits.some((w) => w) ? wantLogits : undefined,
    };
    return { batch, seqs, chunks, outRows };
  }

  private apply(plan: ReturnType<Engine['plan']>, res: StepResult): void {
    plan.seqs.forEach((s, i) => { s.nComputed += plan.chunks[i]; });
    const vocab = res.logits && plan.outRows.some((r) => r.logits)
      ? res.logits.length / plan.outRows.filter((r) => r.logits).length : 0;
    let logitRow = 0;
    plan.outRows.forEach((r, o) => {
      const s = plan.seqs[r.seq];
      if (r.logits && res.logits) {
        s.req.onLogits?.(res.logits.subarray(logitRow * vocab, (logitRow + 1) * vocab), r.pos, 1);
        logitRow++;
      }
      if (!r.sample) return;
      if (s.req.maxTokens === 0) return this.end(s, 'length');
      const topN = s.req.topN;
      const token = res.tokens[o];
      s.nSampled++;
      s.tokens.push(token);
      // An end-of-generation token ends the sequence without being reported as output.
      if (this.opts.isEog(token)) return this.end(s, 'eos');
      let stop = false;
      try {
        stop = s.req.onToken?.({
          token,
          logprob: res.logprobs[o],
          confidence: res.confidences[o],
          topIds: topN && res.topIds ? res.topIds.slice(o * plan.batch.topN!, o * plan.batch.topN! + topN) : undefined,
          topLogprobs: topN && res.topLogprobs ? res.topLogprobs.slice(o * plan.batch.topN!, o * plan.batch.topN! + topN) : undefined,
        }) ?? false;
      } catch (e) {
        return this.end(s, toWeftError(e));
      }
      if (stop) this.end(s, 'callback');
      else if (s.nSampled >= s.req.maxTokens) this.end(s, 'length');
    });
  }

  private end(s: Sequence, how: SequenceEnd | WeftError): void {
    const i = this.running.indexOf(s);
    if (i >= 0) this.running.splice(i, 1);
    this.finish(s, how);
  }

  private finish(s: Sequence, how: SequenceEnd | WeftError): void {
    if (s.blocks.length) {
      this.blocks.release(s.blocks);
      s.blocks = [];
    }
    if (how instanceof WeftError) s.reject(how);
    else s.resolve(how);
  }
}

interface OutRow { seq: number; token: number; pos: number; sample: boolean; logits: boolean }

function isPrefilling(s: Sequence): boolean {
  return s.tokens.length - s.nComputed > 1;
}

function aborted(): WeftError {
  return new WeftError('E_ABORTED', 'the request was aborted');
}
