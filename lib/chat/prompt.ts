/**
 * From a conversation to prompt tokens, as llama.cpp's server does it: render the chat template
 * with the vocabulary's BOS/EOS texts, then tokenize the text with special tokens parsed (the
 * template writes "<|im_start|>" meaning the control token) and the model's add_bos/add_eos.
 * A template that writes BOS itself would then give two; llama.cpp drops the leading BOS text
 * (and a trailing EOS text) of the rendered prompt in that case, and so do we.
 */
import type { Tokenizer } from '../tokenizer/index.js';
import type { ChatMessage, ChatTemplate } from './template.js';

export interface ChatOptions {
  /** A Jinja chat template to use instead of the model's tokenizer.chat_template. */
  chatTemplate?: string;
  /** End the prompt with the opening of the assistant's turn. Default true. */
  addGenerationPrompt?: boolean;
  /** More template variables, such as Qwen3's enable_thinking or a tools list. */
  templateVars?: Record<string, unknown>;
}

export interface ChatPrompt {
  /** The rendered template. */
  text: string;
  ids: Int32Array;
}

/** The text of a special token, or '' when the vocabulary has none. */
function specialText(tok: Tokenizer, id: number | undefined): string {
  return id === undefined ? '' : tok.decode([id], { special: true });
}

export function renderChat(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[], opts: ChatOptions): string {
  return template.render(messages, {
    addGenerationPrompt: opts.addGenerationPrompt,
    bosToken: specialText(tok, tok.bos),
    eosToken: specialText(tok, tok.eos),
    vars: opts.templateVars,
  });
}

export function chatPrompt(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[], opts: ChatOptions): ChatPrompt {
  const text = renderChat(tok, template, messages, opts);
  let body = text;
  const bos = specialText(tok, tok.bos);
  const eos = specialText(tok, tok.eos);
  if (tok.addBos && bos !== '' && body.startsWith(bos)) body = body.slice(bos.length);
  if (tok.addEos && eos !== '' && body.endsWith(eos)) body = body.slice(0, body.length - eos.length);
  return { text, ids: tok.encode(body, { parseSpecial: true }) };
}
