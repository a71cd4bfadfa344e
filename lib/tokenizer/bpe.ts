/**
 * Byte-level BPE as llama.cpp's llm_tokenizer_bpe runs it: pre-tokenize into words, write
 * each word's UTF-8 bytes in GPT-2's byte alphabet, then repeatedly merge the adjacent pair
 * with the lowest rank in tokenizer.ggml.merges (ties: leftmost) and look the final
 * symbols up in the vocabulary. Pre-tokenizers with ignore_merges (Llama 3) take a word that is
 * a token as it is: merging could reach a different split of it.
 */
import { WeftError } from '../errors.js';
import { byteEncode } from './byte-alphabet.js';
import { MergeQueue, mergeAdjacent, type Candidate } from './merge-queue.js';
import { PRE_TOKENIZER_NAMES, preTokenize, preTokenizer, type PreTokenizer } from './pre-tokenizers.js';
import type { Vocab } from './vocab.js';

const encoder = new TextEncoder();

const lowerRankFirst = (a: Candidate, b: Candidate) => a.key < b.key || (a.key === b.key && a.left < b.left);

/** Words repeat a lot in text; past this many distinct ones the cache starts over. */
const WORD_CACHE_LIMIT = 1 << 16;

export class BpeModel {
  /**
   * "left right" -> rank. llama.cpp splits each merge at its first space after the first
   * character; in the byte alphabet no symbol contains a space (0x20 is 'Ġ'), so joining
   * with a space again is unambiguous.
   */
  private readonly ranks = new Map<string, number>();
  private readonly pre: PreTokenizer;
  private readonly cache = new Map<string, readonly number[]>();

  constructor(private readonly vocab: Vocab) {
    const pre = preTokenizer(vocab.pre);
    if (!pre) {
      throw new WeftError('E_UNSUPPORTED', `BPE pre-tokenizer '${vocab.pre}' is not supported (supported: ${PRE_TOKENIZER_NAMES.join(', ')})`);
    }
    this.pre = pre;
    vocab.merges.forEach((merge, rank) => {
      const space = merge.indexOf(' ', 1);
      if (space < 0) return;  // llama.cpp stores it as an ("", "") pair, which no symbols match
      const key = merge.slice(0, space) + ' ' + merge.slice(space + 1);
      if (!this.ranks.has(key)) this.ranks.set(key, rank);  // the first of duplicates wins (emplace)
    });
  }

  /** Appends the tokens of a text fragment (no special tokens in it). */
  tokenize(text: string, out: number[]): void {
    for (const word of preTokenize(text, this.pre.regexes)) {
      let ids = this.cache.get(word);
      if (!ids) {
        const symbols = byteEncode(encoder.encode(word));
        const whole = this.pre.ignoreMerges ? this.vocab.ids.get(symbols) : undefined;
        ids = whole !== undefined ? [whole] : this.mergeWord(symbols);
        if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** `word` is in the byte alphabet: one UTF-16 unit per symbol (all of it is below U+0144). */
  private mergeWord(word: string): number[] {
    const n = word.length;
    const start = Int32Array.from({ length: n }, (_, i) => i);
    const len = new Int32Array(n).fill(1);
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));

    const queue = new MergeQueue(lowerRankFirst);
    mergeAdjacent(queue, len, prev, next, (left, right) =>
      this.ranks.get(word.slice(start[left], start[left] + len[left]) + ' ' + word.slice(start[right], start[right] + len[right])));

    const ids: number[] = [];
    for (let i = 0; i !== -1 && n > 0; i = next[i]) {
      const symbol = word.slice(start[i], start[i] + len[i]);
      const id = this.vocab.ids.get(symbol);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // llama.cpp then looks up each byte of the symbol's UTF-8 as a one-byte token and
      // drops those it cannot find; only ASCII bytes can be such tokens in a JS string.
      for (const b of encoder.encode(symbol)) {
        const byteId = b < 0x80 ? this.vocab.ids.get(String.fromCharCode(b)) : undefined;
        if (byteId !== undefined) ids.push(byteId);
      }
    }
    return ids;
  }
}
