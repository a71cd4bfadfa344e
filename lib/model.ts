import { Engine, type EngineStats } from './scheduler/engine.js';
import { BlockManager } from './kv/block-manager.js';
import { WeftError, invalid } from './errors.js';
import { Generation, type GenerationResult, type TokenEvent } from './generation.js';
import { KV_TYPES, loadNativeModel, type KvType, type NativeInfo, type NativeModel, type NativeProfile } from './native.js';
import { createTokenizer, type Tokenizer } from './tokenizer/index.js';
import { intOption, samplingSettings, type SamplingOptions } from './options.js';
import type { GgufMetadata } from './gguf/types.js';
import { ChatTemplate, type ChatMessage } from './chat/template.js';
import { chatPrompt, renderChat, type ChatOptions } from './chat/prompt.js';

export interface LoadOptions {
  /** Compute threads. Default: the machine's physical cores. */
  threads?: number;
  /** KV cache capacity in tokens, over all sequences. Default: min(context length, 8192). */
  kvCacheTokens?: number;
  /** Tokens per KV block. Default 16. */
  blockSize?: number;
  /**
   * KV cache storage. Default 'f16'. 'q8_0' (llama.cpp's --cache-type-k/v q8_0) holds about
   * twice the tokens in the same memory and reads half the bytes per attended position; it
   * needs a head size that is a multiple of 32 and moves the logits slightly.
   */
  kvType?: KvType;
  /**
   * Token budget of one engine step: a decode token for every generating sequence plus prompt
   * chunks up to this many tokens in all. Default 512.
   */
  stepTokens?: number;
  /**
   * Prefill prompts longer than what a step has left in chunks, so that a long prompt delays
   * generating sequences by one chunk at most. Default true; false prefills each prompt in one
   * step (for comparison).
   */
  chunkedPrefill?: boolean;
  /**
   * Decode steps one native call may run when every scheduled sequence is generating and no
   * request waits (1..64). Default 8. The tokens are those of single steps; a trajectory that
   * ends inside such a call drops the tokens computed after its end (at most runAhead - 1); a
   * call is kept to about 30 ms, and a request or abort arriving during it ends it after the
   * current step. 1 calls native once per step.
   */
  runAhead?: number;
  /**
   * Map the file (default true, as llama.cpp): loading reads nothing until it is used, and
   * processes that load one file share its pages. false reads the whole file into memory at
   * load, on 2 MiB pages where the kernel's transparent huge pages allow (mode "madvise" or
   * "always"): decode, which streams every weight once per token, measured a median 4% faster for it.
   */
  useMmap?: boolean;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most. Default 256. */
  maxTokens?: number;
  /** Generation ends before the first occurrence of any of these strings. */
  stop?: string | string[];
  /** Top log-probs to report with each token (0..20). Default 0. */
  topLogprobs?: number;
  /** Prepend BOS to a string prompt. Default: the model's own setting. */
  addBos?: boolean;
  /**
   * Let a string prompt spell special tokens ("<|im_start|>") as their single ids. Default true,
   * as llama.cpp's tools and server tokenize prompts.
   */
  parseSpecial?: boolean;
  /**
   * Trajectories to sample from the prompt (1..1024). The prompt is computed once and its KV
   * blocks are shared; trajectory i samples with seed + i, so it gives the same tokens as a
   * generation of its own with that seed. Default 1.
   */
  n?: number;
  /** Requests with higher priority are admitted first and preempted last. Default 0. */
  priority?: number;
  signal?: AbortSignal;
}

/** generate() for a conversation: the prompt is the chat template rendered over `messages`. */
export interface ChatRequest extends Omit<GenerateOptions, 'addBos' | 'parseSpecial'>, ChatOptions {
  messages: ChatMessage[];
}

export interface ModelInfo extends Omit<NativeInfo, 'kvCache'> {
  name: string | undefined;
  tokenizer: 'spm' | 'bpe';
  /** The model's tokenizer.chat_template, if it has one. */
  chatTemplate: string | undefined;
  kvCache: NativeInfo['kvCache'] & { tokens: number };
}

export type { GenerationResult, TokenEvent, ChatMessage, ChatOptions };

/** A loaded model. Concurrent generate()/evaluate() calls share engine steps. */
export class Model {
  readonly info: ModelInfo;
  readonly tokenizer: Tokenizer;
  private readonly engine: Engine;
  private native: NativeModel | null;
  private disposing: Promise<void> | null = null;
  private modelTemplate: ChatTemplate | undefined;  // parsed on first use

