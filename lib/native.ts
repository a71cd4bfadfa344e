/**
 * The addon, loaded once: a prebuilt binary under prebuilds/ when one matches this platform,
 * else the one `npm ci` built from source into build/Release (node-gyp-build looks in both).
 * Everything crossing the boundary is a typed array or a plain number.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { GgufMetadata } from './gguf/types.js';
import { toWeftError } from './errors.js';

/** One engine step (DESIGN.md, "one step = one crossing"). */
export interface StepBatch {
  tokens: Int32Array;       // [n] token ids
  positions: Int32Array;    // [n] position of each token in its sequence
  seqIdx: Int32Array;       // [n] row of blockTables
  blockTables: Int32Array;  // [nSeqs * maxBlocks]
  maxBlocks: number;
  outIdx: Int32Array;       // [nOut] tokens whose logits are sampled
  /** [nOut * 6]: temperature, topK, topP, minP, seed, counter (see SAMPLING_FIELDS). */
  sampling: Float64Array;
  topN?: number;            // top log-probs per output row
  wantLogits?: Uint8Array;  // [nOut] rows whose raw logits come back
  copies?: Int32Array;      // [k * 2] (src, dst) block copies done before the forward pass
  /**
   * Steps to run in this one crossing (default 1, at most 64). After the first, token i of each
   * step is the token sampled for row i in the step before, one position further, with the
   * sampling counter one higher; so every token must be a sampled row of its own (outIdx[i] = i)
   * and no logits are wanted. The block tables must already cover every position written.
   */
  runAhead?: number;
}
export const SAMPLING_FIELDS = 6;

/** Per-row arrays hold `steps` blocks of nOut rows, step by step. */
export interface StepResult {
  steps: number;
  tokens: Int32Array;       // [steps * nOut] sampled token
  logprobs: Float32Array;   // [steps * nOut] its log-prob under the model's distribution
  confidences: Float32Array; // [steps * nOut] DeepConf token confidence
  topIds?: Int32Array;      // [steps * nOut * topN]
  topLogprobs?: Float32Array;
  logits?: Float32Array;    // [rows with wantLogits][nVocab]
  forwardMs: number;
  sampleMs: number;
}

export interface NativeInfo {
  arch: string;
  vocabSize: number;
  embeddingLength: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  feedForwardLength: number;
  contextLength: number;
  ropeTheta: number;
  rmsEps: number;
  tiedOutput: boolean;
  fileBytes: number;
  /** false: the file was read into memory (LoadOptions.useMmap). */
  useMmap: boolean;
  tensorBytes: number;
  tensorTypes: Record<string, { count: number; bytes: number }>;
  kvCache: { blocks: number; blockSize: number; type: KvType; bytes: number };
  threads: number;
  kernels: string;
}

/** Forward-pass wall time per phase (ms) summed over the steps since the last profile() call. */
export interface NativeProfile {
  steps: number;
  tokens: number;
  ms: Record<string, number>;
}

export interface NativeModel {
  info(): NativeInfo;
  metadata(): GgufMetadata;
  step(batch: StepBatch): Promise<StepResult>;
  /** Takes (and resets) the profile; E_BUSY while a step is in flight. */
  profile(): NativeProfile;
  /**
   * Ends the run-ahead step call in flight after the step it is computing (its result then has
   * fewer `steps`); no effect on a call made later.
   */
  interrupt(): void;
  dispose(): void;
}

/** KV cache storage: f16, f32, or ggml's Q8_0 blocks (53 % of f16's bytes; head sizes that are multiples of 32). */
export type KvType = 'f16' | 'f32' | 'q8_0';
export const KV_TYPES: readonly KvType[] = ['f16', 'f32', 'q8_0'];

export interface NativeLoadOptions {
  threads?: number;
  kvCacheTokens?: number;
  blockSize?: number;
  kvType?: KvType;
  useMmap?: boolean;
}

export interface GgufTensorInfo { name: string; type: string; shape: number[]; offset: number; bytes: number }
export interface GgufFileInfo {
  version: number;
  alignment: number;
  fileBytes: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
}

interface Addon {
  loadModel(path: string, options: NativeLoadOptions): Promise<NativeModel>;
  readGguf(path: string): Promise<GgufFileInfo>;
  quantize(typeId: number, values: Float32Array, rowLength: number): Promise<Uint8Array>;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const addon: Addon = (require('node-gyp-build') as (dir: string) => Addon)(root);

export async function loadNativeModel(file: string, options: NativeLoadOptions): Promise<NativeModel> {
  try {
    return await addon.loadModel(file, options);
  } catch (e) {
    throw toWeftError(e);
  }
}

/** Parses a GGUF file's header, metadata and tensor table (validated; nothing is loaded). */
export async function readGguf(file: string): Promise<GgufFileInfo> {
  try {
    return await addon.readGguf(file);
  } catch (e) {
    throw toWeftError(e);
  }
}

/** Just the metadata of a GGUF file, e.g. a vocab-only file for the tokenizer. */
export async function readGgufMetadata(file: string): Promise<GgufMetadata> {
  return (await readGguf(file)).metadata;
}

/** Rows of f32 values encoded as ggml type `typeId` by the core's reference quantizer. */
export async function quantize(typeId: number, values: Float32Array, rowLength: number): Promise<Uint8Array> {
  try {
    return await addon.quantize(typeId, values, rowLength);
  } catch (e) {
    throw toWeftError(e);
  }
}
