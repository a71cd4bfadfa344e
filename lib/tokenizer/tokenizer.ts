/**
 * A tokenizer over one vocabulary: special-token splitting, then the SPM or BPE model on
 * the text in between, and decoding through each token's piece (its bytes in output text).
 */
import { WeftError } from '../errors.js';
import { byteDecode } from './byte-alphabet.js';
import { BpeModel } from './bpe.js';
import { partitionSpecial } from './special-tokens.js';
import { SpmModel } from './spm.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './types.js';
import { Attr, type Vocab } from './vocab.js';

const encoder = new TextEncoder();
// ignoreBOM: a U+FEFF that the tokens spell is text, not a byte-order mark to drop.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const EMPTY = new Uint8Array(0);
// Lone surrogates have no UTF-8; TextEncoder would write U+FFFD for them, so the tokenizer does too.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function optBool(opts: object | undefined, name: string): boolean | undefined {
  const v = (opts as Record<string, unknown> | undefined)?.[name];
  if (v !== undefined && typeof v !== 'boolean') throw new WeftError('E_INVALID_ARGUMENT', `${name} must be a boolean`);
  return v;
}

export class VocabTokenizer implements Tokenizer {
  readonly kind: 'spm' | 'bpe';
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly eogIds: readonly number[];
  private readonly spm: SpmModel | undefined;
  private readonly bpe: BpeModel | undefined;
  /** [n_vocab] each token's piece as rendered with special = true, built on first use. */
  private readonly pieces: (Uint8Array | undefined)[];

  constructor(private readonly vocab: Vocab) {
    this.kind = vocab.model === 'llama' ? 'spm' : 'bpe';
    this.vocabSize = vocab.tokens.length;
    this.bos = vocab.bos;
    this.eos = vocab.eos;
    this.addBos = vocab.addBos;
    this.addEos = vocab.addEos;
    this.eogIds = Object.freeze([...vocab.eog].sort((a, b) => a - b));
    this.spm = this.kind === 'spm' ? new SpmModel(vocab) : undefined;
    this.bpe = this.kind === 'bpe' ? new BpeModel(vocab) : undefined;
    this.pieces = new Array<Uint8Array | undefined>(this.vocabSize);
  }

  encode(text: string, opts?: EncodeOptions): Int32Array {
    if (typeof text !== 'string') throw new WeftError('E_INVALID_ARGUMENT', 'text must be a string');
    const addBos = optBool(opts, 'addBos') ?? this.vocab.addBos;
    const addEos = optBool(opts, 'addEos') ?? this.vocab.addEos;
    const parseSpecial = optBool(opts, 'parseSpecial') ?? false;
    if (addBos && this.bos === undefined) throw new WeftError('E_INVALID_ARGUMENT', 'addBos: this vocabulary has no BOS token');
    if (addEos && this.eos === undefined) throw new WeftError('E_INVALID_ARGUMENT', 'addEos: this vocabulary has no EOS token');

    const out: number[] = [];
    if (addBos) out.push(this.bos!);
    const fragments = partitionSpecial(text.replace(LONE_SURROGATE, '\uFFFD'), this.vocab, parseSpecial);
    if (this.spm) {
      // SPM puts a space before the text and after every special token (llama.cpp's
      // is_prev_special), then writes every space as U+2581.
      let prevSpecial = true;
      for (const f of fragments) {
        if (typeof f === 'number') {
          out.push(f);
          prevSpecial = true;
          continue;
        }
        const spaced = this.vocab.addSpacePrefix && prevSpecial ? ' ' + f : f;
        this.spm.tokenize(spaced.replaceAll(' ', '\u2581'), out);
        prevSpecial = false;
      }
    } else {
      for (const f of fragments) {
        if (typeof f === 'number') out.push(f);
        else this.bpe!.tokenize(f, out);
      }
    }
    if (addEos) out.push(this.eos!);
    return Int32Array.from(out);
  }

  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    const special = optBool(opts, 'special') ?? false;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) parts.push(this.piece(ids[i], special));
    return decoder.decode(Buffer.concat(parts));
  }

  tokenBytes(id: number): Uint8Array {
    return this.piece(id, false).slice();
  }

  isEog(id: number): boolean {
    return this.vocab.eog.has(id);
  }

  createStreamDecoder(opts?: DecodeOptions): StreamDecoder {
    const special = optBool(opts, 'special') ?? false;
    const stream = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push: (id) => stream.decode(this.piece(id, special), { stream: true }),
      flush: () => stream.decode(),
    };
  }

  /** llama.cpp's token_to_piece: what the token prints as. */
  private piece(id: number, special: boolean): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new WeftError('E_INVALID_ARGUMENT', `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    if (!special && this.vocab.attrs[id] & (Attr.CONTROL | Attr.UNKNOWN)) return EMPTY;
    return (this.pieces[id] ??= this.render(id));
  }

  private render(id: number): Uint8Array {
    const attr = this.vocab.attrs[id];
    const text = this.vocab.tokens[id];
    if (attr & (Attr.UNKNOWN | Attr.CONTROL | Attr.USER_DEFINED)) return encoder.encode(text);
    if (attr & Attr.NORMAL) return this.spm ? encoder.encode(text.replaceAll('\u2581', ' ')) : byteDecode(text);
    // "<0xNN>"; llama.cpp parses the two hex digits with strtol, so junk reads as byte 0.
    if (attr & Attr.BYTE) return Uint8Array.of(parseInt(text.slice(3, 5), 16) || 0);
    return EMPTY;  // unused and undefined tokens print nothing
  }
}
