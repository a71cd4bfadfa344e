/**
 * Builds and runs native/bench/membw.cc (through the C++ test build in build/ctest) for the
 * machine's read bandwidth: the roofline for decode, which streams every weight per step.
 */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

// Executables built by this process: the bench reads the bandwidth dozens of times (around every
// B=1 repetition), and each cmake check would add ~0.1 s of build-tree I/O just before a reading.
const built = new Set<string>();

function membwExe(root: string): string {
  const build = path.join(root, 'build', 'ctest');
  const exe = path.join(build, 'bench-membw');
  if (built.has(exe)) return exe;
  const quiet: ExecFileSyncOptions = { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] };
  if (!existsSync(path.join(build, 'CMakeCache.txt'))) {
    execFileSync('cmake', ['-S', '.', '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DWEFT_BUILD_ADDON=OFF'], quiet);
  }
  execFileSync('cmake', ['--build', build, '--target', 'bench-membw'], quiet);
  built.add(exe);
  return exe;
}

/** `mib`: buffer size; the default 1 GiB for the run's readings, 256 MiB (8x the L3 of the
 *  machines here) for the quick ones taken right before and after each decode repetition. */
export function measureMembw(root: string, threads: number, mib = 1024): number {
  const out = execFileSync(membwExe(root), [String(threads), String(mib)], { encoding: 'utf8' });
  const m = /read GB\/s ([\d.]+)/.exec(out);
  if (!m) throw new Error(`bench-membw printed no figure:\n${out}`);
  return Number(m[1]);
}
