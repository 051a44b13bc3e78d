import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root: the package as `npm run build` leaves it. */
export const root = fileURLToPath(new URL('../..', import.meta.url));

/** The subpaths of the package's exports map (`longpoll-kit`, `longpoll-kit/node`, …), package.json aside. */
export function subpaths(): string[] {
  const { name, exports } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; exports: Record<string, unknown> };
  return Object.keys(exports)
    .filter((key) => key !== './package.json')
    .map((key) => (key === '.' ? name : `${name}/${key.slice(2)}`));
}

/** What `tsc` printed and how it exited. */
export interface Compiled {
  readonly status: number;
  readonly output: string;
}

/**
 * The errors `tsc` reported in files of ours (the package's declarations, the project's own
 * files), leaving out those inside other packages (with `skipLibCheck: false`, @types/koa fails
 * on content-disposition's types, say): those are not ours to fix, nor a user's concern here.
 */
export function ourErrors({ output }: Compiled, dir: string): string[] {
  return output
    .split('\n')
    .filter((line) => /error TS\d+/.test(line))
    .filter((line) => !resolve(dir, line.split('(')[0]!).includes(`${sep}node_modules${sep}`));
}

/**
 * A project of its own in a temporary directory, outside the repository, that has longpoll-kit
 * installed as a link to the repository (so the name resolves through the exports map to dist/,
 * as for a user) beside links to this repository's own dependencies (`@types/node`, the peers).
 */
export class ConsumerProject {
  readonly dir = mkdtempSync(join(tmpdir(), 'longpoll-consumer-'));

  constructor(packageJson: Record<string, unknown> = { type: 'module' }) {
    const modules = join(this.dir, 'node_modules');
    mkdirSync(modules);
    for (const entry of readdirSync(join(root, 'node_modules'))) {
      if (entry !== 'longpoll-kit' && !entry.startsWith('.')) symlinkSync(join(root, 'node_modules', entry), join(modules, entry));
    }
    symlinkSync(root, join(modules, 'longpoll-kit'), 'dir');
    this.write('package.json', JSON.stringify({ name: 'consumer', private: true, ...packageJson }));
  }

  write(file: string, text: string): void {
    writeFileSync(join(this.dir, file), text);
  }

  /** Runs this repository's `tsc` on the project's `tsconfig` (at most a minute). */
  tsc(config = 'tsconfig.json'): Promise<Compiled> {
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    return new Promise((resolve) => {
      execFile(process.execPath, [tsc, '-p', config, '--pretty', 'false'], { cwd: this.dir, timeout: 60_000 }, (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ status, output: `${stdout}${stderr}`.trim() });
      });
    });
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
