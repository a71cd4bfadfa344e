// The model weft ships with (models/README.md): a small arithmetic reasoner trained for this
// repository, so that `weft generate` works on a fresh clone without a download.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_MODEL_FILE = 'weft-reasoner-2m-f16.gguf';

/** Absolute path of the shipped model; resolves the same from lib/ (sources) and dist/ (build). */
export function defaultModelPath(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'models', DEFAULT_MODEL_FILE);
}
