import type { WeftError } from '../errors.js';

/** Sampling settings of one request, validated and with defaults filled in. */
export interface SamplingSettings {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  /** Seed of trajectory 0; trajectory i draws from the stream seeded seed + i. */
  seed: number;
}

/** What the sampler returned for one token of a trajectory. */
export interface SampledToken {
  token: number;
  logprob: number;
  confidence: number;
  topIds?: Int32Array;
  topLogprobs?: Float32Array;
}

export interface SequenceRequest {
  prompt: Int32Array;
  /** Tokens to sample per trajectory; 0 evaluates the prompt only. */
  maxTokens: number;
  /** Trajectories sampled from the one prompt (its prefill is shared). Default 1. */
  n?: number;
  sampling: SamplingSettings;
  topN: number;
  /** Higher is admitted first and preempted last. Default 0. */
  priority?: number;
  /** Which prompt positions' logits to hand to onLogits. */
  logits: 'none' | 'last' | 'all';
  /** Each sampled token of trajectory `trajectory`; return true to end that trajectory there. */
  onToken?(trajectory: number, t: SampledToken): boolean;
  /** Rows of logits [count][nVocab] for prompt positions first..first+count-1. */
  onLogits?(rows: Float32Array, first: number, count: number): void;
  signal?: AbortSignal;
}

export type SequenceEnd = 'eos' | 'length' | 'callback';

export interface RequestEnd {
  /** How each trajectory ended, by trajectory index. */
  ends: SequenceEnd[];
  /** Prompt tokens whose K/V came from the prefix cache when the prompt was first scheduled. */
  cachedPromptTokens: number;
}

/** A submitted request: its trajectories, and the promise its caller awaits. */
export class Request {
  readonly n: number;
  readonly priority: number;
  readonly ends: (SequenceEnd | undefined)[];
  /** Sequences not yet ended, waiting or running. */
  readonly live = new Set<Sequence>();
  cachedPromptTokens = -1;  // set at first admission
  settled = false;
  readonly done: Promise<RequestEnd>;
  private resolveDone!: (end: RequestEnd) => void;
  private rejectDone!: (e: WeftError) => void;

  constructor(readonly req: SequenceRequest, readonly arrival: number) {
    this.n = req.n ?? 1;
    this.priority = req.priority ?? 0;
    this.ends = new Array<SequenceEnd | undefined>(this.n);
    this.done = new Promise<RequestEnd>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
  }

  /** Records how a trajectory ended; resolves once every trajectory has. */
  end(seq: Sequence, how: SequenceEnd): void {
    this.ends[seq.trajectory] = how;
    this.live.delete(seq);
    if (this.live.size === 0 && !this.settled) {
      this.settled = true;
      this.resolveDone({ ends: this.ends as SequenceEnd[], cachedPromptTokens: Math.max(0, this.cachedPromptTokens) });
    }
  }

  fail(e: WeftError): void {
    this.live.clear();
    if (this.settled) return;
    this.settled = true;
    this.rejectDone(e);
  }
}

/**
 * One trajectory as the scheduler tracks it (or, before its fork, the prompt that n trajectories
 * share). Invariant: the K/V of tokens[0, nComputed) is in the sequence's blocks; every token
 * after the prompt was sampled with counter = its index among the sampled ones, so recomputing a
 * preempted sequence reproduces its state exactly.
 */
export class Sequence {
  readonly tokens: number[];
  nComputed = 0;
  nSampled = 0;
  /**
   * Trajectories this sequence becomes once tokens[0, forkAt) are computed; 1 for a plain
   * sequence. With forkAt = prompt length the last prompt token's logits are sampled once per
   * trajectory in the same step; with forkAt = prompt length - 1 each trajectory computes the
   * last prompt token itself (used when one step could not hold n outputs of one token).
   */
  forkInto: number;
  forkAt: number;

  constructor(
    /** Key of its block table; unique for the engine's lifetime. */
    readonly id: number,
    readonly request: Request,
    readonly trajectory: number,
    tokens: number[],
    forkInto = 1,
    forkAt = tokens.length,
  ) {
    this.tokens = tokens;
    this.forkInto = forkInto;
    this.forkAt = forkAt;
  }

  /** Tokens [0, target) must be computed before the sequence samples or forks. */
  get target(): number {
    return this.forkInto > 1 ? this.forkAt : this.tokens.length;
  }

  /** Sampled rows its final chunk produces: one per trajectory at a fork on the last token. */
  get outputsAtTarget(): number {
    if (this.forkInto > 1) return this.forkAt === this.tokens.length ? this.forkInto : 0;
    return 1;
  }

  get seed(): number {
    return this.request.req.sampling.seed + this.trajectory;
  }
}

/**
 * Scheduling order: higher priority first, then earlier arrival, then lower trajectory index.
 * Admission takes the smallest key first; preemption takes the largest first (youngest).
 */
export function compareSequences(a: Sequence, b: Sequence): number {
  return b.request.priority - a.request.priority || a.request.arrival - b.request.arrival || a.trajectory - b.trajectory;
}
