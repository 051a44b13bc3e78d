// Builds dist/ (`npm run build`): compiles src/ with tsc, then makes the declarations stand
// without typed-emitter. typed-emitter is types only, and installing it would install its
// optional dependency rxjs (12 MB), so it is a build-time dependency: its interface is copied
// into dist/typed-emitter.d.ts by dts-bundle-generator and the declarations import that file.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
const require = createRequire(import.meta.url);

/** Runs a package's command-line program with this Node, from the repository's root. */
function run(bin, args) {
  execFileSync(process.execPath, [bin, ...args], { cwd: root, stdio: 'inherit' });
}

/** Every file under `dir`, recursively. */
function files(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

rmSync(dist, { recursive: true, force: true });
run(require.resolve('typescript/bin/tsc'), ['-p', 'tsconfig.build.json']);

const bundled = join(dist, 'typed-emitter.d.ts');
run(join(dirname(require.resolve('dts-bundle-generator/package.json')), 'dist/bin/dts-bundle-generator.js'), [
  '--project', 'scripts/tsconfig.json',
  '--external-inlines', 'typed-emitter',
  '--no-banner', '--silent',
  '-o', bundled,
  'scripts/typed-emitter.ts',
]);
// typed-emitter's licence asks that its notice go with copies of it.
const { version } = require('typed-emitter/package.json');
const notice = readFileSync(require.resolve('typed-emitter/LICENSE'), 'utf8').trim();
writeFileSync(bundled, `/*\n * The declarations of typed-emitter ${version}, copied by dts-bundle-generator at build time.\n *\n${notice.replace(/^/gm, ' * ').replace(/ +$/gm, '')}\n */\n${readFileSync(bundled, 'utf8')}`);

for (const file of files(dist).filter((name) => name.endsWith('.d.ts') && name !== bundled)) {
  const text = readFileSync(file, 'utf8');
  if (!text.includes('typed-emitter')) continue;
  let target = relative(dirname(file), bundled).split(sep).join('/').replace(/\.d\.ts$/, '.js');
  if (!target.startsWith('.')) target = `./${target}`;
  writeFileSync(file, text.replaceAll(`from 'typed-emitter'`, `from '${target}'`));
}

const left = files(dist).filter((file) => file !== bundled && readFileSync(file, 'utf8').includes(`'typed-emitter'`));
if (left.length > 0) throw new Error(`dist/ still imports typed-emitter: ${left.map((file) => relative(root, file)).join(', ')}`);
