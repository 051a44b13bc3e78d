import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { root, subpaths } from './consumer.js';

// `npm install longpoll-kit` as a user runs it, from the packed tarball (dist/ is built by the
// test setup; `npm pack` runs here without its prepack build), into a fresh project, without the
// optional peers. The registry is asked only for what the local cache lacks.

/** 1 MB, in bytes. */
const BUDGET = 1_000_000;

function run(command: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, timeout, env: { ...process.env, npm_config_update_notifier: 'false' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The bytes of every file under `dir` (apparent sizes, as `npm pack` counts its unpacked size). */
function bytes(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(join(entry.parentPath, entry.name)).size, 0);
}

describe('npm install longpoll-kit, without peers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'longpoll-install-'));
  const project = join(dir, 'project');

  beforeAll(async () => {
    const [{ filename }] = JSON.parse(await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root)) as [{ filename: string }];
    await run('mkdir', ['-p', project], dir);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
    await run('npm', ['install', join(dir, filename), '--omit=peer', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], project);
  }, 180_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('installs at most 1 MB: the package and its three runtime dependencies, nothing else', () => {
    const modules = join(project, 'node_modules');
    const installed = readdirSync(modules).filter((name) => !name.startsWith('.'));
    // typed-emitter 1.x: the same interface as 2.x, without 2.x's optional rxjs (12 MB).
    expect(installed.sort()).toEqual(['longpoll-kit', 'p-timeout', 'typed-emitter', 'ulid']);
    const size = bytes(modules);
    console.log(`npm install longpoll-kit: ${size.toLocaleString('en')} bytes in node_modules`);
    expect(size).toBeLessThanOrEqual(BUDGET);
  });

  it('ships no source maps', () => {
    const dist = join(project, 'node_modules/longpoll-kit/dist');
    expect(readdirSync(dist, { recursive: true }).map(String).filter((file) => file.endsWith('.map'))).toEqual([]);
  });

  it.each(subpaths())('imports %s with Node, as an ES module and through require()', async (subpath) => {
    const esm = await run(process.execPath, ['--input-type=module', '-e', `const m = await import('${subpath}'); console.log(Object.keys(m).length)`], project, 20_000);
    expect(Number(esm)).toBeGreaterThan(0);
    const cjs = await run(process.execPath, ['--no-warnings', '-e', `console.log(Object.keys(require('${subpath}')).length)`], project, 20_000);
    expect(Number(cjs)).toBeGreaterThan(0);
  });
});
