import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

/** A running example: its process and the first URL it printed. */
export interface RunningExample {
  readonly child: ChildProcess;
  readonly url: URL;
  stop(): Promise<void>;
}

/**
 * Starts `node <script>` with PORT=0 and waits (bounded) for it to print a URL. The process is
 * killed by `stop()`, and after `timeoutMs` if it never printed one.
 */
export async function startExample(script: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 10_000): Promise<RunningExample> {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<URL>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} printed no URL within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /https?:\/\/[^\s'"]+/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(new URL(match[0]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}:\n${output}`));
    });
  }).catch(async (error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  return {
    child,
    url,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
