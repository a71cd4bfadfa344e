import { WeftError, toWeftError } from './errors.js';
import type { StreamDecoder } from './tokenizer/index.js';
import type { RequestEnd } from './scheduler/sequence.js';

/** One generated token, as streamed. */
export interface TokenEvent {
  /** Which trajectory it belongs to (0 unless the request asked for n > 1). */
  trajectory: number;
  /** Index of the token among its trajectory's generated ones. */
  index: number;
  token: number;
  /**
   * Text this token completes. Can be '' when the token ends inside a UTF-8 character or
   * could be the start of a stop string; that text arrives with a later event.
   */
  text: string;
  logprob: number;
  /** DeepConf token confidence: -mean log-prob of the top-20 tokens. */
  confidence: number;
  topLogprobs?: { token: number; logprob: number }[];
}

export type FinishReason = 'eos' | 'stop' | 'length';

/** One sampled continuation of the prompt. */
export interface TrajectoryResult {
  text: string;
  tokens: number[];
  finishReason: FinishReason;
  /** Mean and lowest token confidence over its generated tokens (NaN when none). */
  meanConfidence: number;
  lowestConfidence: number;
}

/** The result of a generation: trajectory 0's fields at the top, every trajectory in `trajectories`. */
export interface GenerationResult extends TrajectoryResult {
  trajectories: TrajectoryResult[];
  usage: {
    promptTokens: number;
    /** Prompt tokens whose K/V was reused from the prefix cache instead of computed. */
    cachedPromptTokens: number;
    /** Over all trajectories. */
    completionTokens: number;
    totalTokens: number;
  };
  elapsedMs: number;
}

/**
 * A generation in progress: an async iterable of TokenEvents (of every trajectory, in the order
 * they were produced) and a `result` promise. Both fail with the same WeftError (E_ABORTED after
 * an abort). Events are buffered, so a caller may iterate late or only await `result`; once the
 * request's signal aborts, the iteration delivers none of them that it has not yet delivered
 * (decode computes several steps per native call, so several may be waiting).
 */
export class Generation implements AsyncIterable<TokenEvent> {
  readonly result: Promise<GenerationResult>;
  private readonly events: TokenEvent[] = [];
  private ended = false;
  private error: WeftError | null = null;
  private wake: (() => void) | null = null;
  private readonly trajectories: TrajectoryText[];
  private readonly started = performance.now();

  /** @internal built by Model.generate */
  constructor(
    newDecoder: () => StreamDecoder,
    stops: readonly string[],
    n: number,
    private readonly promptTokens: number,
    private readonly signal: AbortSignal | undefined,
    run: (gen: Generation) => Promise<RequestEnd>,
  ) {
    const emit = (ev: TokenEvent) => {
      this.events.push(ev);
      this.wake?.();
      this.wake = null;
    };
    this.trajectories = Array.from({ length: n }, (_, i) => new TrajectoryText(i, newDecoder(), stops, emit));
    this.result = run(this).then(
      (end) => this.complete(end),
      (e) => this.fail(toWeftError(e)),
    );
    // A caller that only iterates must not see an unhandled rejection of `result`.
    this.result.catch(() => {});
  }

  /** @internal Adds a token to a trajectory; returns true when a stop string has ended it. */
  push(trajectory: number, ev: Omit<TokenEvent, 'index' | 'text' | 'trajectory'>): boolean {
    return this.trajectories[trajectory].push(ev);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    for (;;) {
      // After an abort nothing more is delivered: the engine's verdict (E_ABORTED, or the end
      // the request reached first) decides what the iteration does.
      if (this.signal?.aborted && !this.ended) await this.result.catch(() => {});
      if (this.error && (this.signal?.aborted || !this.events.length)) throw this.error;
      if (this.events.length) {
        yield this.events.shift()!;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => { this.wake = r; });
    }
  }

