import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { escapeNonAscii, pureTopLevelConstants } from './build.js';

describe('pureTopLevelConstants (the CLI bundle drops contract constants nobody reads)', () => {
  it('wraps each non-literal top-level const initializer, and nothing else', () => {
    const source = ["export const A = 1;", "export const B = make({ x: A });", "const C: number[] = [...list];", "let d = make();", "function f() { const e = make(); return e; }"].join('\n');
    expect(pureTopLevelConstants(source, 'x.ts').split('\n')).toEqual([
      'export const A = 1;',
      'export const B = /* @__PURE__ */ (() => (make({ x: A })))();',
      'const C: number[] = /* @__PURE__ */ (() => ([...list]))();',
      'let d = make();',
      'function f() { const e = make(); return e; }',
    ]);
  });

  it('lets esbuild drop the unused constants while the used ones keep their values', async () => {
    const contract = pureTopLevelConstants(
      ["export const Used = ['a', 'b'] as const;", 'export const Unused = { ...Object.fromEntries([["k", 1]]), made: globalThis.marker() };'].join('\n'),
      'contract.ts',
    );
    const result = await build({
      stdin: { contents: "import { Used } from 'contract'; console.log(Used.join());", loader: 'ts' },
      bundle: true,
      format: 'esm',
      write: false,
      logLevel: 'silent',
      plugins: [
        {
          name: 'contract',
          setup(pluginBuild) {
            pluginBuild.onResolve({ filter: /^contract$/ }, () => ({ path: 'contract', namespace: 'test' }));
            pluginBuild.onLoad({ filter: /.*/, namespace: 'test' }, () => ({ contents: contract, loader: 'ts' }));
          },
        },
      ],
    });
    const code = result.outputFiles[0]!.text;
    expect(code).toContain('"a", "b"');
    expect(code).not.toContain('marker');
  });
});

describe('escapeNonAscii (a bundle V8 can hold as a one-byte string)', () => {
  it('leaves code that means the same in strings, regular expressions, templates and comments', () => {
    const source = '/* 10 µs → */ [/(µs|ms)/.exec("5µs")?.[1], `é${"😀"}`, "naïve"]';
    const escaped = escapeNonAscii(source);
    expect(escaped).toMatch(/^[\x20-\x7e]*$/);
    expect(new Function(`return ${escaped}`)()).toEqual(new Function(`return ${source}`)());
  });
});
