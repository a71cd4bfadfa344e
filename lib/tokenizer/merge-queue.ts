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
