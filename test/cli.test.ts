// The CLI as a user runs it (dist/ is built by `npm ci` through the prepare script).
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { HAVE_REFDATA, refJson, refPath } from './refdata.js';

const run = promisify(execFile);
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;

describe.skipIf(!HAVE_REFDATA || !existsSync(CLI))('weft CLI', () => {
  for (const flags of [[], ['--no-mmap']]) {
    it(`generate${flags.map((f) => ` ${f}`).join('')} streams llama.cpp's greedy continuation`, async () => {
      const ref = refJson('stories260K', 'greedy_64.json').results[0];
      const { stdout, stderr } = await run('node', [CLI, 'generate', '-m', refPath('models', 'stories260Ktok512.gguf'), '-p', 'Once upon a time', '-n', '64', '--temp', '0', ...flags]);
      expect(stdout).toBe(`Once upon a time${ref.continuation_text}\n`);
      expect(stderr).toMatch(/64 tokens .* tok\/s, finish: length/);
    });
  }

  it('generate --kv-type q8_0 runs on a q8_0 cache, and says why a model cannot have one', async () => {
    const args = ['generate', '-p', 'Once upon a time', '-n', '8', '--temp', '0', '--kv-type', 'q8_0'];
    const { stderr } = await run('node', [CLI, ...args, '-m', refPath('models', 'llama-gqa-k-q8_0.gguf')]);
    expect(stderr).toMatch(/8 tokens .* tok\/s, finish: length/);
    // stories260K's heads are 8 wide: no Q8_0 rows.
    await expect(run('node', [CLI, ...args, '-m', refPath('models', 'stories260Ktok512.gguf')])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/E_INVALID_ARGUMENT.*multiple of 32.*8/),
    });
  });

  it('info prints shape and tensor types; bad input is a clear error and exit code 1', async () => {
    const { stdout } = await run('node', [CLI, 'info', '-m', refPath('models', 'llama-gqa-k-q8_0.gguf')]);
    expect(stdout).toMatch(/arch\s+llama/);
    expect(stdout).toMatch(/Q8_0\s+30 tensors/);
    await expect(run('node', [CLI, 'info', '-m', '/nonexistent.gguf'])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/E_INVALID_ARGUMENT/) });
    await expect(run('node', [CLI, 'generate', '-m', refPath('models', 'stories260Ktok512.gguf'), '-p', 'x', '--temp', 'hot'])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/--temp/) });
  });
});
