import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, LongPollError } from '../../src/index.js';
import { PostgresEngine } from '../../src/postgres/index.js';
import { dropPrefix, postgresAvailable, privatePostgresAvailable, SHARED_URL, startPostgres, type PostgresServer } from '../support/postgres-server.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A pool that survives its server going away (pg emits `error` for idle clients). */
function poolOf(url: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 1_000 });
  pool.on('error', () => {});
  return pool;
}

/**
 * Follows `channel` on `broker` from its start until `stop()`: polls with a long wait (so a lost
 * wake-up shows as a message that arrives late), retries 503s, and after a 410 resumes from the
 * earliest cursor, noting it.
 */
function follow(broker: Broker, channel: string) {
  const seen: number[] = [];
  let resets = 0;
  let running = true;
  const done = (async () => {
    let cursor = (await broker.read(channel)).cursor;
    while (running) {
      try {
        const result = await broker.poll(channel, { cursor, wait: 20_000, signal: AbortSignal.timeout(30_000) });
        seen.push(...result.messages.map((m) => m.data as number));
        cursor = result.cursor;
      } catch (error) {
        if (error instanceof LongPollError && error.code === 'cursor_expired') {
          resets++;
          cursor = error.earliestCursor!;
        } else await sleep(50);
      }
    }
  })();
  return {
    seen,
    get resets() {
      return resets;
    },
    async stop() {
      running = false;
      await broker.close();
      await done.catch(() => {});
    },
  };
}

/** Waits, at most `ms`, until `check` holds. */
async function eventually(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await sleep(20);
}

describe.runIf(postgresAvailable())('PostgresEngine: the listening connection killed under load', () => {
  const PREFIX = `faults_${process.pid}`;
  const NAME = `lp_listen_${process.pid}`;
  let pool: pg.Pool;

  beforeAll(async () => {
    pool = poolOf(SHARED_URL, 20);
    await new PostgresEngine({ pool, prefix: PREFIX }).migrate();
  });

  afterAll(async () => {
    await pool.end();
    await dropPrefix(SHARED_URL, PREFIX);
  });

  it('loses no wake-up: after each reconnect the held polls read again, and every message arrives once, in order', async () => {
    const errors: Error[] = [];
    const follower = new Broker({
      engine: new PostgresEngine({ pool, prefix: PREFIX, listen: { connectionString: SHARED_URL, application_name: NAME } }),
    });
    follower.on('error', (error) => errors.push(error));
    const publisher = new Broker({ engine: new PostgresEngine({ pool, prefix: PREFIX }) });
    const channels = Array.from({ length: 5 }, (_, i) => `load-${Date.now()}-${i}`);
    const followers = channels.map((channel) => follow(follower, channel));
    await sleep(300);
    let kills = 0;
    let publishing = true;
    const killer = (async () => {
      while (publishing) {
        await sleep(150);
        const { rowCount } = await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [NAME]);
        kills += rowCount ?? 0;
      }
    })();
    const counts = channels.map(() => 0);
    const until = Date.now() + 2_500;
    await Promise.all(
      channels.map(async (channel, c) => {
        while (Date.now() < until) {
          await publisher.publish(channel, counts[c]!);
          counts[c]!++;
          await sleep(5);
        }
      }),
    );
    publishing = false;
    await killer;
    // Held polls wait 20 s: only a wake-up (or the re-read after a reconnect) answers them in time.
    await eventually(() => followers.every((f, c) => f.seen.length >= counts[c]!), 5_000);
    await Promise.all(followers.map((f) => f.stop()));
    await publisher.close();
    expect(kills).toBeGreaterThan(3);
    expect(errors.length).toBeGreaterThan(0); // each outage reported (code unavailable)
    expect(errors.every((error) => (error as LongPollError).code === 'unavailable')).toBe(true);
    followers.forEach((f, c) => {
      expect(f.resets).toBe(0);
      expect(f.seen).toEqual(Array.from({ length: counts[c]! }, (_, n) => n));
    });
  });
});

describe.runIf(privatePostgresAvailable())('PostgresEngine: its PostgreSQL SIGKILLed under load and restarted', () => {
  const PREFIX = 'crash';
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgres();
    const pool = poolOf(server.url, 2);
    await new PostgresEngine({ pool, prefix: PREFIX }).migrate();
    await pool.end();
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('delivers every acknowledged publish once and in order (or answers 410), and never acknowledges a publish it did not commit', async () => {
    const [followerPool, publisherPool] = [poolOf(server.url), poolOf(server.url)];
    const follower = new Broker({ engine: new PostgresEngine({ pool: followerPool, prefix: PREFIX, timeout: 1_000 }) });
    follower.on('error', () => {});
    const publisher = new Broker({ engine: new PostgresEngine({ pool: publisherPool, prefix: PREFIX, timeout: 1_000 }) });
    publisher.on('error', () => {});
    const channel = `crash-${Date.now()}`;
    const followed = follow(follower, channel);
    await sleep(300);
    const acknowledged: number[] = [];
    const refusals = new Set<string>();
    let n = 0;
    const until = Date.now() + 4_000;
    const crash = (async () => {
      await sleep(1_000);
      await server.kill('SIGKILL');
      await sleep(500);
      await server.restart();
    })();
    while (Date.now() < until) {
      const value = n++;
      try {
        await publisher.publish(channel, value);
        acknowledged.push(value);
      } catch (error) {
        refusals.add(error instanceof LongPollError ? error.code : String(error));
        await sleep(20);
      }
    }
    await crash;
    // Publish once more after the restart, so the end is known to be reachable.
    for (let tries = 0; tries < 100; tries++) {
      const value = n++;
      try {
        await publisher.publish(channel, value);
        acknowledged.push(value);
        break;
      } catch {
        await sleep(100);
      }
    }
    const last = acknowledged[acknowledged.length - 1]!;
    await eventually(() => followed.seen.includes(last), 10_000);
    await followed.stop();
    await publisher.close();
    await Promise.all([followerPool.end(), publisherPool.end()]);

    expect([...refusals]).toEqual(['unavailable']); // there was an outage, and only 503s
    const seen = followed.seen;
    expect(seen).toEqual([...seen].sort((x, y) => x - y)); // in order…
    expect(new Set(seen).size).toBe(seen.length); // …once
    // Every acknowledged publish arrived, unless a 410 told the follower to rehydrate.
    if (followed.resets === 0) expect(acknowledged.filter((value) => !seen.includes(value))).toEqual([]);
    else expect(seen).toContain(last);
  }, 60_000);
});
