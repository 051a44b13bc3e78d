import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './redis-server.js';
import { stopProcess } from './child-process.js';

/** The shared PostgreSQL the tests use (trust auth on 127.0.0.1), or `PG_TEST_URL`. */
export const SHARED_URL = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Where initdb and postgres live. */
function binDir(): string | undefined {
  const found = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const dir = found.status === 0 ? found.stdout.trim() : undefined;
  return dir && existsSync(join(dir, 'initdb')) ? dir : undefined;
}

function missing(what: string): boolean {
  if (process.env.CI === 'true') throw new Error(`${what} is required under CI=true (.ci/run starts it)`);
  console.warn(`\n!!! ${what} not found: SKIPPING the PostgreSQL tests. !!!\n`);
  return false;
}

/**
 * Whether the shared PostgreSQL answers. Locally its absence skips the tests loudly; under
 * CI=true it is a failure, so a CI run never passes by skipping.
 */
export function postgresAvailable(): boolean {
  const found = spawnSync('psql', [SHARED_URL, '-Atc', 'SELECT 1'], { encoding: 'utf8', timeout: 5_000 });
  return found.status === 0 && found.stdout.trim() === '1' ? true : missing(`PostgreSQL at ${SHARED_URL}`);
}

/** Whether a private PostgreSQL can be started: initdb is installed, and we can run it as `postgres` if we are root. */
export function privatePostgresAvailable(): boolean {
  if (!binDir()) return missing('initdb (pg_config --bindir)');
  if (userInfo().uid === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return missing('the postgres OS user');
  return true;
}

/** Drops every table and function a prefix owns. */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS ${prefix}_messages, ${prefix}_channels, ${prefix}_settings CASCADE`);
    const { rows } = await client.query<{ signature: string }>(
      `SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = current_schema() AND p.proname LIKE $1`,
      [`${prefix}\\_%`],
    );
    for (const { signature } of rows) await client.query(`DROP FUNCTION IF EXISTS ${signature} CASCADE`);
  } finally {
    await client.end();
  }
}

/** A PostgreSQL of our own, on 127.0.0.1, in a temporary directory. */
export interface PostgresServer {
  readonly port: number;
  /** A connection string to its `postgres` database. */
  readonly url: string;
  /** Kills the postmaster (SIGKILL by default) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and directory (crash recovery replays the WAL). */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** initdb in a temporary directory and starts `postgres` there, with fsync on, as a child of this process. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  if (!bin) throw new Error('initdb not found');
  const asRoot = userInfo().uid === 0;
  const ids = asRoot
    ? { uid: Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout), gid: Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout) }
    : {};
  const dir = mkdtempSync(join(tmpdir(), 'longpoll-pg-'));
  if (asRoot) chownSync(dir, ids.uid!, ids.gid!);
  const data = join(dir, 'data');
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], { ...ids, encoding: 'utf8', cwd: dir });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr}`);
  }
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;

  async function launch(): Promise<void> {
    // After a SIGKILL the old backends take a moment to notice and exit; until then the new
    // postmaster refuses to start, so it is started again until it answers (10 s at most).
    const deadline = Date.now() + 15_000;
    let failure = '';
    while (Date.now() < deadline) {
      const started = spawn(
        join(bin!, 'postgres'),
        ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=on', '-c', 'synchronous_commit=on'],
        { ...ids, stdio: ['ignore', 'ignore', 'pipe'], cwd: dir },
      );
      child = started;
      started.stderr?.on('data', (chunk: Buffer) => (failure += chunk.toString()));
      const until = Math.min(deadline, Date.now() + 5_000);
      while (Date.now() < until && started.exitCode === null) {
        if (await answers(url)) return;
        await sleep(50);
      }
      if (started.exitCode === null) {
        started.kill('SIGKILL');
        break;
      }
      await sleep(200);
    }
    throw new Error(`postgres did not answer on port ${port}: ${failure.slice(-2_000)}`);
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
    port,
    url,
    kill,
    restart: launch,
    async stop() {
      await kill('SIGKILL');
      // The backends a SIGKILLed postmaster leaves exit by themselves once they notice.
      await sleep(100);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
