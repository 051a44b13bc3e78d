import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Modification times of every file under `dir` (recursively), or of `dir` if it is a file. */
function times(path: string): number[] {
  if (!existsSync(path)) return [];
  if (statSync(path).isFile()) return [statSync(path).mtimeMs];
  return readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => statSync(join(entry.parentPath, entry.name)).mtimeMs);
}

/** What dist/ is built from: a change to any of these makes dist/ stale. */
const inputs = ['src', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];

/**
 * Whether dist/ is missing or older than something it is built from. Many tests run the
 * package as users get it (examples, the browser client, the packed tarball), through dist/.
 */
export function distIsStale(): boolean {
  const built = times(join(root, 'dist'));
  if (built.length === 0) return true;
  return Math.max(...inputs.flatMap((input) => times(join(root, input)))) > Math.min(...built);
}

/**
 * Vitest's global setup: builds dist/ (`npm run build`) once before any test file runs, when it
 * is stale, so neither `npm test` on a fresh clone nor a run after editing src/ tests an old build.
 */
export default function setup(): void {
  if (!distIsStale()) return;
  console.log('dist/ is missing or stale: npm run build');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
}
