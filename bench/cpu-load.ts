/**
 * How much of the CPU other processes took while the bench ran. On a 2-core machine shared with
 * builds and tests, a few seconds of someone else's compiler can halve a figure, and it hurts
 * engines with spinning thread barriers most; the table reports it so a disturbed run is seen.
 */
import os from 'node:os';

function systemMs(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times: t } of os.cpus()) {
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busy, total };
}

function ownMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Starts a window; the returned function gives the % of all CPU time used by other processes. */
export function otherLoad(): () => number {
  const s0 = systemMs();
  const o0 = ownMs();
  return () => {
    const s1 = systemMs();
    const others = s1.busy - s0.busy - (ownMs() - o0);
    return Math.max(0, Math.round((100 * others) / Math.max(1, s1.total - s0.total)));
  };
}

/** Waits until other processes use under `pct`% of the CPU over a second, for at most maxS seconds. */
export async function waitIdle(pct: number, maxS: number, log: (s: string) => void): Promise<number> {
  const t0 = performance.now();
  for (let waited = false; ; waited = true) {
    const stop = otherLoad();
    await new Promise((r) => setTimeout(r, 1000));
    const busy = stop();
    const s = Math.round((performance.now() - t0) / 1000);
    if (busy < pct || s > maxS) {
      if (waited) log(`  waited ${s} s for the CPU; others now use ${busy}%`);
      return busy;
    }
    if (!waited) log(`  other processes use ${busy}% of the CPU: waiting up to ${maxS} s for them to finish`);
  }
}
