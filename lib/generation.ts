import { WeftError, toWeftError } from './errors.js';
import type { StreamDecoder } from './tokenizer/index.js';

/** One generated token, as streamed. */
export interface TokenEvent {
  /** Index of the token among the generated ones. */
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

export interface GenerationResult {
  text: string;
  tokens: number[];
  finishReason: FinishReason;
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
  /** Mean and lowest token confidence over the generated tokens (NaN when none). */
  meanConfidence: number;
  minConfidence: number;
  elapsedMs: number;
}

/**
 * A generation in progress: an async iterable of TokenEvents and a `result` promise. Both
 * fail with the same WeftError (E_ABORTED after an abort). Events are buffered, so a caller may
 * iterate late or only await `result`.
 */
export class Generation implements AsyncIterable<TokenEvent> {
  readonly result: Promise<GenerationResult>;
  private readonly events: TokenEvent[] = [];
  private ended = false;
  private error: WeftError | null = null;
  private wake: (() => void) | null = null;

  private readonly tokens: number[] = [];
  private text = '';        // decoded so far, stop strings not yet cut
  private emitted = 0;      // chars of `text` already handed out in events
  private stopAt = -1;      // index in `text` where a stop string begins
  private confSum = 0;
  private confMin = Infinity;
  private held: TokenEvent | null = null;  // last event, while its text may still grow
  private readonly started = performance.now();

  /** @internal built by Model.generate */
  constructor(
    private readonly decoder: StreamDecoder,
    private readonly stops: readonly string[],
    private readonly promptTokens: number,
    run: (gen: Generation) => Promise<'eos' | 'length' | 'callback'>,
  ) {
    this.result = run(this).then(
      (end) => this.complete(end === 'callback' ? 'stop' : end),
      (e) => this.fail(toWeftError(e)),
    );
    // A caller that only iterates must not see an unhandled rejection of `result`.
    this.result.catch(() => {});
  }

  /** @internal Adds a token; returns true when a stop string has ended the generation. */
  push(ev: Omit<TokenEvent, 'index' | 'text'>): boolean {
    this.tokens.push(ev.token);
    this.confSum += ev.confidence;
    this.confMin = Math.min(this.confMin, ev.confidence);
    this.text += this.decoder.push(ev.token);
    const text = this.releasable();
    if (this.held) this.emit(this.held);
    const event = { ...ev, index: this.tokens.length - 1, text };
    // An event whose text is still incomplete (held back as a possible stop-string prefix, or
    // bytes of an unfinished character) waits, so whatever completes it at the end of the
    // generation lands in the stream too.
    const incomplete = this.stopAt < 0 && (text === '' || this.emitted < this.text.length);
    this.held = incomplete ? event : null;
    if (!incomplete) this.emit(event);
    return this.stopAt >= 0;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    for (;;) {
      if (this.events.length) {
        yield this.events.shift()!;
        continue;
      }
      if (this.error) throw this.error;
      if (this.ended) return;
      await new Promise<void>((r) => { this.wake = r; });
    }
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

  private emit(ev: TokenEvent): void {
    this.events.push(ev);
    this.wake?.();
    this.wake = null;
  }

  private complete(reason: 'eos' | 'length' | 'stop'): GenerationResult {
    if (this.stopAt < 0) this.text += this.decoder.flush();
    const end = this.stopAt >= 0 ? this.stopAt : this.text.length;
    if (this.held) {
      this.held.text += this.text.slice(this.emitted, end);
      this.emit(this.held);
      this.held = null;
    }
    this.emitted = end;
    this.ended = true;
    this.wake?.();
    const n = this.tokens.length;
    return {
      text: this.text.slice(0, end),
      tokens: [...this.tokens],
      finishReason: this.stopAt >= 0 ? 'stop' : reason,
      usage: { promptTokens: this.promptTokens, completionTokens: n, totalTokens: this.promptTokens + n },
      meanConfidence: n ? this.confSum / n : NaN,
      minConfidence: n ? this.confMin : NaN,
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
