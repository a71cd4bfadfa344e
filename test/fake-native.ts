// A stand-in for the native model in scheduler tests. It checks each step batch as the core does,
// keeps a KV cache of (token, position) per slot, runs block copies before the "forward", and
// samples a token that hashes everything the sequence's block table lets it read, with the
// row's seed and counter. So a wrong table, a missed copy-on-write or a reused block with other
// contents changes the tokens, while a correct engine reproduces `reference()` exactly.
import { SAMPLING_FIELDS, type NativeInfo, type NativeModel, type NativeProfile, type StepBatch, type StepResult } from '../lib/native.js';

export const FAKE_EOG = 0;

export class FakeNative implements NativeModel {
  readonly batches: StepBatch[] = [];
  /** Steps each call ran (fewer than its runAhead when interrupted). */
  readonly ran: number[] = [];
  private readonly kvTok: Int32Array;
  private readonly kvPos: Int32Array;
  private busy = false;
  private interrupted = false;

  constructor(readonly nBlocks: number, readonly blockSize: number, readonly vocab = 64) {
    this.kvTok = new Int32Array(nBlocks * blockSize).fill(-1);
    this.kvPos = new Int32Array(nBlocks * blockSize).fill(-1);
  }

  info(): NativeInfo {
    return { vocabSize: this.vocab, kvCache: { blocks: this.nBlocks, blockSize: this.blockSize, type: 'f32', bytes: 0 } } as NativeInfo;
  }

  metadata(): never {
    throw new Error('the fake model has no metadata');
  }

  dispose(): void {}

  profile(): NativeProfile {
    return { steps: this.batches.length, tokens: 0, ms: {} };
  }

  interrupt(): void {
    this.interrupted = true;
  }

  async step(b: StepBatch): Promise<StepResult> {
    if (this.busy) throw new Error('two steps in flight');
    this.busy = true;
    this.interrupted = false;
    try {
      this.batches.push(b);
      const n = b.tokens.length, nOut = b.outIdx.length;
      let steps = b.runAhead ?? 1;
      if (steps > 1 && (nOut !== n || b.outIdx.some((t, i) => t !== i) || b.wantLogits?.some((w) => w))) {
        invalid('runAhead > 1 needs one sampled output row per token');
      }
      const tokens = new Int32Array(steps * nOut);
      let cur = b;
      for (let j = 0; j < steps; j++) {
        if (j > 0) {  // as the native side: each token followed by its sample, counters one higher
          await new Promise((r) => setImmediate(r));  // each step a turn of the event loop, so interrupt() can land
          if (this.interrupted) {
            steps = j;
            break;
          }
          const sampling = cur.sampling.slice();
          for (let o = 0; o < nOut; o++) sampling[o * SAMPLING_FIELDS + 5] += 1;
          cur = { ...cur, tokens: tokens.slice((j - 1) * nOut, j * nOut), positions: cur.positions.map((p) => p + 1), sampling, copies: undefined };
        }
        tokens.set(this.forward(cur), j * nOut);
      }
      await new Promise((r) => setImmediate(r));  // a step takes a turn of the event loop, like the real one
      this.ran.push(steps);
      const logits = b.wantLogits ? new Float32Array([...b.wantLogits].filter((w) => w).length * this.vocab) : undefined;
      return {
        steps, tokens: tokens.slice(0, steps * nOut), logprobs: new Float32Array(steps * nOut).fill(-1), confidences: new Float32Array(steps * nOut).fill(1),
        logits, forwardMs: 0, sampleMs: 0,
      };
    } finally {
      this.busy = false;
    }
  }

  // One step: checks the batch, does its copies, writes its tokens and samples its output rows.
  private forward(b: StepBatch): Int32Array {
    const bs = this.blockSize;
    const n = b.tokens.length, nOut = b.outIdx.length;
    if (n === 0) invalid('no tokens');
    if (nOut > n) invalid(`${nOut} outputs for ${n} tokens`);
    if (b.sampling.length !== nOut * SAMPLING_FIELDS) invalid('sampling size');
    const slot = (t: number, pos: number) => {
      const blk = b.blockTables[b.seqIdx[t] * b.maxBlocks + Math.floor(pos / bs)];
      if (!(blk >= 0 && blk < this.nBlocks)) invalid(`token ${t} reads position ${pos} through block ${blk}`);
      return blk * bs + (pos % bs);
    };
    const written = new Set<number>();
    for (let t = 0; t < n; t++) {
      const s = slot(t, b.positions[t]);
      if (written.has(s)) invalid('two tokens write the same KV cache slot');
      written.add(s);
    }
    const copies = b.copies ?? new Int32Array(0);
    for (let c = 0; c < copies.length; c += 2) {
      const [src, dst] = [copies[c], copies[c + 1]];
      if (src === dst || src < 0 || dst < 0 || src >= this.nBlocks || dst >= this.nBlocks) invalid(`copy ${src} -> ${dst}`);
      this.kvTok.copyWithin(dst * bs, src * bs, (src + 1) * bs);
      this.kvPos.copyWithin(dst * bs, src * bs, (src + 1) * bs);
    }
    for (let t = 0; t < n; t++) {
      const s = slot(t, b.positions[t]);
      this.kvTok[s] = b.tokens[t];
      this.kvPos[s] = b.positions[t];
    }
    const tokens = new Int32Array(nOut);
    for (let o = 0; o < nOut; o++) {
      const t = b.outIdx[o];
      const ctx: number[] = [];
      for (let p = 0; p <= b.positions[t]; p++) {
        const s = slot(t, p);
        // A slot that holds another position means the table points at someone else's data.
        if (this.kvPos[s] !== p) invalid(`position ${p} of output ${o} reads a slot holding position ${this.kvPos[s]}`);
        ctx.push(this.kvTok[s]);
      }
      const f = o * SAMPLING_FIELDS;
      tokens[o] = fakeToken(ctx, b.sampling[f + 4], b.sampling[f + 5], this.vocab);
    }
    return tokens;
  }
}

function invalid(m: string): never {
  throw Object.assign(new Error(`invalid step batch: ${m}`), { code: 'E_INVALID_ARGUMENT' });
}

/** The token the fake samples after `context` for (seed, counter). */
export function fakeToken(context: readonly number[], seed: number, counter: number, vocab: number): number {
  let h = 2166136261 ^ seed ^ Math.imul(counter + 1, 0x9e3779b1);
  for (const x of context) h = Math.imul(h ^ (x + 0x5bd1e995), 16777619) ^ (h >>> 13);
  return (h >>> 0) % vocab;
}

/** What a sequence generates run alone: sampled tokens up to EOG (not included) or maxTokens. */
export function reference(prompt: readonly number[], seed: number, maxTokens: number, vocab = 64): number[] {
  const ctx = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < maxTokens; i++) {
    const t = fakeToken(ctx, seed, i, vocab);
    if (t === FAKE_EOG) break;
    out.push(t);
    ctx.push(t);
  }
  return out;
}