  private complete(end: RequestEnd): GenerationResult {
    const trajectories = this.trajectories.map((t, i) => t.finish(end.ends[i] === 'callback' ? 'stop' : end.ends[i]));
    this.ended = true;
    this.wake?.();
    const completionTokens = trajectories.reduce((n, t) => n + t.tokens.length, 0);
    return {
      ...trajectories[0],
      trajectories,
      usage: {
        promptTokens: this.promptTokens,
        cachedPromptTokens: end.cachedPromptTokens,
        completionTokens,
        totalTokens: this.promptTokens + completionTokens,
      },
      elapsedMs: performance.now() - this.started,
    };
  }

  private fail(e: WeftError): never {
    this.error = e;
    this.ended = true;
    this.wake?.();
    throw e;
  }
}

/**
 * One trajectory's text: decodes its tokens, cuts it at the first stop string, and holds back
 * text that might still become one, so no event ever shows text past a stop.
 */
class TrajectoryText {
  private readonly tokens: number[] = [];
  private text = '';        // decoded so far, stop strings not yet cut
  private emitted = 0;      // chars of `text` already handed out in events
  private stopAt = -1;      // index in `text` where a stop string begins
  private confSum = 0;
  private confMin = Infinity;
  private held: TokenEvent | null = null;  // last event, while its text may still grow

  constructor(
    private readonly trajectory: number,
    private readonly decoder: StreamDecoder,
    private readonly stops: readonly string[],
    private readonly emit: (ev: TokenEvent) => void,
  ) {}

  push(ev: Omit<TokenEvent, 'index' | 'text' | 'trajectory'>): boolean {
    this.tokens.push(ev.token);
    this.confSum += ev.confidence;
    this.confMin = Math.min(this.confMin, ev.confidence);
    this.text += this.decoder.push(ev.token);
    const text = this.releasable();
    if (this.held) this.emit(this.held);
    const event = { trajectory: this.trajectory, ...ev, index: this.tokens.length - 1, text };
    // An event whose text is still incomplete (held back as a possible stop-string prefix, or
    // bytes of an unfinished character) waits, so whatever completes it at the end of the
    // generation lands in the stream too.
    const incomplete = this.stopAt < 0 && (text === '' || this.emitted < this.text.length);
    this.held = incomplete ? event : null;
    if (!incomplete) this.emit(event);
    return this.stopAt >= 0;
  }

  finish(reason: 'eos' | 'length' | 'stop'): TrajectoryResult {
    if (this.stopAt < 0) this.text += this.decoder.flush();
    const end = this.stopAt >= 0 ? this.stopAt : this.text.length;
    if (this.held) {
      this.held.text += this.text.slice(this.emitted, end);
      this.emit(this.held);
      this.held = null;
    }
    this.emitted = end;
    const n = this.tokens.length;
    return {
      text: this.text.slice(0, end),
      tokens: [...this.tokens],
      finishReason: this.stopAt >= 0 ? 'stop' : reason,
      meanConfidence: n ? this.confSum / n : NaN,
      lowestConfidence: n ? this.confMin : NaN,
    };
  }

  // Text that can be shown now: up to a stop string if one appeared, else all but a tail that
  // could still grow into a stop string.
  private releasable(): string {
    if (this.stopAt < 0) {
      const from = Math.max(0, this.emitted - maxLen(this.stops));
      for (const s of this.stops) {
        const i = this.text.indexOf(s, from);
        if (i >= 0 && (this.stopAt < 0 || i < this.stopAt)) this.stopAt = i;
      }
    }
    const end = this.stopAt >= 0 ? this.stopAt : this.text.length - heldTail(this.text, this.stops);
    const out = end > this.emitted ? this.text.slice(this.emitted, end) : '';
    this.emitted = Math.max(this.emitted, end);
    return out;
  }
}

function maxLen(stops: readonly string[]): number {
  return stops.reduce((m, s) => Math.max(m, s.length), 0);
}

// Length of the longest suffix of text that is a proper prefix of some stop string.
function heldTail(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > held; k--) {
      if (text.endsWith(s.slice(0, k))) {
        held = k;
        break;
      }
    }
  }
  return held;
}
