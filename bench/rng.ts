/**
 * Seeded Gaussian noise for random-weight models: mulberry32 uniforms through Box-Muller.
 * Fast enough for 135 M weights in a couple of seconds; the same seed gives the same floats, so
 * the F32, F16 and Q8_0 files of one shape hold the same weights up to their conversion.
 */
export class Gaussian {
  private s: number;
  private spare = NaN;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform in (0, 1). */
  private uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  }

  next(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = NaN;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }

  /** out[i] = mean + std * N(0, 1). */
  fill(out: Float32Array, std: number, mean = 0): void {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.next();
  }
}
