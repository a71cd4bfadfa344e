/**
 * Tokenizers built from a GGUF file's tokenizer.ggml.* metadata, reproducing llama.cpp's
 * token ids: 'llama' vocabularies use SentencePiece-style BPE (SPM), 'gpt2' ones byte-level
 * BPE with a pre-tokenizer named by tokenizer.ggml.pre.
 */
import type { GgufMetadata } from '../gguf/types.js';
import { VocabTokenizer } from './tokenizer.js';
import type { Tokenizer } from './types.js';
import { readVocab } from './vocab.js';

export type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './types.js';

/**
 * Throws WeftError E_UNSUPPORTED for a tokenizer model or pre-tokenizer we do not implement,
 * E_MODEL_FORMAT for missing or inconsistent tokenizer keys.
 */
export function createTokenizer(meta: GgufMetadata): Tokenizer {
  return new VocabTokenizer(readVocab(meta));
}
