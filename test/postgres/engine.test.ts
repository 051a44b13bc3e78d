import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { migrationSql, PostgresEngine } from '../../src/postgres/index.js';
import { dropPrefix, postgresAvailable, SHARED_URL } from '../support/postgres-server.js';
import { rejection } from '../support/expect-error.js';

const PREFIX = `engine_${process.pid}`;
let serial = 0;
const channel = () => `room-${Date.now().toString(36)}-${++serial}`;


describe.runIf(postgresAvailable())('PostgresEngine', () => {
  let pool: pg.Pool;
  const brokers: Broker[] = [];
  /** A broker on an engine of its own, as one instance would have. */
  const instance = () => {
    const broker = new Broker({ engine: new PostgresEngine({ pool, prefix: PREFIX }) });
    brokers.push(broker);
    return broker;
  };

  beforeAll(async () => {
    // Each engine keeps one of the pool's connections to LISTEN.
    pool = new pg.Pool({ connectionString: SHARED_URL, max: 30 });
    // Several instances migrating at once take turns.
    await Promise.all([1, 2, 3].map(() => new PostgresEngine({ pool, prefix: PREFIX }).migrate()));
  });

  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.close()));
    await pool.end();
    await dropPrefix(SHARED_URL, PREFIX);
  });

  it('emits error when no NOTIFY reaches its listening connection (a listen that is not the pool\'s database, as behind PgBouncer)', async () => {
    // The listening connection is on another database: LISTEN succeeds, nothing ever arrives.
    const listen = SHARED_URL.replace(/\/[^/]*$/, '/postgres');
    const broker = new Broker({ engine: new PostgresEngine({ pool, prefix: PREFIX, listen, timeout: 500 }) });
    brokers.push(broker);
    const errors: Error[] = [];
    broker.on('error', (error) => errors.push(error));
    await broker.read(channel());
    const deadline = Date.now() + 5_000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(errors.map((error) => error.message).join('\n')).toMatch(/No NOTIFY reached the listening connection/);
  });

  it('emits no such error when NOTIFY arrives', async () => {
    const broker = new Broker({ engine: new PostgresEngine({ pool, prefix: PREFIX, timeout: 500 }) });
    brokers.push(broker);
    const errors: Error[] = [];
    broker.on('error', (error) => errors.push(error));
    await broker.read(channel());
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(errors).toEqual([]);
  });

  describe('publishing inside the application transaction', () => {
    it('delivers a message published in a transaction that commits, and wakes a poll held on another instance', async () => {
      const engine = new PostgresEngine({ pool, prefix: PREFIX });
      const a = new Broker({ engine });
      brokers.push(a);
      const b = instance();
      const room = channel();
      const { cursor } = await b.read(room);
      const held = b.poll(room, { cursor, wait: 10_000 });
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const published = await engine.publishWith(client, room, { state: 'done' });
        // Not visible before the commit.
        expect((await a.read(room)).messages).toEqual([]);
        await client.query('COMMIT');
        const result = await held;
        expect(result.messages.map((m) => [m.id, m.data])).toEqual([[published.id, { state: 'done' }]]);
      } finally {
        client.release();
      }
    });

    it('leaves no message and wakes nobody when the transaction rolls back, and loses no position', async () => {
      const engine = new PostgresEngine({ pool, prefix: PREFIX });
      const b = instance();
      const room = channel();
      const first = await b.publish(room, 'before');
      const held = b.poll(room, { cursor: first.cursor, wait: 1_000 });
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await engine.publishWith(client, room, 'rolled back');
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      const result = await held;
      expect(result.timedOut).toBe(true);
      expect(result.messages).toEqual([]);
      await b.publish(room, 'after');
      // The cursor from before the rollback resumes with no gap and no 410.
      expect((await b.read(room, { cursor: result.cursor })).messages.map((m) => m.data)).toEqual(['after']);
      expect((await b.read(room)).messages.map((m) => m.data)).toEqual(['before', 'after']);
    });

    it('publishes from SQL with <prefix>_publish, returning the id subscribers receive, by the recorded capacity', async () => {
      const b = instance();
      const room = channel();
      const { cursor } = await b.read(room);
      const held = b.poll(room, { cursor, wait: 10_000 });
      const { rows } = await pool.query<{ id: string }>(`SELECT ${PREFIX}_publish($1, $2::jsonb) AS id`, [room, '{"n":1}']);
      const result = await held;
      expect(result.messages.map((m) => [m.id, m.data])).toEqual([[rows[0]!.id, { n: 1 }]]);
    });

    it('refuses a payload JSON cannot carry with invalid_payload, before it touches the database', async () => {
      const engine = new PostgresEngine({ pool, prefix: PREFIX });
      expect((await rejection(engine.publishWith(pool, channel(), 10n))).code).toBe('invalid_payload');
    });
  });

  describe('a history lost behind the engine', () => {
    it('answers cursor_expired after TRUNCATE of the messages table alone', async () => {
      const b = instance();
      const room = channel();
      const seen = await b.publish(room, 'seen');
      await b.publish(room, 'missed');
      await pool.query(`TRUNCATE ${PREFIX}_messages`);
      await b.publish(room, 'new');
      const error = await rejection(b.read(room, { cursor: seen.cursor }));
      expect(error.code).toBe('cursor_expired');
      expect((await b.read(room, { cursor: error.earliestCursor })).messages.map((m) => m.data)).toEqual(['new']);
    });

    it('answers cursor_expired after TRUNCATE of both tables, also to a cursor read while the channel had no history', async () => {
      const b = instance();
      const room = channel();
      const empty = await b.read(room);
      const seen = await b.publish(room, 'seen');
      await b.publish(room, 'missed');
      await pool.query(`TRUNCATE ${PREFIX}_messages, ${PREFIX}_channels`);
      await b.publish(room, 'new');
      for (const cursor of [seen.cursor, empty.cursor]) {
        const error = await rejection(b.read(room, { cursor }));
        expect(error.code).toBe('cursor_expired');
        expect((await b.read(room, { cursor: error.earliestCursor })).messages.map((m) => m.data)).toEqual(['new']);
      }
    });

    it('does not answer cursor_expired to a reader that had everything before the truncate', async () => {
      const b = instance();
      const room = channel();
      await b.publish(room, 'seen');
      const last = await b.publish(room, 'also seen');
      await pool.query(`TRUNCATE ${PREFIX}_messages`);
      await b.publish(room, 'new');
      expect((await b.read(room, { cursor: last.cursor })).messages.map((m) => m.data)).toEqual(['new']);
    });
  });

  describe('reads', () => {
    it('inserts nothing when it reads or polls a channel that has no history', async () => {
      const b = instance();
      const count = async () => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${PREFIX}_channels`)).rows[0]!.n);
      const before = await count();
      for (let i = 0; i < 20; i++) await b.poll(channel(), { wait: 0 });
      expect(await count()).toBe(before);
    });

    it('trims by capacity through the channel row, and the migration is idempotent', async () => {
      const engine = new PostgresEngine({ pool, prefix: PREFIX, capacity: 5 });
      const b = new Broker({ engine });
      brokers.push(b);
      const room = channel();
      for (let i = 0; i < 12; i++) await b.publish(room, i);
      expect((await b.read(room)).messages.map((m) => m.data)).toEqual([7, 8, 9, 10, 11]);
      const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${PREFIX}_messages WHERE channel = $1`, [room]);
      expect(Number(rows[0]!.n)).toBe(5);
      const client = await pool.connect();
      try {
        await client.query(`BEGIN; ${migrationSql(PREFIX)} COMMIT;`);
      } finally {
        client.release();
      }
      expect((await b.read(room)).messages.map((m) => m.data)).toEqual([7, 8, 9, 10, 11]);
    });
  });

  describe('errors', () => {
    it('answers 503 unavailable, never a success, when the database cannot be reached', async () => {
      const dead = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/test', connectionTimeoutMillis: 500 });
      const broker = new Broker({ engine: new PostgresEngine({ pool: dead, prefix: PREFIX, timeout: 1_000 }) });
      try {
        for (const operation of [broker.publish('x', 1), broker.read('x')]) {
          const error = await rejection(operation);
          expect(error.code).toBe('unavailable');
          expect(error.status).toBe(503);
        }
      } finally {
        await broker.close();
        await dead.end();
      }
    });

    it('answers 503 unavailable when a statement misses its deadline', async () => {
      const broker = new Broker({ engine: new PostgresEngine({ pool, prefix: PREFIX, timeout: 500 }) });
      brokers.push(broker);
      const room = channel();
      await instance().publish(room, 'first');
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(`SELECT 1 FROM ${PREFIX}_channels WHERE channel = $1 FOR UPDATE`, [room]); // the row lock a publish waits for
        const error = await rejection(broker.publish(room, 'blocked'));
        expect(error.code).toBe('unavailable');
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    });

    it('refuses bad options with invalid_option', () => {
      for (const options of [{ pool: undefined }, { pool, prefix: 'Bad-Prefix' }, { pool, capacity: 0 }, { pool, timeout: -1 }]) {
        expect(() => new PostgresEngine(options as never)).toThrow(expect.objectContaining({ code: 'invalid_option' }));
      }
    });
  });
});
