import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';
import ts from 'typescript';
import { build as viteBuild } from 'vite';
import { TRACING_BUNDLE } from './bundle-names.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DIST_DIR = join(REPO_ROOT, 'dist');

/** The bundles under dist/ and their entry points; what `install.mjs` copies and the tests run. */
export const Bundles = {
  'virtbus.cjs': 'apps/cli/src/bin.ts',
  'virtbus-agent.mjs': 'apps/agent/src/main.ts',
  'virtbus-gateway.mjs': 'apps/gateway/src/main.ts',
  'install.mjs': 'tools/install/install.ts',
  [TRACING_BUNDLE]: 'libs/monitoring/src/tracing-sdk.ts',
} as const;

/**
 * The CLI is bundled on its own so a cold call loads as little as it can (see cliStartupPlugins), as CommonJS: Node 20
 * starts an ES module entry and its `node:` imports (one facade each) measurably slower than require().
 */
const CLI_BUNDLE = 'virtbus.cjs';

/** The web UI (apps/web), built by Vite into `web/` beside the gateway bundle, which serves it at /ui. */
const WEB_ROOT = 'apps/web';

async function buildWeb(outdir: string): Promise<string[]> {
  const root = join(REPO_ROOT, WEB_ROOT);
  await viteBuild({ configFile: join(root, 'vite.config.ts'), build: { outDir: join(outdir, 'web'), emptyOutDir: true } });
  const sources = (await readdir(join(root, 'src'))).map((file) => `${WEB_ROOT}/src/${file}`);
  return [...sources, `${WEB_ROOT}/index.html`, `${WEB_ROOT}/vite.config.ts`, `${WEB_ROOT}/package.json`];
}

/** The daemons' dynamic import of the tracing SDK loads the bundle beside them at run time. */
function tracingBundleExternal(): Plugin {
  return {
    name: 'tracing-bundle-external',
    setup(pluginBuild) {
      pluginBuild.onResolve({ filter: /^\.\/tracing-sdk\.js$/ }, (args) => (args.kind === 'dynamic-import' ? { path: `./${TRACING_BUNDLE}`, external: true } : undefined));
    },
  };
}

/** Installed under share/doc/virtbus. */
const DOCS = ['docs/INSTALL.md', 'docs/CLI.md'];

const META_FILE = '.build-meta.json';

// CommonJS dependencies inside an ESM bundle still call require() and read __dirname.
const BANNER = [
  "import { createRequire as __virtbusCreateRequire } from 'node:module';",
  "import { fileURLToPath as __virtbusFileURLToPath } from 'node:url';",
  "import { dirname as __virtbusDirname } from 'node:path';",
  'const require = __virtbusCreateRequire(import.meta.url);',
  'const __filename = __virtbusFileURLToPath(import.meta.url);',
  'const __dirname = __virtbusDirname(__filename);',
].join('\n');

/** @fastify/swagger-ui reads its static files next to its own sources: point it at dist/swagger-ui instead. */
function swaggerUiAssets(): Plugin {
  return {
    name: 'swagger-ui-assets',
    setup(pluginBuild) {
      pluginBuild.onLoad({ filter: /@fastify[\\/]swagger-ui[\\/](index|lib[\\/]routes)\.js$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        const where = args.path.endsWith('index.js') ? "'swagger-ui'" : "'swagger-ui', 'lib'";
        return { contents: source.replaceAll('__dirname', `require('node:path').join(__dirname, ${where})`), loader: 'js' };
      });
    },
  };
}

/**
 * Wraps each top-level `const` initializer in a pure-annotated arrow call, so esbuild drops the ones nothing uses. The
 * contract's top level only builds values (schemas, tables), so a constant nobody reads is safe to leave out.
 */
export function pureTopLevelConstants(source: string, fileName: string): string {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const edits: { at: number; text: string }[] = [];
  for (const statement of file.statements) {
    if (!ts.isVariableStatement(statement) || !(statement.declarationList.flags & ts.NodeFlags.Const)) continue;
    for (const declaration of statement.declarationList.declarations) {
      const init = declaration.initializer;
      if (!init || ts.isLiteralExpression(init)) continue;
      edits.push({ at: init.getStart(file), text: '/* @__PURE__ */ (() => (' }, { at: init.getEnd(), text: '))()' });
    }
  }
  let result = source;
  for (const edit of edits.sort((a, b) => b.at - a.at)) result = result.slice(0, edit.at) + edit.text + result.slice(edit.at);
  return result;
}

/**
 * A cold `virtbus` should not build the contract's TypeBox schemas it never validates with: the HTTP binding table is
 * inlined as data, the contract's unused constants are dropped (pureTopLevelConstants) and TypeBox is side-effect free
 * (so it goes when nothing uses it).
 */
