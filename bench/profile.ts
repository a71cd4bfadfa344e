/** The bench's profile mode: weft's per-phase forward times (Model.profile()) as a table. */
import type { NativeProfile } from '../lib/index.js';
import { fmt, formatTable } from './table.js';

export function addProfile(a: NativeProfile | undefined, b: NativeProfile): NativeProfile {
  if (!a) return b;
  const ms: Record<string, number> = { ...a.ms };
  for (const [k, v] of Object.entries(b.ms)) ms[k] = (ms[k] ?? 0) + v;
  return { steps: a.steps + b.steps, tokens: a.tokens + b.tokens, ms };
}

/** One row per phase, one column per test: ms per step and its share of the step. */
export function profileTable(tests: { name: string; profile: NativeProfile }[]): string {
  const phases = Object.keys(tests[0].profile.ms);
  const total = (p: NativeProfile) => Object.values(p.ms).reduce((x, y) => x + y, 0);
  const cell = (p: NativeProfile, ms: number) => `${fmt(ms / p.steps, 3)} (${fmt((100 * ms) / total(p), 0)}%)`;
  const rows = phases.map((ph) => [ph, ...tests.map((t) => cell(t.profile, t.profile.ms[ph] ?? 0))]);
  rows.push(['total', ...tests.map((t) => `${fmt(total(t.profile) / t.profile.steps, 3)} ms, ${t.profile.steps} steps`)]);
  return formatTable(['phase', ...tests.map((t) => t.name)], rows);
}
