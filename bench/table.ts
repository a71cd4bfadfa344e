/** Plain-text table with right-aligned number columns. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((x, c) => (c < 2 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const fmt = (x: number | undefined, digits = 1): string =>
  x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);

export const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !(a > 0) || !(b > 0) ? '-' : `${(a / b).toFixed(2)}x`;
