import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresEngine } from '../../src/postgres/index.js';
import { poll, publish } from '../redis/http-client.js';
import { dropPrefix, postgresAvailable, SHARED_URL } from '../support/postgres-server.js';

const PREFIX = `instances_${process.pid}`;

/** Starts test/support/postgres-instance.mjs (on dist/) and resolves with its base URL. */
function startInstance(children: ChildProcess[]): Promise<URL> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../support/postgres-instance.mjs', import.meta.url))], {
    env: { ...process.env, DATABASE_URL: SHARED_URL, PREFIX },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the instance did not start within 10 s')), 10_000);
    child.stdout.on('data', (chunk: Buffer) => {
      const port = /listening (\d+)/.exec(chunk.toString())?.[1];
      if (port) {
        clearTimeout(timer);
        resolve(new URL(`http://127.0.0.1:${port}/channels/`));
      }
    });
    child.once('exit', (code) => reject(new Error(`the instance exited with ${code}`)));
  });
}

describe.runIf(postgresAvailable())('PostgresEngine: several instances (processes) on one database', () => {
  const children: ChildProcess[] = [];
  let bases: URL[];

  beforeAll(async () => {
    const pool = new pg.Pool({ connectionString: SHARED_URL, max: 2 });
    await new PostgresEngine({ pool, prefix: PREFIX }).migrate();
    await pool.end();
    bases = await Promise.all([1, 2, 3].map(() => startInstance(children)));
  }, 30_000);

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await dropPrefix(SHARED_URL, PREFIX);
  });

  it('serves a follower that hops between instances every message once, in order, while publishes land on all of them', async () => {
    const channel = `hop-${Date.now()}`;
    const total = 150;
    const seen: number[] = [];
    const following = (async () => {
      let cursor: string | undefined;
      for (let hop = 0; seen.length < total && hop < 2_000; hop++) {
        const answer = await poll(bases[hop % bases.length]!, channel, { cursor, wait: 5 });
        expect(answer.status).toBeLessThan(300);
        seen.push(...(answer.body.messages ?? []).map((m) => m.data as number));
        cursor = answer.body.cursor ?? cursor;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let n = 0; n < total; n++) {
      const answer = await publish(bases[(n * 7) % bases.length]!, channel, n);
      expect(answer.status).toBe(201);
    }
    await following;
    expect(seen).toEqual(Array.from({ length: total }, (_, n) => n));
  });
});
