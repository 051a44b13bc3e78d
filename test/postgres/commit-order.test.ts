import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresEngine } from '../../src/postgres/index.js';
import { dropPrefix, postgresAvailable, SHARED_URL } from '../support/postgres-server.js';

const PREFIX = `order_${process.pid}`;
const NAIVE = `naive_${process.pid}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A way to store a channel's messages: how to publish on a client, how a follower reads on. */
interface Design {
  publish(client: pg.ClientBase | pg.Pool, channel: string, data: string): Promise<unknown>;
  /** Messages after `cursor` (undefined: from the start) and the next cursor. */
  read(channel: string, cursor: string | undefined): Promise<{ data: string[]; cursor: string | undefined }>;
}

/**
 * A slow transaction publishes first, sleeps, then commits, while three other connections
 * publish on the same channel and a follower keeps reading from its cursor. Returns what the
 * follower saw.
 */
async function slowTransaction(pool: pg.Pool, design: Design, channel: string): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | undefined = (await design.read(channel, undefined)).cursor;
  let following = true;
  const follower = (async () => {
    while (following) {
      const batch = await design.read(channel, cursor);
      seen.push(...batch.data);
      cursor = batch.cursor;
      await sleep(10);
    }
  })();
  const slow = await pool.connect();
  try {
    await slow.query('BEGIN');
    await design.publish(slow, channel, 'slow');
    // The others commit (or wait for the slow one) while it is open.
    const fast = Promise.all(['fast-1', 'fast-2', 'fast-3'].map((data) => design.publish(pool, channel, data)));
    await sleep(400); // the follower reads many times meanwhile
    await slow.query('COMMIT');
    await fast;
  } finally {
    slow.release();
  }
  await sleep(200);
  following = false;
  await follower;
  seen.push(...(await design.read(channel, cursor)).data);
  return seen;
}

describe.runIf(postgresAvailable())('commit order is cursor order', () => {
  let pool: pg.Pool;
  let engine: PostgresEngine;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: SHARED_URL, max: 8 });
    engine = new PostgresEngine({ pool, prefix: PREFIX });
    await engine.migrate();
    await pool.query(`CREATE TABLE ${NAIVE}_messages (id bigserial PRIMARY KEY, channel text NOT NULL, data json NOT NULL)`);
  });

  afterAll(async () => {
    await pool.query(`DROP TABLE IF EXISTS ${NAIVE}_messages`);
    await pool.end();
    await dropPrefix(SHARED_URL, PREFIX);
  });

  const engineDesign = (): Design => ({
    publish: (client, channel, data) => engine.publishWith(client, channel, data),
    async read(channel, cursor) {
      const batch = await engine.read(channel, cursor, 100);
      return { data: batch.messages.map((m) => m.data as string), cursor: batch.cursor };
    },
  });

  /** The trap: ids from a sequence, handed out at insert, visible at commit. */
  const naiveDesign = (): Design => ({
    publish: (client, channel, data) => client.query(`INSERT INTO ${NAIVE}_messages (channel, data) VALUES ($1, $2::json)`, [channel, JSON.stringify(data)]),
    async read(channel, cursor) {
      const { rows } = await pool.query<{ id: string; data: string }>(`SELECT id, data FROM ${NAIVE}_messages WHERE channel = $1 AND id > $2 ORDER BY id`, [
        channel,
        cursor ?? '0',
      ]);
      return { data: rows.map((row) => row.data), cursor: rows.length > 0 ? rows[rows.length - 1]!.id : cursor };
    },
  });

  it('never lets a follower skip a message whose transaction commits after later publishes were attempted', async () => {
    const seen = await slowTransaction(pool, engineDesign(), `order-${Date.now()}`);
    // Each exactly once; the slow one first, since it took its position first.
    expect([...seen].sort()).toEqual(['fast-1', 'fast-2', 'fast-3', 'slow']);
    expect(seen[0]).toBe('slow');
  });

  it('(the same scenario on a bigserial table loses the slow message: the test sees the trap)', async () => {
    const seen = await slowTransaction(pool, naiveDesign(), `naive-${Date.now()}`);
    expect([...seen].sort()).toEqual(['fast-1', 'fast-2', 'fast-3']);
  });
});
