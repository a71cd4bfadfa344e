/**
 * BPE pre-tokenizers: how text is cut into words before merging, keyed by
 * tokenizer.ggml.pre. Each entry lists regexes that llama.cpp's unicode_regex_split applies
 * in turn: every regex splits each current word into its matches and the gaps between them.
 * Adding a pre-tokenizer is adding an entry (with a test against llama.cpp's vectors).
 */

// llama.cpp's \s is the Unicode White_Space property (its own tables); JavaScript's \s
// differs (it includes U+FEFF and lacks U+0085), so the property is spelled out.
const WS = '\\p{White_Space}';
const NOT_WS = '\\P{White_Space}';

/**
 * GPT-2's regex. The contractions are case-sensitive, as in llama.cpp's hand-written
 * matcher for it ("'S" is not split off); llama.cpp's matcher also ends with \s+, which
 * the original regex leaves implicit.
 */
const GPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${WS}+(?!${NOT_WS})|${WS}+`;

const PATTERNS: Record<string, readonly string[]> = {
  'gpt-2': [GPT2],
  // llama.cpp's fallback for BPE vocabularies without a (known) pre key: punctuation runs,
  // then GPT-2, then digit runs, then groups of three ASCII digits.
  default: ['[\\p{P}$+<=>^~|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
};

export const PRE_TOKENIZER_NAMES: readonly string[] = Object.keys(PATTERNS);

/** The compiled regexes of a pre-tokenizer, or undefined for a name we do not know. */
export function preTokenizer(name: string): readonly RegExp[] | undefined {
  return Object.hasOwn(PATTERNS, name) ? PATTERNS[name].map((p) => new RegExp(p, 'gu')) : undefined;
}

/** Cuts `text` into words: matches and the gaps between them, in order, none empty. */
export function preTokenize(text: string, regexes: readonly RegExp[]): string[] {
  let words = [text];
  for (const re of regexes) {
    const next: string[] = [];
    for (const word of words) {
      let from = 0;
      re.lastIndex = 0;
      for (let m = re.exec(word); m !== null; m = re.exec(word)) {
        if (m[0].length === 0) {
          re.lastIndex++;  // no pattern above matches empty; this only keeps the loop finite
          continue;
        }
        if (m.index > from) next.push(word.slice(from, m.index));
        next.push(m[0]);
        from = m.index + m[0].length;
      }
      if (from < word.length) next.push(word.slice(from));
    }
    words = next;
  }
  return words;
}
