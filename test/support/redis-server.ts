import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopProcess } from './child-process.js';

const BINARY = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path)) ?? 'redis-server';

/**
 * Whether the Redis tests can run. Locally a missing redis-server skips them loudly; under
 * CI=true it is a failure, so a CI run never passes by skipping.
 */
export function redisAvailable(): boolean {
  const found = spawnSync(BINARY, ['--version'], { stdio: 'ignore' }).status === 0;
  if (found) return true;
  if (process.env.CI === 'true') throw new Error('redis-server is required under CI=true (.ci/run installs it)');
  console.warn('\n!!! redis-server not found: SKIPPING the Redis tests. Install redis-server to run them. !!!\n');
  return false;
}

/** Options of {@link startRedis}. */
export interface RedisServerOptions {
  /** Append-only file with `appendfsync always`, so a SIGKILL loses no acknowledged write. */
  appendonly?: boolean;
}

/** A redis-server of our own, on 127.0.0.1, in a temporary directory. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Kills the process (SIGKILL by default) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and directory, so an AOF is replayed. */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/** Starts redis-server on `port` (a free one by default) and waits, at most 10 s, until it answers. */
export async function startRedis(port?: number, options: RedisServerOptions = {}): Promise<RedisServer> {
  const chosen = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'longpoll-redis-'));
  const args = ['--port', String(chosen), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--loglevel', 'warning'];
  if (options.appendonly) args.push('--appendonly', 'yes', '--appendfsync', 'always');
  let child: ChildProcess | undefined;

  async function launch(): Promise<void> {
    const started = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    let failure = '';
    started.stderr?.on('data', (chunk: Buffer) => (failure += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (started.exitCode !== null) throw new Error(`redis-server exited with ${started.exitCode}: ${failure}`);
      if (await answersPing(chosen)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    started.kill('SIGKILL');
    throw new Error(`redis-server did not answer on port ${chosen} within 10 s: ${failure}`);
  }

  async function kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const running = child;
    child = undefined;
    await stopProcess(running, signal);
  }

  try {
    await launch();
  } catch (error) {
    await kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    kill,
    restart: launch,
    async stop() {
      await kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
