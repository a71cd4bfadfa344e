/**
 * Chat templates: the Jinja program a model ships as tokenizer.chat_template (Hugging Face's
 * chat_template from tokenizer_config.json) that writes a conversation out as prompt text.
 * Rendered by @huggingface/jinja, the engine transformers.js uses, with the variables that
 * transformers' apply_chat_template passes: messages, add_generation_prompt, bos_token and
 * eos_token, plus any the caller adds (Qwen3's enable_thinking, tools, ...).
 */
import { Template } from '@huggingface/jinja';
import { WeftError, invalid } from '../errors.js';

export interface ChatMessage {
  /** 'system', 'user', 'assistant', or whatever else the template knows ('tool', ...). */
  role: string;
  content: string;
  /** Further fields some templates read (reasoning_content, tool_calls, name, ...). */
  [field: string]: unknown;
}

export interface RenderOptions {
  /** End with the opening of the assistant's turn, so the model answers next. Default true. */
  addGenerationPrompt?: boolean;
  /** The texts of the BOS and EOS tokens, for templates that write them. Default ''. */
  bosToken?: string;
  eosToken?: string;
  /** More template variables. They cannot replace the four above. */
  vars?: Record<string, unknown>;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A parsed template; parsing is the costly part, so a model keeps one and renders it per request. */
export class ChatTemplate {
  private readonly template: Template;

  /**
   * `origin` decides the error for a template that does not parse: one passed in options is
   * the caller's mistake (E_INVALID_ARGUMENT); one from the model file was valid Jinja where
   * it was written, so failing to parse it means a construct this engine lacks (E_UNSUPPORTED).
   */
  constructor(readonly source: string, origin: 'model' | 'options') {
    if (typeof source !== 'string' || source.length === 0) throw invalid('a chat template must be a non-empty string');
    try {
      this.template = new Template(source);
    } catch (e) {
      const where = origin === 'model' ? "the model's chat template (tokenizer.chat_template)" : 'the chatTemplate option';
      throw new WeftError(origin === 'model' ? 'E_UNSUPPORTED' : 'E_INVALID_ARGUMENT', `cannot parse ${where}: ${errorMessage(e)}`, { cause: e });
    }
  }

  /**
   * The prompt text for `messages`. A template that rejects the conversation (raise_exception,
   * as in "roles must alternate user/assistant") or fails on it gives E_INVALID_ARGUMENT.
   */
  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    const vars = opts.vars ?? {};
    if (vars === null || typeof vars !== 'object' || Array.isArray(vars)) throw invalid('templateVars must be an object');
    const context = {
      ...vars,
      messages: checkMessages(messages),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
    };
    if (typeof context.add_generation_prompt !== 'boolean') throw invalid('addGenerationPrompt must be a boolean');
    try {
      return this.template.render(context);
    } catch (e) {
      throw invalid(`chat template: ${errorMessage(e)}`);
    }
  }
}

/** Copies of the messages (a template cannot touch the caller's objects), each checked. */
function checkMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw invalid('messages must be a non-empty array of { role, content }');
  return messages.map((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw invalid(`messages[${i}] must be an object { role, content }`);
    if (typeof m.role !== 'string' || m.role.length === 0) throw invalid(`messages[${i}].role must be a non-empty string`);
    if (typeof m.content !== 'string') throw invalid(`messages[${i}].content must be a string`);
    return { ...m };
  });
}
