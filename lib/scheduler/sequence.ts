/** Sampling settings of one sequence, validated and with defaults filled in. */
export interface SamplingSettings {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  seed: number;
}

/** What the sampler returned for one token of a sequence. */
export interface SampledToken {
  token: number;
  logprob: number;
  confidence: number;
  topIds?: Int32Array;
  topLogprobs?: Float32Array;
}

export interface SequenceRequest {
  prompt: Int32Array;
  /** Tokens to sample after the prompt; 0 evaluates the prompt only. */
  maxTokens: number;
  sampling: SamplingSettings;
  topN: number;
  /** Which prompt positions' logits to hand to onLogits. */
  logits: 'none' | 'last' | 'all';
  /** Each sampled token; return true to end the sequence there. */
  onToken?(t: SampledToken): boolean;
  /** Rows of logits [count][nVocab] for prompt positions first..first+count-1. */
  onLogits?(rows: Float32Array, first: number, count: number): void;
  signal?: AbortSignal;
}

export type SequenceEnd = 'eos' | 'length' | 'callback';

/**
 * A request as the engine tracks it. Invariant: positions [0, nComputed) of `tokens` are in
 * the KV cache, in `blocks`, which is the sequence's whole reservation (prompt + maxTokens).
 */
export class Sequence {
  readonly tokens: number[];
  nComputed = 0;
  nSampled = 0;
  blocks: number[] = [];
  readonly done: Promise<SequenceEnd>;
  resolve!: (end: SequenceEnd) => void;
  reject!: (e: unknown) => void;

  constructor(readonly req: SequenceRequest) {
    this.tokens = Array.from(req.prompt);
    this.done = new Promise<SequenceEnd>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
  }

  get reservedTokens(): number {
    return this.req.prompt.length + this.req.maxTokens;
  }
}
