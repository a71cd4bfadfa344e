/**
 * node-llama-cpp (llama.cpp's prebuilt CPU binaries from npm) under the same bench. One context
 * per sequence count, as llama.cpp sizes its KV cache for a fixed number of sequences;
 * concurrent sequence.evaluate() calls are batched into shared decode calls by node-llama-cpp.
 */
import { readFileSync } from 'node:fs';
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaModel, type Token } from 'node-llama-cpp';
import type { Runner } from './measure.js';

let llama: Promise<Llama> | null = null;

export interface KvOptions { type?: 'f16' | 'q8_0'; flashAttention?: boolean }

/** The CPU-only llama.cpp backend, loaded once; never builds from source. */
function backend(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
  return llama;
}

export async function llamaCppVersion(): Promise<string> {
  const l = await backend();
  const pkg = JSON.parse(readFileSync(new URL('node_modules/node-llama-cpp/package.json', import.meta.url), 'utf8')) as { version: string };
  return `node-llama-cpp ${pkg.version}, llama.cpp ${l.llamaCppRelease.release} (${l.buildType}, ${l.gpu || 'cpu'})`;
}

export class LlamaCppRunner implements Runner {
  private readonly contexts = new Map<number, LlamaContext>();

  private constructor(private readonly model: LlamaModel, private readonly threads: number, private readonly kv: KvOptions) {}

  /**
   * kv.type 'q8_0' is llama.cpp's --cache-type-k/v q8_0, which needs its flash attention for the
   * quantized V (so kv.flashAttention must be set with it); the default is an f16 cache without.
   */
  static async load(file: string, threads: number, useMmap: boolean, kv: KvOptions = {}): Promise<LlamaCppRunner> {
    if (kv.type === 'q8_0' && !kv.flashAttention) throw new Error("llama.cpp's q8_0 V cache needs flashAttention");
    const l = await backend();
    return new LlamaCppRunner(await l.loadModel({ modelPath: file, gpuLayers: 0, useMmap }), threads, kv);
  }

  // contextSize is per sequence in node-llama-cpp.
  private async context(sequences: number, contextSize: number): Promise<LlamaContext> {
    const key = sequences * 1e6 + contextSize;
    let ctx = this.contexts.get(key);
    if (!ctx) {
      for (const c of this.contexts.values()) await c.dispose();
      this.contexts.clear();
      ctx = await this.model.createContext({
        sequences, contextSize, batchSize: 512, threads: this.threads, flashAttention: this.kv.flashAttention ?? false,
        ...(this.kv.type === 'q8_0' ? { experimentalKvCacheKeyType: 'Q8_0', experimentalKvCacheValueType: 'Q8_0' } as const : {}),
      });
      this.contexts.set(key, ctx);
    }
    return ctx;
  }

  async prefill(ids: number[]): Promise<number> {
    const ctx = await this.context(1, Math.max(1024, ids.length));
    const seq = ctx.getSequence();
    try {
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(ids as Token[]);
      return (performance.now() - t0) / 1000;
    } finally {
      await seq.dispose();
    }
  }

  async decode(prompts: number[][], maxTokens: number): Promise<number[][]> {
    const longest = Math.max(...prompts.map((p) => p.length));
    const ctx = await this.context(prompts.length, Math.max(256, longest + maxTokens));
    const seqs = prompts.map(() => ctx.getSequence());
    try {
      return await Promise.all(prompts.map(async (p, i) => {
        const stamps: number[] = [];
        // evaluate() yields greedy tokens until the caller stops; it does not stop at EOS.
        for await (const _ of seqs[i].evaluate(p as Token[], { temperature: 0 })) {
          stamps.push(performance.now());
          if (stamps.length >= maxTokens) break;
        }
        return stamps;
      }));
    } finally {
      for (const s of seqs) await s.dispose();
    }
  }

  async dispose(): Promise<void> {
    for (const c of this.contexts.values()) await c.dispose();
    this.contexts.clear();
    await this.model.dispose();
  }
}
