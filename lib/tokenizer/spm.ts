/**
 * SentencePiece-style BPE as llama.cpp's llm_tokenizer_spm runs it: start from single
 * characters, repeatedly merge the adjacent pair whose concatenation is the vocabulary
 * token with the highest score (ties: leftmost), then emit each final symbol as its token
 * or, when it is not one, as one <0xNN> byte token per UTF-8 byte (byte fallback).
 */
import { WeftError } from '../errors.js';
import { MergeQueue, mergeAdjacent, type Candidate } from './merge-queue.js';
import type { Vocab } from './vocab.js';

const encoder = new TextEncoder();

const higherScoreFirst = (a: Candidate, b: Candidate) => a.key > b.key || (a.key === b.key && a.left < b.left);

export class SpmModel {
  /** [256] the token that stands for each byte. */
  private readonly byteTokens: Int32Array;

  constructor(private readonly vocab: Vocab) {
    this.byteTokens = new Int32Array(256).map((_, b) => this.findByteToken(b));
  }

  /**
   * llama.cpp's byte_to_token: "<0xNN>", else the byte itself as a one-character token.
   * Where neither exists llama.cpp throws; the unknown token is the graceful equivalent.
   */
  private findByteToken(b: number): number {
    const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    const id = this.vocab.ids.get(hex) ?? (b < 0x80 ? this.vocab.ids.get(String.fromCharCode(b)) : undefined) ?? this.vocab.unk;
    return id ?? -1;
  }

  /** Appends the tokens of `text`, whose spaces are already escaped as U+2581. */
  tokenize(text: string, out: number[]): void {
    const { ids, scores } = this.vocab;
    // Symbols are code points, as UTF-16 [start, start + len) ranges of `text`; a merged-away
    // symbol has len 0 and is unlinked from the prev/next chain.
    const start: number[] = [];
    const len: number[] = [];
    for (let i = 0; i < text.length; ) {
      const w = text.codePointAt(i)! > 0xffff ? 2 : 1;
      start.push(i);
      len.push(w);
      i += w;
    }
    const n = start.length;
    if (n === 0) return;
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));

    const queue = new MergeQueue(higherScoreFirst);
    mergeAdjacent(queue, len, prev, next, (left, right) => {
      const id = ids.get(text.slice(start[left], start[left] + len[left] + len[right]));
      return id === undefined ? undefined : scores[id];
    });

    for (let i = 0; i !== -1; i = next[i]) {
      const piece = text.slice(start[i], start[i] + len[i]);
      const id = ids.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const b of encoder.encode(piece)) {
        const t = this.byteTokens[b];
        if (t < 0) throw new WeftError('E_MODEL_FORMAT', `SPM vocabulary has no token for byte 0x${b.toString(16)} and no unknown token`);
        out.push(t);
      }
    }
  }
}