  /** @internal use loadModel() */
  constructor(native: NativeModel, meta: GgufMetadata, engine: { stepTokens: number; chunkedPrefill: boolean; runAhead: number }) {
    this.native = native;
    const ni = native.info();
    this.tokenizer = createTokenizer(meta);
    const name = meta['general.name'];
    const chatTemplate = meta['tokenizer.chat_template'];
    this.info = {
      ...ni,
      name: typeof name === 'string' ? name : undefined,
      tokenizer: this.tokenizer.kind,
      chatTemplate: typeof chatTemplate === 'string' && chatTemplate.length > 0 ? chatTemplate : undefined,
      kvCache: { ...ni.kvCache, tokens: ni.kvCache.blocks * ni.kvCache.blockSize },
    };
    const blocks = new BlockManager(ni.kvCache.blocks, ni.kvCache.blockSize);
    this.engine = new Engine(native, blocks, { ...engine, isEog: (t) => this.tokenizer.isEog(t) });
  }

  tokenize(text: string, opts: { addBos?: boolean; parseSpecial?: boolean } = {}): Int32Array {
    this.live();
    if (typeof text !== 'string') throw invalid('tokenize() takes a string');
    return this.tokenizer.encode(text, opts);
  }

  /** Text of the tokens; control tokens ("<|im_end|>") are left out unless `special` is true. */
  detokenize(ids: ArrayLike<number>, opts: { special?: boolean } = {}): string {
    this.live();
    return this.tokenizer.decode(this.checkIds(ids, 'detokenize'), opts);
  }

  /** The prompt text the chat template gives for `messages` (what chat() tokenizes). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatOptions = {}): string {
    this.live();
    return renderChat(this.tokenizer, this.chatTemplate(opts), messages, opts);
  }

  /** Answers a conversation: generate() over the chat template's prompt for `messages`. */
  chat(messages: ChatMessage[], opts: Omit<ChatRequest, 'messages'> = {}): Generation {
    return this.generate({ ...opts, messages });
  }

