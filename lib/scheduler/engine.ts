import type { NativeModel, NativeProfile, StepResult } from '../native.js';
import type { BlockManager } from '../kv/block-manager.js';
import { WeftError, toWeftError } from '../errors.js';
import { Request, Sequence, type RequestEnd, type SampledToken, type SequenceEnd, type SequenceRequest } from './sequence.js';
import { Scheduler, type StepPlan } from './scheduler.js';
import { buildStepBatch, type OutRow } from './step-batch.js';

export interface EngineOptions {
  /** Token budget of one step (decode tokens plus prefill chunks). */
  stepTokens: number;
  /** Split long prompts into chunks that fit the budget (see SchedulerOptions). Default true. */
  chunkedPrefill?: boolean;
  /**
   * Decode steps one native crossing may run (StepBatch.runAhead) when every scheduled sequence
   * is decoding and nothing waits for admission. Default 1.
   */
  runAhead?: number;
  isEog(token: number): boolean;
}

// A run-ahead crossing is kept to about this long: its tokens reach the caller together at its
// end, so this bounds how much later than with single steps a token is streamed or a stop is
// seen. (A request or abort arriving meanwhile interrupts the crossing: see kick().) At B=16 on
// 2 cores (50+ ms steps) it keeps one step per crossing; an A/B there with it lifted was within
// the noise (275.5 vs 286.2 tok/s, half the rounds each way).
const RUN_AHEAD_MS = 30;

export interface EngineStats {
  steps: number;
  /** Native step calls: fewer than steps when decode runs ahead (EngineOptions.runAhead). */
  calls: number;
  tokensComputed: number;
  /** Sequences queued for admission, new or preempted: the queue depth. */
  waiting: number;
  running: number;
  blocksTotal: number;
  /** Blocks referenced by running sequences. */
  blocksUsed: number;
  /** Unreferenced blocks kept for the prefix cache, evicted LRU when needed. */
  blocksCached: number;
  /** Prompt tokens of admitted requests, and those served from the prefix cache. */
  promptTokens: number;
  cachedPromptTokens: number;
  /** cachedPromptTokens / promptTokens; NaN before any request. */
  prefixCacheHitRate: number;
  /** Sequences preempted (freed, to be recomputed) because blocks ran out. */
  preemptions: number;
  /** Native time (forward + sampling) of the last step and the mean over all steps. */
  lastStepMs: number;
  meanStepMs: number;
}

/**
 * Runs native steps for every scheduled sequence. One step is in flight at a time; requests
 * submitted meanwhile join at the next step (continuous batching). A request with n > 1
 * trajectories is one sequence until its prompt is computed, then forks into n sequences that
 * share the prompt's blocks. Aborts and dispose take effect between steps; afterwards no block
 * of the request is referenced.
 */
export class Engine {
  private readonly scheduler: Scheduler;
  private readonly requests = new Set<Request>();
  private pumping: Promise<void> | null = null;
  private disposed = false;
  private nextSeqId = 0;
  private nextArrival = 0;
  private aheadInFlight = false;  // a step call with runAhead > 1 is in flight
  private readonly counters = { steps: 0, calls: 0, tokensComputed: 0, lastStepMs: 0, totalStepMs: 0 };

  constructor(
    private readonly native: NativeModel,
    private readonly blocks: BlockManager,
    private readonly opts: EngineOptions,
  ) {
    this.scheduler = new Scheduler(blocks, { stepTokens: opts.stepTokens, chunkedPrefill: opts.chunkedPrefill ?? true });
  }

  /** Queues a request; resolves with how each trajectory ended, rejects with a WeftError. */
  submit(req: SequenceRequest): Promise<RequestEnd> {
    if (this.disposed) return Promise.reject(new WeftError('E_DISPOSED', 'the model has been disposed'));
    const L = req.prompt.length;
    const need = this.blocks.blocksFor(L + req.maxTokens);
    if (need > this.blocks.nBlocks) {
      return Promise.reject(new WeftError('E_KV_EXHAUSTED',
        `prompt (${L} tokens) + maxTokens (${req.maxTokens}) needs ${L + req.maxTokens} KV cache tokens; ` +
        `the cache holds ${this.blocks.nBlocks * this.blocks.blockSize} (raise kvCacheTokens)`));
    }
    if (req.signal?.aborted) return Promise.reject(aborted());
    const request = new Request(req, this.nextArrival++);
    for (const seq of this.initialSequences(request)) {
      request.live.add(seq);
      this.scheduler.enqueue(seq);
    }
    this.requests.add(request);
    const signal = req.signal;
    const onAbort = () => this.kick();
    signal?.addEventListener('abort', onAbort, { once: true });
    const settled = () => {
      this.requests.delete(request);
      signal?.removeEventListener('abort', onAbort);
    };
    request.done.then(settled, settled);
    this.kick();
    return request.done;
  }

  /** The native per-phase forward times since the last call, read once no step is in flight. */
  async profile(): Promise<NativeProfile> {
    while (this.pumping) await this.pumping.catch(() => {});
    return this.native.profile();
  }

