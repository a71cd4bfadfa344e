import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';

// CMakeLists.txt is the one description of the build; binding.gyp must name the same sources.
describe('native build descriptions', () => {
  it('binding.gyp compiles exactly the sources CMakeLists.txt lists', () => {
    const cmake = readFileSync(new URL('../CMakeLists.txt', import.meta.url), 'utf8');
    const list = (name: string) => {
      const m = cmake.match(new RegExp(`set\\(${name}([^)]*)\\)`));
      expect(m, name).not.toBeNull();
      return m![1].split(/\s+/).filter((s) => s.endsWith('.cc'));
    };
    const fromCmake = [...list('WEFT_CORE_SOURCES'), ...list('WEFT_ADDON_SOURCES')].sort();
    const gyp = JSON.parse(readFileSync(new URL('../binding.gyp', import.meta.url), 'utf8')) as {
      targets: { sources: string[] }[];
    };
    const fromGyp = gyp.targets.flatMap((t) => t.sources).sort();
    expect(fromGyp).toEqual(fromCmake);
  });
});