  /**
   * Logits for a token sequence evaluated from an empty context: [1][vocab] for the last
   * position, or [n][vocab] for every position with allLogits.
   */
  async evaluate(ids: ArrayLike<number>, opts: { allLogits?: boolean; signal?: AbortSignal } = {}): Promise<Float32Array> {
    this.live();
    const prompt = this.checkIds(ids, 'evaluate');
    if (prompt.length === 0) throw invalid('evaluate() needs at least one token');
    const V = this.info.vocabSize;
    const out = new Float32Array((opts.allLogits ? prompt.length : 1) * V);
    await this.engine.submit({
      prompt, maxTokens: 0, topN: 0,
      sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, seed: 0 },
      logits: opts.allLogits ? 'all' : 'last',
      onLogits: (rows, first) => out.set(rows, (opts.allLogits ? first : 0) * V),
      signal: opts.signal,
    });
    return out;
  }

  /** Starts generating from a prompt (text or token ids) or a conversation; see Generation. */
  generate(prompt: string | ArrayLike<number>, opts?: GenerateOptions): Generation;
  generate(request: ChatRequest): Generation;
  generate(prompt: string | ArrayLike<number> | ChatRequest, options: GenerateOptions = {}): Generation {
    this.live();
    const chat = isChatRequest(prompt) ? prompt : undefined;
    const opts: GenerateOptions = chat ?? options;
    const ids = chat
      ? chatPrompt(this.tokenizer, this.chatTemplate(chat), chat.messages, chat).ids
      : typeof prompt === 'string'
        ? this.tokenizer.encode(prompt, { addBos: opts.addBos, parseSpecial: opts.parseSpecial ?? true })
        : this.checkIds(prompt as ArrayLike<number>, 'generate');
    if (ids.length === 0) throw invalid('the prompt is empty (no tokens)');
    const maxTokens = intOption('maxTokens', opts.maxTokens, 1, 1 << 24, 256);
    const topN = intOption('topLogprobs', opts.topLogprobs, 0, 20, 0);
    const sampling = samplingSettings(opts, this.info.vocabSize);
    const n = intOption('n', opts.n, 1, 1024, 1);
    const priority = intOption('priority', opts.priority, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0);
    if (sampling.seed > Number.MAX_SAFE_INTEGER - (n - 1)) throw invalid(`seed + n - 1 must be a safe integer (trajectory i uses seed + i)`);
    const stops = opts.stop === undefined ? [] : Array.isArray(opts.stop) ? opts.stop : [opts.stop];
    if (stops.some((s) => typeof s !== 'string' || s.length === 0)) throw invalid('stop strings must be non-empty strings');

    return new Generation(() => this.tokenizer.createStreamDecoder(), stops, n, ids.length, opts.signal, (gen) =>
      this.engine.submit({
        prompt: ids, maxTokens, n, priority, topN, sampling, logits: 'none', signal: opts.signal,
        onToken: (trajectory, t) => gen.push(trajectory, {
          token: t.token,
          logprob: t.logprob,
          confidence: t.confidence,
          topLogprobs: t.topIds ? Array.from(t.topIds, (token, i) => ({ token, logprob: t.topLogprobs![i] })) : undefined,
        }),
      }));
  }

  stats(): EngineStats {
    return this.engine.stats();
  }

  /**
   * Where the forward pass spends its time: wall ms per phase (norms, each matmul group,
   * attention, ...) summed over the steps since the last call, which it resets. Waits for the
   * step in flight, if any. For benchmarking (`npm run bench -- --profile`).
   */
  async profile(): Promise<NativeProfile> {
    this.live();
    return this.engine.profile();
  }

  /** Frees the model. Pending requests fail with E_DISPOSED. Idempotent. */
  dispose(): Promise<void> {
    this.disposing ??= this.engine.dispose().then(() => {
      this.native?.dispose();
      this.native = null;
    });
    return this.disposing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /** The template in the options, else the model's; a model without one cannot chat. */
  private chatTemplate(opts: ChatOptions): ChatTemplate {
    if (opts.chatTemplate !== undefined) return new ChatTemplate(opts.chatTemplate, 'options');
    if (this.info.chatTemplate === undefined) {
      throw invalid('this model has no chat template (tokenizer.chat_template); pass one as the chatTemplate option');
    }
    return (this.modelTemplate ??= new ChatTemplate(this.info.chatTemplate, 'model'));
  }

  private live(): void {
    if (this.disposing) throw new WeftError('E_DISPOSED', 'the model has been disposed');
  }

  private checkIds(ids: ArrayLike<number>, fn: string): Int32Array {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') throw invalid(`${fn}() takes an array of token ids`);
    const out = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || t >= this.info.vocabSize) {
        throw invalid(`token id ${String(t)} at index ${i} is outside the vocabulary [0, ${this.info.vocabSize})`);
      }
      out[i] = t;
    }
    return out;
  }
}

/** A chat request is an options object with messages; a token-id prompt is array-like instead. */
function isChatRequest(p: unknown): p is ChatRequest {
  return typeof p === 'object' && p !== null && !ArrayBuffer.isView(p) && !Array.isArray(p) && 'messages' in p;
}

/** Loads a GGUF model; the event loop stays free while it maps (or reads) and validates the file. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<Model> {
  if (typeof path !== 'string' || path.length === 0) throw invalid('loadModel() needs a file path');
  const threads = intOption('threads', opts.threads, 1, 256, 0);
  const blockSize = intOption('blockSize', opts.blockSize, 1, 4096, 16);
  const kvCacheTokens = intOption('kvCacheTokens', opts.kvCacheTokens, 1, 1 << 26, 0);
  const stepTokens = intOption('stepTokens', opts.stepTokens, 1, 1 << 16, 512);
  const runAhead = intOption('runAhead', opts.runAhead, 1, 64, 8);
  if (opts.chunkedPrefill !== undefined && typeof opts.chunkedPrefill !== 'boolean') throw invalid('chunkedPrefill must be a boolean');
  if (opts.kvType !== undefined && !KV_TYPES.includes(opts.kvType)) throw invalid(`kvType must be one of ${KV_TYPES.join(', ')}`);
  if (opts.useMmap !== undefined && typeof opts.useMmap !== 'boolean') throw invalid('useMmap must be a boolean');
  const native = await loadNativeModel(path, {
    threads: threads || undefined, blockSize, kvCacheTokens: kvCacheTokens || undefined, kvType: opts.kvType,
    useMmap: opts.useMmap,
  });
  try {
    return new Model(native, native.metadata(), { stepTokens, chunkedPrefill: opts.chunkedPrefill ?? true, runAhead });
  } catch (e) {
    native.dispose();
    throw e;
  }
}