  stats(): EngineStats {
    const s = this.scheduler;
    return {
      steps: this.counters.steps,
      calls: this.counters.calls,
      tokensComputed: this.counters.tokensComputed,
      waiting: s.waiting.length,
      running: s.running.length,
      blocksTotal: this.blocks.nBlocks,
      blocksUsed: this.blocks.usedBlocks,
      blocksCached: this.blocks.cachedBlocks,
      promptTokens: s.promptTokens,
      cachedPromptTokens: s.cachedPromptTokens,
      prefixCacheHitRate: s.promptTokens ? s.cachedPromptTokens / s.promptTokens : NaN,
      preemptions: s.preemptions,
      lastStepMs: this.counters.lastStepMs,
      meanStepMs: this.counters.steps ? this.counters.totalStepMs / this.counters.steps : 0,
    };
  }

  /** Rejects everything queued or running with E_DISPOSED once the step in flight is over. */
  async dispose(): Promise<void> {
    this.disposed = true;
    if (this.aheadInFlight) this.native.interrupt();
    await this.pumping;
    const err = new WeftError('E_DISPOSED', 'the model was disposed during the request');
    for (const r of [...this.requests]) this.failRequest(r, err);
  }

  // One sequence per request, except: n trajectories fork from one prompt sequence, on the last
  // prompt token when one step can sample all n there (the final chunk must hold n tokens),
  // otherwise one token earlier; a one-token prompt has nothing to share.
  private initialSequences(request: Request): Sequence[] {
    const prompt = Array.from(request.req.prompt);
    const n = request.n;
    const L = prompt.length;
    if (n === 1) return [new Sequence(this.nextSeqId++, request, 0, prompt)];
    if (L >= n && n <= this.opts.stepTokens) return [new Sequence(this.nextSeqId++, request, 0, prompt, n, L)];
    if (L > 1) return [new Sequence(this.nextSeqId++, request, 0, prompt, n, L - 1)];
    return Array.from({ length: n }, (_, i) => new Sequence(this.nextSeqId++, request, i, [...prompt]));
  }

  // New work or an abort: a run-ahead call in flight stops after its current step, so the
  // request is admitted (or the abort takes effect) a step later, not a whole call later.
  private kick(): void {
    if (this.aheadInFlight) this.native.interrupt();
    if (!this.pumping) {
      // Start on a microtask so that requests submitted in the same tick share the first step.
      this.pumping = Promise.resolve().then(() => this.pump()).finally(() => {
        this.pumping = null;
        // Work that arrived as the loop was ending.
        if (!this.disposed && !this.scheduler.idle) this.kick();
      });
    }
  }

  private async pump(): Promise<void> {
    while (!this.disposed) {
      this.reapAborted();
      const plan = this.scheduler.schedule();
      if (plan.chunks.length === 0) {
        if (this.scheduler.idle) return;
        // Something is queued that no step can serve: a scheduling bug. Fail loudly, never spin.
        const err = new WeftError('E_INTERNAL', 'the scheduler could not make progress');
        for (const r of [...this.requests]) this.failRequest(r, err);
        return;
      }
      const steps = this.runAheadSteps(plan);
      const { batch, rows } = buildStepBatch(plan, this.blocks);
      if (steps > 1) batch.runAhead = steps;
      let res: StepResult;
      try {
        this.aheadInFlight = steps > 1;
        res = await this.native.step(batch);
      } catch (e) {
        const err = toWeftError(e);
        for (const c of plan.chunks) this.failRequest(c.seq.request, err);
        continue;
      } finally {
        this.aheadInFlight = false;
      }
      this.counters.steps += res.steps;
      this.counters.calls++;
      this.counters.tokensComputed += batch.tokens.length * res.steps;
      this.counters.lastStepMs = (res.forwardMs + res.sampleMs) / res.steps;
      this.counters.totalStepMs += res.forwardMs + res.sampleMs;
      this.reapAborted();  // aborted while the step ran: deliver nothing more
      this.apply(plan, rows, res, batch.topN ?? 0);
    }
  }

  /**
   * How many steps this plan's crossing runs. Between steps the engine decides nothing that the
   * native side cannot repeat by itself when every chunk is one decoding token whose sample
   * becomes the next token: so it runs up to `runAhead` steps while no request waits (a waiting
   * one would be admitted a crossing later), no trajectory goes past its maxTokens, and the
   * crossing stays near RUN_AHEAD_MS. Stops are still the engine's: tokens sampled after a
   * trajectory ends (EOG, stop string, callback) are dropped, which costs at most runAhead - 1
   * tokens of compute per ending trajectory. The blocks the later steps write are allocated
   * here; if the pool is short the plan runs one step.
   */
  private runAheadSteps(plan: StepPlan): number {
    const max = this.opts.runAhead ?? 1;
    if (max <= 1 || this.scheduler.waiting.length > 0) return 1;
    const last = this.counters.lastStepMs;
    let k = last > 0 ? Math.min(max, Math.max(1, Math.floor(RUN_AHEAD_MS / last))) : max;
    for (const c of plan.chunks) {
      const s = c.seq;
      const decoding = c.count === 1 && c.from === s.tokens.length - 1 && s.forkInto === 1 && s.nSampled > 0;
      if (!decoding) return 1;
      k = Math.min(k, s.request.req.maxTokens - s.nSampled);
    }
    if (k <= 1) return 1;
    for (const c of plan.chunks) {
      const copies = this.blocks.grow(c.seq.id, c.from + 1, c.from + k);
      if (copies === null) return 1;  // blocks already added stay with their sequence for later steps
      // Positions after a decoding token lie in its own block, made private by the plan, or in new ones.
      if (copies.length) throw new WeftError('E_INTERNAL', 'run-ahead positions needed a block copy');
    }
    return k;
  }

