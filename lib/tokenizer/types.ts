/** The public tokenizer API (lib/tokenizer/index.ts re-exports it). */

export interface EncodeOptions {
  /** Put BOS first. Default: the model's tokenizer.ggml.add_bos_token (SPM without the key: true, as llama.cpp). */
  addBos?: boolean;
  /** Put EOS last. Default: the model's tokenizer.ggml.add_eos_token (false without the key). */
  addEos?: boolean;
  /**
   * Let text spell control tokens ("<s>", "<|im_end|>") as single ids. Default false: such
   * text is tokenized as ordinary text. User-defined tokens are split out either way.
   */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Render control and unknown tokens as their text. Default false: they render as nothing. */
  special?: boolean;
}

export interface Tokenizer {
  readonly kind: 'spm' | 'bpe';
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  /** Whether encode() puts BOS first / EOS last when not told (the model's add_bos/add_eos). */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** The tokens that end generation (see isEog), ascending. */
  readonly eogIds: readonly number[];
  encode(text: string, opts?: EncodeOptions): Int32Array;
  /**
   * The tokens' pieces concatenated (llama.cpp's token_to_piece), bytes that are not valid
   * UTF-8 as U+FFFD. An SPM continuation keeps the space its first token carries.
   */
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  /** The raw bytes this token contributes to output text (none for control tokens). */
  tokenBytes(id: number): Uint8Array;
  /** Whether generation ends at this token: eos, eot, eom and the end tokens llama.cpp knows by name. */
  isEog(id: number): boolean;
  createStreamDecoder(opts?: DecodeOptions): StreamDecoder;
}

/** Turns generated tokens into text as they arrive. */
export interface StreamDecoder {
  /**
   * The text that `id` completes. A UTF-8 sequence split across tokens is held back until
   * its last byte arrives, so no U+FFFD or lone surrogate is ever emitted for valid text.
   */
  push(id: number): string;
  /** Whatever is held back, invalid bytes as U+FFFD; the decoder can then be reused. */
  flush(): string;
}
