import type { ChildProcess } from 'node:child_process';

/**
 * Stops a server process the tests started: sends `signal`, waits for it to exit, and SIGKILLs
 * it if it has not exited 5 s later. Nothing happens if it is gone already.
 */
export async function stopProcess(running: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!running || running.exitCode !== null || running.signalCode !== null) return;
  const exited = new Promise((resolve) => running.once('exit', resolve));
  running.kill(signal);
  const timer = setTimeout(() => running.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
