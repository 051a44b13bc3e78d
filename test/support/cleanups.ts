/** What the client test files share: cleanups run after each test, and bounded waiting. */
import { afterEach } from 'vitest';

/**
 * A list of cleanups that runs, last first, after each test of the file that calls it (call it
 * at the top level of the file).
 */
export function useCleanups(): (() => Promise<void> | void)[] {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  return cleanups;
}

/** Waits until `check` holds, failing after `ms`. */
export async function until(check: () => boolean, ms = 3000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A promise that resolves after `ms`. */
export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
