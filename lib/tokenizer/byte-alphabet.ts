/**
 * GPT-2's byte-level alphabet: every byte 0..255 gets a printable code point, so a byte
 * string can live in the vocabulary as ordinary text. Printable Latin-1 bytes map to
 * themselves; the other 68 take U+0100.. in byte order (so ' ' 0x20 -> 'Ġ' U+0120).
 */

/** [256] code point standing for each byte. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** Alphabet code point -> byte; absent for code points outside the alphabet. */
export const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(
  BYTE_TO_CHAR.map((ch, byte) => [ch.codePointAt(0)!, byte]),
);

function buildByteToChar(): string[] {
  const out = new Array<string>(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(printable(b) ? b : 256 + n++);
  return out;
}

/** Bytes (a word's UTF-8) written as alphabet characters, one per byte. */
export function byteEncode(utf8: Uint8Array): string {
  let s = '';
  for (let i = 0; i < utf8.length; i++) s += BYTE_TO_CHAR[utf8[i]];
  return s;
}

const encoder = new TextEncoder();

/**
 * A vocabulary string back to the bytes it stands for (llama.cpp's llama_decode_text). A code
 * point outside the alphabet cannot come from a GPT-2 style converter; llama.cpp then writes
 * "[UNK_BYTE_0x<its utf-8 hex><the whole token>]", and so do we, to print the same text.
 */
export function byteDecode(token: string): Uint8Array {
  const out: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
    if (b !== undefined) {
      out.push(b);
      continue;
    }
    const hex = Array.from(encoder.encode(ch), (x) => x.toString(16).padStart(2, '0')).join('');
    out.push(...encoder.encode(`[UNK_BYTE_0x${hex}${token}]`));
  }
  return Uint8Array.from(out);
}
