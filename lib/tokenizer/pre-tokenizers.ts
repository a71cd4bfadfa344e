/**
 * BPE pre-tokenizers: how text is cut into words before merging, keyed by
 * tokenizer.ggml.pre. Each entry lists regexes that llama.cpp's unicode_regex_split applies
 * in turn: every regex splits each current word into its matches and the gaps between them.
 * Adding a pre-tokenizer is adding an entry (with a test against llama.cpp's vectors).
 *
 * A name that is not here is refused (E_UNSUPPORTED, in BpeModel), as llama.cpp refuses to load
 * it ("unknown pre-tokenizer type"): a wrong split gives plausible but different token ids, and
 * a model fed ids it was not trained on degrades silently. A missing key means 'default'.
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

/**
 * The Llama 3 / Qwen2 family of tokenizer.json regexes, with `\p{N}{1,3}` (Llama 3: numbers in
 * groups of up to three digits) or `\p{N}` (Qwen2: one digit per word). Hugging Face writes the
 * contractions as (?i:'s|...); llama.cpp spells the case-insensitivity out, and so do we.
 * A letter run takes one leading non-letter, non-digit character (" word", "'word", "_word");
 * punctuation runs keep their trailing newlines; a whitespace run before a non-space gives that
 * last space to the next word.
 */
const llama3Style = (numbers: string) =>
  `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${numbers}` +
  `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${WS}*[\\r\\n]+|${WS}+(?!${NOT_WS})|${WS}+`;

interface Spec {
  readonly patterns: readonly string[];
  /** llama.cpp's ignore_merges: a word that is itself a vocabulary token is emitted whole. */
  readonly ignoreMerges?: boolean;
  /** llama.cpp's add_bos default for this pre-tokenizer (tokenizer.ggml.add_bos_token overrides it). */
  readonly addBos?: boolean;
}

// Llama 3's tokenizer.json sets ignore_merges, and llama.cpp follows it for this family.
const LLAMA3: Spec = { patterns: [llama3Style('\\p{N}{1,3}')], ignoreMerges: true, addBos: true };
const QWEN2: Spec = { patterns: [llama3Style('\\p{N}')] };
// StarCoder's tokenizer (which SmolLM reuses): every digit its own word, then GPT-2.
const STARCODER: Spec = { patterns: ['\\p{N}', GPT2] };

/** tokenizer.ggml.pre -> spec; several names share one, as in llama.cpp's llama_vocab::load. */
const SPECS: Record<string, Spec> = {
  'gpt-2': { patterns: [GPT2] },
  // llama.cpp's fallback for BPE vocabularies without a pre key: punctuation runs, then
  // GPT-2, then digit runs, then groups of three ASCII digits.
  default: { patterns: ['[\\p{P}$+<=>^~|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'] },
  'llama3': LLAMA3,
  'llama-v3': LLAMA3,
  'llama-bpe': LLAMA3,
  'qwen2': QWEN2,
  'deepseek-r1-qwen': QWEN2,
  'smollm': STARCODER,
  'starcoder': STARCODER,
  'refact': STARCODER,
};

export const PRE_TOKENIZER_NAMES: readonly string[] = Object.keys(SPECS);

export interface PreTokenizer {
  readonly regexes: readonly RegExp[];
  readonly ignoreMerges: boolean;
  readonly addBos: boolean;
}

/** The pre-tokenizer for a tokenizer.ggml.pre value, or undefined for a name we do not know. */
export function preTokenizer(name: string): PreTokenizer | undefined {
  if (!Object.hasOwn(SPECS, name)) return undefined;
  const spec = SPECS[name];
  return {
    regexes: spec.patterns.map((p) => new RegExp(p, 'gu')),
    ignoreMerges: spec.ignoreMerges ?? false,
    addBos: spec.addBos ?? false,
  };
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
