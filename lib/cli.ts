#!/usr/bin/env node
// weft's command line: `weft generate` streams a completion, `weft info` describes a GGUF file.
import { parseArgs } from 'node:util';
import { loadModel, readGguf, WeftError } from './index.js';
import { defaultModelPath } from './default-model.js';
import type { KvType } from './native.js';

const USAGE = `usage:
  weft generate [-m model.gguf] -p "Start at 17. Add 25." [-n 64] [--temp 0.8] [--top-k 40] [--top-p 0.95]
                [--min-p 0.05] [--seed N] [--stop STR]... [-t threads] [--kv-type f16|f32|q8_0]
                [--no-mmap]
  weft info -m model.gguf [--json]`;

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new WeftError('E_INVALID_ARGUMENT', `--${name} expects a number, got '${v}'`);
  return n;
}

async function generate(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string', short: 'm' },
      prompt: { type: 'string', short: 'p' },
      'n-predict': { type: 'string', short: 'n' },
      temp: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'min-p': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
      threads: { type: 'string', short: 't' },
      'kv-type': { type: 'string' },
      'no-mmap': { type: 'boolean' },
    },
  });
  if (values.prompt === undefined) throw new WeftError('E_INVALID_ARGUMENT', 'generate needs -p PROMPT');
  // Without -m: the small reasoner shipped in models/ (models/README.md).
  const model = await loadModel(values.model ?? defaultModelPath(), {
    threads: num('threads', values.threads),
    kvType: values['kv-type'] as KvType | undefined,
    useMmap: values['no-mmap'] ? false : undefined,
  });
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  try {
    const gen = model.generate(values.prompt, {
      maxTokens: num('n-predict', values['n-predict']) ?? 64,
      temperature: num('temp', values.temp),
      topK: num('top-k', values['top-k']),
      topP: num('top-p', values['top-p']),
      minP: num('min-p', values['min-p']),
      seed: num('seed', values.seed),
      stop: values.stop,
      signal: ac.signal,
    });
    process.stdout.write(values.prompt);
    for await (const ev of gen) process.stdout.write(ev.text);
    const r = await gen.result;
    const s = r.elapsedMs / 1000;
    process.stdout.write('\n');
    process.stderr.write(`[${r.usage.completionTokens} tokens in ${s.toFixed(2)} s, ${(r.usage.completionTokens / s).toFixed(1)} tok/s, ` +
      `finish: ${r.finishReason}, mean confidence ${r.meanConfidence.toFixed(3)}]\n`);
  } finally {
    await model.dispose();
  }
}

async function info(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { model: { type: 'string', short: 'm' }, json: { type: 'boolean' } } });
  if (!values.model) throw new WeftError('E_INVALID_ARGUMENT', 'info needs -m MODEL');
  const g = await readGguf(values.model);
  const m = g.metadata;
  const arch = String(m['general.architecture'] ?? '?');
  const key = (k: string) => m[`${arch}.${k}`];
  const types = new Map<string, { count: number; bytes: number }>();
  for (const t of g.tensors) {
    const e = types.get(t.type) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += t.bytes;
    types.set(t.type, e);
  }
  const summary = {
    file: values.model,
    ggufVersion: g.version,
    name: m['general.name'],
    arch,
    layers: key('block_count'),
    embeddingLength: key('embedding_length'),
    heads: key('attention.head_count'),
    kvHeads: key('attention.head_count_kv') ?? key('attention.head_count'),
    feedForwardLength: key('feed_forward_length'),
    contextLength: key('context_length'),
    ropeTheta: key('rope.freq_base'),
    vocabSize: Array.isArray(m['tokenizer.ggml.tokens']) ? (m['tokenizer.ggml.tokens'] as string[]).length : undefined,
    tokenizer: m['tokenizer.ggml.model'],
    tensors: g.tensors.length,
    tensorTypes: Object.fromEntries(types),
    fileBytes: g.fileBytes,
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(summary, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
    return;
  }
  for (const [k, v] of Object.entries(summary)) {
    if (k === 'tensorTypes') continue;
    process.stdout.write(`${k.padEnd(18)} ${String(v)}\n`);
  }
  process.stdout.write('tensor types\n');
  for (const [t, e] of types) process.stdout.write(`  ${t.padEnd(8)} ${String(e.count).padStart(5)} tensors ${(e.bytes / 2 ** 20).toFixed(2).padStart(10)} MiB\n`);
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'generate') return generate(rest);
  if (cmd === 'info') return info(rest);
  process.stderr.write(USAGE + '\n');
  process.exitCode = cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2;
}

main().catch((e: unknown) => {
  const code = e instanceof WeftError ? e.code : (e as { code?: string }).code ?? 'E_INTERNAL';
  process.stderr.write(`weft: ${code}: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
