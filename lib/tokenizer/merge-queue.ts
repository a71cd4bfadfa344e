/**
 * The agenda of both merge loops (SPM and BPE): a binary heap of candidate merges of two
 * adjacent symbols. `before(a, b)` says a is merged first; both tokenizers break ties by
 * the leftmost position, so the order is total and the result deterministic.
 */
export interface Candidate {
  left: number;   // symbol index of the left part
  right: number;  // symbol index of the right part
  size: number;   // combined length when pushed: a stale entry no longer matches it
  key: number;    // score (SPM, higher first) or rank (BPE, lower first)
}

export class MergeQueue {
  private readonly heap: Candidate[] = [];
  constructor(private readonly before: (a: Candidate, b: Candidate) => boolean) {}

  get size(): number {
    return this.heap.length;
  }

  push(c: Candidate): void {
    const h = this.heap;
    let i = h.push(c) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(c, h[parent])) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = c;
  }

  pop(): Candidate | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const child = r < h.length && this.before(h[r], h[l]) ? r : l;
        if (!this.before(h[child], last)) break;
        h[i] = h[child];
        i = child;
      }
      h[i] = last;
    }
    return top;
  }
}

/**
 * The merge loop both tokenizers share. Symbols form a doubly linked chain (prev/next, -1 at the
 * ends) with lengths in `len`; a merge grows the left symbol, sets the right one's length to 0
 * and unlinks it. `key(left, right)` is the pair's score or rank, or undefined when the pair is
 * not in the vocabulary. Runs until no mergeable pair remains.
 */
export function mergeAdjacent(
  queue: MergeQueue,
  len: { [i: number]: number; readonly length: number },
  prev: Int32Array,
  next: Int32Array,
  key: (left: number, right: number) => number | undefined,
): void {
  const tryAdd = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const k = key(left, right);
    if (k !== undefined) queue.push({ left, right, size: len[left] + len[right], key: k });
  };
  for (let i = 1; i < len.length; i++) tryAdd(i - 1, i);

  for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
    const { left, right } = c;
    // Stale: one side was merged into something else since this pair was queued (llama.cpp
    // compares the pair's text; with contiguous symbols the combined length is equivalent).
    if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== c.size) continue;
    len[left] += len[right];
    len[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    tryAdd(prev[left], left);
    tryAdd(left, next[left]);
  }
}
