/** Stable error codes; every error weft raises on purpose carries one. */
export type WeftErrorCode =
  | 'E_MODEL_FORMAT'
  | 'E_UNSUPPORTED'
  | 'E_INVALID_ARGUMENT'
  | 'E_KV_EXHAUSTED'
  | 'E_ABORTED'
  | 'E_DISPOSED'
  | 'E_BUSY'
  | 'E_INTERNAL';

const CODES = new Set<string>([
  'E_MODEL_FORMAT', 'E_UNSUPPORTED', 'E_INVALID_ARGUMENT', 'E_KV_EXHAUSTED',
  'E_ABORTED', 'E_DISPOSED', 'E_BUSY', 'E_INTERNAL',
]);

export class WeftError extends Error {
  readonly code: WeftErrorCode;
  constructor(code: WeftErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeftError';
    this.code = code;
  }
}

/** Native errors arrive as plain Errors with a `code`; give them the WeftError type. */
export function toWeftError(e: unknown): WeftError {
  if (e instanceof WeftError) return e;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const c = typeof code === 'string' && CODES.has(code) ? (code as WeftErrorCode) : 'E_INTERNAL';
    const w = new WeftError(c, e.message, { cause: e });
    return w;
  }
  return new WeftError('E_INTERNAL', String(e));
}

export function invalid(message: string): WeftError {
  return new WeftError('E_INVALID_ARGUMENT', message);
}
