/**
 * The free block ids, handed out lowest first. A fixed order makes every allocation sequence
 * reproducible (tests name exact ids) and keeps the pool's low end busy, so a lightly used
 * cache touches few pages.
 */
export class FreeIds {
  private readonly heap: number[];  // binary min-heap
  private readonly isFree: Uint8Array;

  constructor(n: number) {
    this.heap = Array.from({ length: n }, (_, i) => i);  // ascending: already a heap
    this.isFree = new Uint8Array(n).fill(1);
  }

  get size(): number {
    return this.heap.length;
  }

  has(id: number): boolean {
    return this.isFree[id] === 1;
  }

  /** Every free id, in no particular order (for invariant checks). */
  ids(): readonly number[] {
    return this.heap;
  }

  push(id: number): void {
    if (this.isFree[id]) throw new Error(`block ${id} is already free`);
    this.isFree[id] = 1;
    const h = this.heap;
    let i = h.push(id) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p] <= id) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = id;
  }

  /** The lowest free id; the caller checks `size` first. */
  pop(): number {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i, v = last;
        if (l < h.length && h[l] < v) { m = l; v = h[l]; }
        if (r < h.length && h[r] < v) m = r;
        if (m === i) break;
        h[i] = h[m];
        i = m;
      }
      h[i] = last;
    }
    this.isFree[top] = 0;
    return top;
  }
}