  private reapAborted(): void {
    for (const r of [...this.requests]) if (r.req.signal?.aborted) this.failRequest(r, aborted());
  }

  private apply(plan: StepPlan, rows: OutRow[], res: StepResult, rowTopN: number): void {
    const forks = new Map<Sequence, Sequence[]>();
    for (const c of plan.chunks) {
      const s = c.seq;
      if (s.request.settled) continue;
      s.nComputed += c.count;
      this.blocks.commit(s.id, s.tokens, s.nComputed);
      if (s.forkInto > 1 && s.nComputed === s.forkAt) forks.set(s, this.fork(s));
    }
    const vocab = res.logits ? res.logits.length / rows.reduce((n, r) => n + (r.logits ? 1 : 0), 0) : 0;
    let logitRow = 0;
    rows.forEach((r, o) => {
      const s = plan.chunks[r.chunk].seq;
      if (r.logits && res.logits) {
        if (!s.request.settled) s.request.req.onLogits?.(res.logits.subarray(logitRow * vocab, (logitRow + 1) * vocab), r.pos, 1);
        logitRow++;
      }
      if (!r.sample || s.request.settled) return;
      const target = forks.get(s)?.[r.trajectory] ?? s;
      const topN = s.request.req.topN;
      this.accept(target, sampled(res, o, topN, rowTopN));
    });
    // Run-ahead steps: row o's sequence computed its previous token and sampled the next, as
    // long as it had not ended.
    for (let j = 1; j < res.steps; j++) {
      rows.forEach((r, o) => {
        const s = plan.chunks[r.chunk].seq;
        if (s.request.settled || !s.request.live.has(s)) return;
        s.nComputed++;
        this.blocks.commit(s.id, s.tokens, s.nComputed);
        this.accept(s, sampled(res, j * rows.length + o, s.request.req.topN, rowTopN));
      });
    }
  }

  // Splits a prompt sequence into its trajectories (itself as trajectory 0), all sharing its blocks.
  private fork(parent: Sequence): Sequence[] {
    const n = parent.forkInto;
    parent.forkInto = 1;
    const out = [parent];
    for (let i = 1; i < n; i++) {
      const child = new Sequence(this.nextSeqId++, parent.request, i, [...parent.tokens]);
      child.nComputed = parent.nComputed;
      this.blocks.fork(parent.id, child.id);
      parent.request.live.add(child);
      this.scheduler.addRunning(child);
      out.push(child);
    }
    return out;
  }

  private accept(s: Sequence, t: Parameters<NonNullable<SequenceRequest['onToken']>>[1]): void {
    const req = s.request.req;
    if (req.maxTokens === 0) return this.end(s, 'length');
    s.nSampled++;
    s.tokens.push(t.token);
    // An end-of-generation token ends the trajectory without being reported as output.
    if (this.opts.isEog(t.token)) return this.end(s, 'eos');
    let stop = false;
    try {
      stop = req.onToken?.(s.trajectory, t) ?? false;
    } catch (e) {
      return this.failRequest(s.request, toWeftError(e));
    }
    if (stop) this.end(s, 'callback');
    else if (s.nSampled >= req.maxTokens) this.end(s, 'length');
  }

  private end(s: Sequence, how: SequenceEnd): void {
    this.scheduler.remove(s);
    s.request.end(s, how);
  }

  private failRequest(r: Request, e: WeftError): void {
    for (const s of r.live) this.scheduler.remove(s);
    r.fail(e);
  }
}

// Output row `at` of a step result (rows of later run-ahead steps follow the first step's).
function sampled(res: StepResult, at: number, topN: number, rowTopN: number): SampledToken {
  return {
    token: res.tokens[at],
    logprob: res.logprobs[at],
    confidence: res.confidences[at],
    topIds: topN && res.topIds ? res.topIds.slice(at * rowTopN, at * rowTopN + topN) : undefined,
    topLogprobs: topN && res.topLogprobs ? res.topLogprobs.slice(at * rowTopN, at * rowTopN + topN) : undefined,
  };
}

function aborted(): WeftError {
  return new WeftError('E_ABORTED', 'the request was aborted');
}
