import { WeftError } from '../errors.js';
import type { BlockManager } from '../kv/block-manager.js';
import { compareSequences, type Sequence } from './sequence.js';

export interface SchedulerOptions {
  /** Token budget of one step: decode tokens plus prefill chunks. */
  stepTokens: number;
  /**
   * Split prompts longer than what is left of the budget into chunks (default). Without it, a
   * prompt is prefilled in one step whatever its length, stalling every decoding sequence for
   * that step: the behaviour chunking exists to avoid, kept for comparison.
   */
  chunkedPrefill: boolean;
}

/** Tokens [from, from + count) of `seq` are computed in this step. */
export interface ScheduledChunk {
  seq: Sequence;
  from: number;
  count: number;
  /** Copy-on-write (src, dst) pairs that must precede this chunk's writes. */
  copies: number[];
}

export interface StepPlan {
  chunks: ScheduledChunk[];
  /** Every chunk's copies, in the order they were planned (a block freed by a preemption may be
   *  reused as a later copy's destination, so order matters). */
  copies: number[];
}

/**
 * Iteration-level scheduling over the block manager. Each step:
 *  1. running sequences, decoding ones first, then those still prefilling, each group in
 *     priority / arrival order, get their next token or next prompt chunk within the budget;
 *     when a sequence needs blocks that are not there, the youngest running sequence (lowest
 *     priority, latest arrival, highest trajectory) is preempted: its blocks are freed and it
 *     goes back to the queue to be recomputed later (its full blocks stay in the prefix cache,
 *     so recomputing is often cheap). The needy sequence may be that youngest one itself.
 *  2. if nothing was preempted, waiting sequences are admitted in the same order, each reusing
 *     the longest cached prefix of its tokens, while blocks and budget last. The queue head
 *     blocks the rest (FIFO within a priority): a small request never overtakes a large one.
 * The oldest sequence is never preempted for a younger one, and any single sequence fits the
 * pool (the engine rejects others up front), so the oldest always progresses: nothing starves
 * forever and nothing is truncated.
 */
export class Scheduler {
  /** In compareSequences order. */
  readonly waiting: Sequence[] = [];
  /** In compareSequences order. */
  readonly running: Sequence[] = [];
  preemptions = 0;
  /** Prompt tokens of first admissions, and how many of them the prefix cache held. */
  promptTokens = 0;
  cachedPromptTokens = 0;

  constructor(private readonly bm: BlockManager, private readonly opts: SchedulerOptions) {}

  get idle(): boolean {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  enqueue(seq: Sequence): void {
    insertSorted(this.waiting, seq);
  }

  /** A sequence that joins the running set without admission (a forked trajectory). */
  addRunning(seq: Sequence): void {
    insertSorted(this.running, seq);
  }

  /** Takes a sequence out of the queue or the running set and frees its blocks. */
  remove(seq: Sequence): void {
    for (const list of [this.waiting, this.running]) {
      const i = list.indexOf(seq);
      if (i >= 0) list.splice(i, 1);
    }
    if (this.bm.has(seq.id)) this.bm.free(seq.id);
  }

  schedule(): StepPlan {
    const chunks: ScheduledChunk[] = [];
    let used = 0;      // tokens scheduled (a whole prompt without chunking may exceed the budget)
    let prefills = 0;  // chunks that are not single decode tokens
    let preempted = false;
    const budget = () => Math.max(0, this.opts.stepTokens - used);
    const isPrefill = (c: ScheduledChunk) => c.seq.target - c.from > 1;
    const take = (c: ScheduledChunk) => {
      chunks.push(c);
      used += c.count;
      if (isPrefill(c)) prefills++;
    };
    const drop = (at: number) => {
      const [c] = chunks.splice(at, 1);
      used -= c.count;
      if (isPrefill(c)) prefills--;
    };

    const order = [...this.running].sort((a, b) => Number(prefilling(a)) - Number(prefilling(b)) || compareSequences(a, b));
    const gone = new Set<Sequence>();
    for (const seq of order) {
      if (budget() === 0) break;
      if (gone.has(seq)) continue;
      const count = this.chunkSize(seq, seq.nComputed, budget(), prefills);
      if (count === 0) continue;
      let copies = this.bm.grow(seq.id, seq.nComputed, seq.nComputed + count);
      while (copies === null) {
        const victim = this.running[this.running.length - 1];
        const at = chunks.findIndex((c) => c.seq === victim);
        if (at >= 0) drop(at);
        this.preempt(victim);
        gone.add(victim);
        preempted = true;
        if (victim === seq) break;
        copies = this.bm.grow(seq.id, seq.nComputed, seq.nComputed + count);
      }
      if (copies) take({ seq, from: seq.nComputed, count, copies });
    }

    // Admitting while preempting would only hand the freed blocks to someone younger.
    while (!preempted && budget() > 0 && this.waiting.length) {
      const seq = this.waiting[0];
      const m = this.bm.match(seq.tokens, this.reusable(seq));
      const count = this.chunkSize(seq, m.tokens, budget(), prefills);
      if (count === 0 || !this.bm.canOpen(m, m.tokens + count)) break;
      this.waiting.shift();
      this.bm.open(seq.id, m);
      const copies = this.bm.grow(seq.id, m.tokens, m.tokens + count);
      if (!copies) throw new WeftError('E_INTERNAL', 'block manager refused an allocation it had agreed to');
      seq.nComputed = m.tokens;
      if (seq.request.cachedPromptTokens < 0) {
        seq.request.cachedPromptTokens = Math.min(m.tokens, seq.request.req.prompt.length);
        this.promptTokens += seq.request.req.prompt.length;
        this.cachedPromptTokens += seq.request.cachedPromptTokens;
      }
      insertSorted(this.running, seq);
      take({ seq, from: m.tokens, count, copies });
    }
    return { chunks, copies: chunks.flatMap((c) => c.copies) };
  }

  private preempt(seq: Sequence): void {
    this.remove(seq);
    seq.nComputed = 0;
    this.enqueue(seq);
    this.preemptions++;
  }

  // Tokens of seq to compute this step from `from`, given what is left of the budget.
  private chunkSize(seq: Sequence, from: number, budget: number, prefillsSoFar: number): number {
    const remaining = seq.target - from;
    if (remaining <= budget) return remaining;
    if (!this.opts.chunkedPrefill) return prefillsSoFar === 0 ? remaining : 0;
    // The final chunk must hold at least as many tokens as it has sampled rows (a step has no
    // more outputs than tokens), so a chunk never leaves a shorter remainder than that.
    return Math.max(0, Math.min(budget, remaining - finalChunkMin(seq)));
  }

  // How much of seq's tokens a prefix-cache hit may cover: the final chunk must still be
  // computed (its logits are sampled), and every position when all logits were asked for.
  private reusable(seq: Sequence): number {
    if (seq.request.req.logits === 'all') return 0;
    return seq.target - finalChunkMin(seq);
  }
}

function finalChunkMin(seq: Sequence): number {
  return Math.max(1, seq.outputsAtTarget);
}

function prefilling(seq: Sequence): boolean {
  return seq.target - seq.nComputed > 1;
}

function insertSorted(list: Sequence[], seq: Sequence): void {
  let i = list.length;
  while (i > 0 && compareSequences(list[i - 1], seq) > 0) i--;
  list.splice(i, 0, seq);
}
