import type { RunningExample } from '../support/example-process.js';

/**
 * Waits for every start; if any failed, stops the ones that did start (so no process outlives
 * the suite) and throws the first failure.
 */
export async function startAll(starting: Promise<RunningExample>[]): Promise<RunningExample[]> {
  const settled = await Promise.allSettled(starting);
  const started = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((instance) => instance.stop()));
    throw failed.reason;
  }
  return started;
}
