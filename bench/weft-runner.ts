/** weft under the bench: concurrent generate() calls share engine steps. */
import { loadModel, type KvType, type Model, type ModelInfo, type NativeProfile } from '../lib/index.js';
import type { Runner } from './measure.js';

export class WeftRunner implements Runner {
  private constructor(private readonly model: Model) {}

  static async load(file: string, threads: number, kvCacheTokens: number, useMmap: boolean, kvType: KvType = 'f16'): Promise<WeftRunner> {
    return new WeftRunner(await loadModel(file, { threads, kvCacheTokens, kvType, useMmap }));
  }

  get info(): ModelInfo {
    return this.model.info;
  }

  async prefill(ids: number[]): Promise<number> {
    const t0 = performance.now();
    await this.model.evaluate(ids, { allLogits: false });
    return (performance.now() - t0) / 1000;
  }

  async decode(prompts: number[][], maxTokens: number): Promise<number[][]> {
    return Promise.all(prompts.map(async (p) => {
      const stamps: number[] = [];
      const gen = this.model.generate(p, { temperature: 0, maxTokens });
      for await (const _ of gen) stamps.push(performance.now());
      await gen.result;
      return stamps;
    }));
  }

  /**
   * n trajectories sampled (temperature 0.8, seeds seed + i) over one prompt, whose KV blocks they
   * share: batched-bench -pps's setup. Returns each trajectory's token times, as decode() does.
   */
  async fork(prompt: number[], n: number, maxTokens: number, seed: number): Promise<number[][]> {
    const stamps: number[][] = Array.from({ length: n }, () => []);
    const gen = this.model.generate(prompt, { n, maxTokens, temperature: 0.8, seed });
    for await (const ev of gen) stamps[ev.trajectory].push(performance.now());
    await gen.result;
    return stamps;
  }

  /** Per-phase forward time since the last call (see Model.profile). */
  profile(): Promise<NativeProfile> {
    return this.model.profile();
  }

  dispose(): Promise<void> {
    return this.model.dispose();
  }
}
