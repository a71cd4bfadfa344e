/**
 * Splitting special tokens out of text before the tokenizer sees it (llama.cpp's
 * tokenizer_st_partition). Each special token, longest first, is cut out of every text
 * fragment that is left, so a longer token wins over a shorter one it contains.
 */
import { Attr, type Vocab } from './vocab.js';

/** A piece of input: text still to tokenize, or a token id already decided. */
export type Fragment = string | number;

/**
 * Without parseSpecial, control and unknown tokens stay plain text ("<s>" is spelled with
 * ordinary tokens), but user-defined tokens are still split out: llama.cpp follows Hugging
 * Face tokenizers here, where added tokens always match.
 */
export function partitionSpecial(text: string, vocab: Vocab, parseSpecial: boolean): Fragment[] {
  let fragments: Fragment[] = text.length > 0 ? [text] : [];
  for (const id of vocab.specials) {
    if (!parseSpecial && vocab.attrs[id] & (Attr.CONTROL | Attr.UNKNOWN)) continue;
    const special = vocab.tokens[id];
    let next: Fragment[] | undefined;
    for (let f = 0; f < fragments.length; f++) {
      const frag = fragments[f];
      const at = typeof frag === 'string' ? frag.indexOf(special) : -1;
      if (typeof frag !== 'string' || at < 0) {
        next?.push(frag);
        continue;
      }
      next ??= fragments.slice(0, f);
      let from = 0;
      for (let m = at; m >= 0; m = frag.indexOf(special, from)) {
        if (m > from) next.push(frag.slice(from, m));
        next.push(id);
        from = m + special.length;
      }
      if (from < frag.length) next.push(frag.slice(from));
    }
    if (next) fragments = next;
  }
  return fragments;
}
