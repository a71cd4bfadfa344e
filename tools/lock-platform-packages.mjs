#!/usr/bin/env node
// Adds lockfile entries for the platform-specific optional packages the registry mirror here
// hides (it answers 404 for, e.g., @rollup/rollup-darwin-x64), so `npm ci` accepts the lockfile.
// npm 11 otherwise writes a lockfile without them and then rejects it in `npm ci` as out of sync.
// Each entry carries the package's os/cpu/libc, so npm skips it on every other platform and never
// fetches it here. Run after any `npm install` that rewrites a lockfile:
//   node tools/lock-platform-packages.mjs [path/to/package-lock.json]   (default: the root one)
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.argv[2] ?? new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const pkgs = lock.packages;

// Platform packages are named <scope>/<tool>-<os>-<cpu>[-<abi>], e.g. @rollup/rollup-linux-arm64-musl,
// or <scope>/<os>-<cpu>[-<variant>] with short OS names, e.g. @node-llama-cpp/mac-arm64-metal.
const OS = new Set(['aix', 'android', 'darwin', 'freebsd', 'linux', 'netbsd', 'openbsd', 'openharmony', 'sunos', 'win32']);
const OS_ALIAS = { mac: 'darwin', win: 'win32' };
function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  const i = parts.findIndex((p) => OS.has(p) || Object.hasOwn(OS_ALIAS, p));
  if (i < 0 || i + 1 >= parts.length) return null;
  const entry = { os: [OS_ALIAS[parts[i]] ?? parts[i]], cpu: [parts[i + 1]] };
  if (parts[i] === 'linux') entry.libc = [parts.slice(i + 2).some((p) => p.startsWith('musl')) ? 'musl' : 'glibc'];
  return entry;
}

let added = 0;
for (const meta of Object.values(pkgs)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (pkgs[key]) continue;
    const platform = platformOf(name);
    if (!platform) continue;
    pkgs[key] = { version, ...platform, dev: meta.dev ?? false, optional: true };
    if (!pkgs[key].dev) delete pkgs[key].dev;
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platform-packages: added ${added} entries`);