function cliStartupPlugins(): Plugin[] {
  return [
    {
      name: 'cli-http-bindings',
      setup(pluginBuild) {
        pluginBuild.onLoad({ filter: /apps[\\/]cli[\\/]src[\\/]operation-bindings\.ts$/ }, async (args) => {
          const { HttpBindings } = (await import(args.path)) as { HttpBindings: unknown };
          return { contents: `export const HttpBindings = ${JSON.stringify(HttpBindings)};\n`, loader: 'js' };
        });
      },
    },
    {
      name: 'pure-contract-constants',
      setup(pluginBuild) {
        pluginBuild.onLoad({ filter: /libs[\\/]api-contract[\\/]src[\\/][^\\/]+\.ts$/ }, async (args) => ({
          contents: pureTopLevelConstants(await readFile(args.path, 'utf8'), args.path),
          loader: 'ts',
        }));
        pluginBuild.onResolve({ filter: /^typebox$/ }, (args) => ({ path: createRequire(args.importer).resolve(args.path), sideEffects: false }));
      },
    },
  ];
}

function version(): string {
  const { version: base } = createRequire(import.meta.url)(join(REPO_ROOT, 'package.json')) as { version: string };
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return `${base} (${commit})`;
  } catch {
    return base;
  }
}

/** Bundles agent, gateway, CLI and installer into plain JavaScript under dist/ (no TypeScript at run time). */
export async function buildAll(outdir = DIST_DIR): Promise<Metafile> {
  // a source saved while this build runs makes the result stale
  const startedAt = Date.now();
  await rm(outdir, { recursive: true, force: true });
  const options = (bundles: Record<string, string>, plugins: Plugin[]) => ({
    absWorkingDir: REPO_ROOT,
    entryPoints: Object.fromEntries(Object.entries(bundles).map(([file, entry]) => [file.replace(/\.[cm]js$/, ''), entry])),
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    target: 'node20',
    banner: { js: BANNER },
    define: { __VIRTBUS_VERSION__: JSON.stringify(version()) },
    // optional native speed-ups of ws; it works without them
    external: ['bufferutil', 'utf-8-validate'],
    plugins,
    legalComments: 'linked' as const,
    sourcemap: 'linked' as const,
    sourcesContent: false,
    metafile: true as const,
    logLevel: 'warning' as const,
  });
  const { [CLI_BUNDLE]: cliEntry, ...daemonEntries } = Bundles;
  const [daemons, cli, webInputs] = await Promise.all([
    build(options(daemonEntries, [swaggerUiAssets(), tracingBundleExternal()])),
    build({ ...options({ [CLI_BUNDLE]: cliEntry }, cliStartupPlugins()), format: 'cjs', outExtension: { '.js': '.cjs' }, banner: {} }),
    buildWeb(outdir),
  ]);
  const result = { metafile: { inputs: { ...daemons.metafile.inputs, ...cli.metafile.inputs }, outputs: { ...daemons.metafile.outputs, ...cli.metafile.outputs } } };
  for (const output of Object.keys(result.metafile.outputs)) if (/\.[cm]js$/.test(output)) await asciiOnly(join(REPO_ROOT, output));
  const swaggerUi = dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/package.json'));
  await mkdir(join(outdir, 'swagger-ui'), { recursive: true });
  await cp(join(swaggerUi, 'static'), join(outdir, 'swagger-ui', 'static'), { recursive: true });
  await mkdir(join(outdir, 'doc'), { recursive: true });
  for (const doc of DOCS) await cp(join(REPO_ROOT, doc), join(outdir, 'doc', basename(doc)));
  const inputs = Object.keys(result.metafile.inputs);
  await writeFile(join(outdir, META_FILE), `${JSON.stringify({ builtAt: startedAt, inputs: [...inputs, ...webInputs, ...DOCS, 'package-lock.json', 'tools/build/build.ts'] })}\n`);
  return result.metafile;
}

/**
 * Escapes what esbuild leaves non-ASCII (comments, regular expression literals): one such character makes V8 hold the whole
 * bundle's source as a two-byte string (agent: 5.2 instead of 2.6 MB of heap for as long as it runs). `\uXXXX` means the
 * same character in strings, regular expressions and identifiers; only the columns after it on its line move in the source map.
 */
async function asciiOnly(path: string): Promise<void> {
  const text = await readFile(path, 'utf8');
  const ascii = escapeNonAscii(text);
  if (ascii !== text) await writeFile(path, ascii);
}

export function escapeNonAscii(text: string): string {
  return text.replace(/[\u0080-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** True when dist/ is missing or any file it was built from changed since. */
export async function isStale(outdir = DIST_DIR): Promise<boolean> {
  let meta: { builtAt: number; inputs: string[] };
  try {
    meta = JSON.parse(await readFile(join(outdir, META_FILE), 'utf8')) as typeof meta;
    for (const file of Object.keys(Bundles)) await stat(join(outdir, file));
  } catch {
    return true;
  }
  for (const input of meta.inputs) {
    const mtime = await stat(join(REPO_ROOT, input)).then((s) => s.mtimeMs, () => Infinity);
    if (mtime > meta.builtAt) return true;
  }
  return false;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  const meta = await buildAll();
  const sizes = Object.keys(Bundles).map((file) => `${file} ${Math.round(meta.outputs[relative(REPO_ROOT, join(DIST_DIR, file))]?.bytes ?? 0) / 1000} kB`);
  console.log(`built dist/ in ${Date.now() - started} ms: ${sizes.join(', ')}`);
}
