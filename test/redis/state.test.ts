import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'longpoll-kit';
import { RedisEngine } from 'longpoll-kit/redis';
import { ioredisMajors, type IoredisMajor, type Redis } from '../support/ioredis.js';
import { freePort, redisAvailable, startRedis, type RedisServer } from '../support/redis-server.js';
import { rejection } from '../support/expect-error.js';

const PREFIX = 'state:';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function ready(redis: Redis): Promise<Redis> {
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis;
}


/** Engines on one redis-server, each on a client of its own (as separate instances have). */
function instances(Redis: IoredisMajor['Redis'], url: () => string) {
  const clients: Redis[] = [];
  const engines: RedisEngine[] = [];
  return {
    /** An engine, attached to a listener that ignores everything unless `broker` will attach it. */
    async engine(options: { capacity?: number; broker?: boolean } = {}): Promise<RedisEngine> {
      const redis = new Redis(url(), { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
      redis.on('error', () => {}); // restarts are what these tests cause
      clients.push(redis);
      await ready(redis);
      const engine = new RedisEngine({ redis, prefix: PREFIX, capacity: options.capacity });
      if (!options.broker) engine.attach({ appended: () => {}, resync: () => {}, evicted: () => {} });
      engines.push(engine);
      return engine;
    },
    close() {
      for (const engine of engines.splice(0)) void engine.close();
      for (const redis of clients.splice(0)) redis.disconnect();
    },
  };
}

/** Waits, at most 5 s, until reading `cursor` fails: once an instance that outlived the change has reconnected. */
async function untilExpired(engine: RedisEngine, channel: string, cursor: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && (await engine.read(channel, cursor, 10).then(() => true, () => false))) await sleep(20);
}

const data = (batch: { messages: readonly { data: unknown }[] }) => batch.messages.map((m) => m.data);

describe.runIf(redisAvailable()).each(ioredisMajors)('RedisEngine: what reads leave in Redis, with $name', ({ Redis }) => {
  let server: RedisServer;
  let admin: Redis;
  const made = instances(Redis, () => server.url);

  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.url);
  });

  afterEach(async () => {
    made.close();
    await admin.flushall();
  });

  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  it('writes nothing per channel when 1,000 unknown channels are read, polled and asked for their tail', async () => {
    const engine = await made.engine({ broker: true });
    const b = new Broker({ engine });
    try {
      await b.read('warm-up'); // the engine-wide key, once
      const engineWide = await admin.dbsize();
      expect(engineWide).toBeLessThanOrEqual(1);
      for (let n = 0; n < 1_000; n++) {
        const channel = `unknown-${n}`;
        const { cursor } = await b.read(channel);
        b.checkCursor(channel, cursor);
        const polled = await b.poll(channel, { cursor, wait: 0 });
        expect(polled).toMatchObject({ messages: [], timedOut: true });
        await b.poll(channel, { cursor: polled.cursor, wait: 0 });
        const tail = await engine.tail(channel);
        expect(await engine.read(channel, tail, 10)).toMatchObject({ messages: [] });
      }
      expect(await admin.dbsize()).toBe(engineWide);
    } finally {
      await b.close();
    }
  });

  it('delivers the first messages published after a read of a channel without history, through any instance', async () => {
    const [reader, writer] = [await made.engine(), await made.engine()];
    const { cursor } = await reader.read('first', undefined, 10);
    await writer.append('first', JSON.stringify('one'));
    await writer.append('first', JSON.stringify('two'));
    const batch = await reader.read('first', cursor, 10);
    expect(data(batch)).toEqual(['one', 'two']);
    expect(data(await reader.read('first', batch.cursor, 10))).toEqual([]);
  });

  it('expires a cursor of a channel without history after a FLUSHALL, even once the channel has messages again', async () => {
    const { cursor } = await (await made.engine()).read('flushed', undefined, 10);
    await admin.flushall();
    const after = await made.engine();
    await after.append('flushed', JSON.stringify('after the flush'));
    const error = await rejection(after.read('flushed', cursor, 10));
    expect(error.code).toBe('cursor_expired');
    expect(data(await after.read('flushed', error.earliestCursor, 10))).toEqual(['after the flush']);
  });

  it('expires a cursor of a channel without history when messages published after it were trimmed', async () => {
    const engine = await made.engine({ capacity: 2 });
    const { cursor } = await engine.read('trimmed', undefined, 10);
    for (const n of [1, 2, 3]) await engine.append('trimmed', String(n));
    const error = await rejection(engine.read('trimmed', cursor, 10));
    expect(error.code).toBe('cursor_expired');
    expect(data(await engine.read('trimmed', error.earliestCursor, 10))).toEqual([2, 3]);
  });

  it('expires a cursor of a channel without history when its stream was deleted and created again since', async () => {
    const engine = await made.engine();
    const { cursor } = await engine.read('deleted', undefined, 10);
    await engine.append('deleted', JSON.stringify('lost'));
    await admin.del(`${PREFIX}{deleted}:history`);
    await engine.append('deleted', JSON.stringify('new'));
    const error = await rejection(engine.read('deleted', cursor, 10));
    expect(error.code).toBe('cursor_expired');
    expect(data(await engine.read('deleted', error.earliestCursor, 10))).toEqual(['new']);
  });

  it('expires the cursors of a channel whose keys were both deleted, new messages or not', async () => {
    const engine = await made.engine();
    const seen = await engine.append('both-deleted', JSON.stringify('seen'));
    await admin.del(`${PREFIX}{both-deleted}:history`, `${PREFIX}{both-deleted}:meta`);
    expect((await rejection(engine.read('both-deleted', seen.cursor, 10))).code).toBe('cursor_expired');
    await engine.append('both-deleted', JSON.stringify('new'));
    const error = await rejection(engine.read('both-deleted', seen.cursor, 10));
    expect(error.code).toBe('cursor_expired');
    expect(data(await engine.read('both-deleted', error.earliestCursor, 10))).toEqual(['new']);
  });

  it('expires a cursor of a channel without history that is older than a channel’s keys could live', async () => {
    const engine = await made.engine();
    const { cursor } = await engine.read('old', undefined, 10);
    const [epoch, tag, at] = cursor.split('.');
    const dayOld = `${epoch}.${tag}.${Number(at!.split('-')[0]) - 86_400_000}-0`;
    expect((await rejection(engine.read('old', dayOld, 10))).code).toBe('cursor_expired');
    await engine.append('old', JSON.stringify('x'));
    expect((await rejection(engine.read('old', dayOld, 10))).code).toBe('cursor_expired');
    expect(data(await engine.read('old', cursor, 10))).toEqual(['x']);
  });
});

describe.runIf(redisAvailable()).each(ioredisMajors)('RedisEngine after a Redis restart, with $name', ({ Redis }) => {
  let server: RedisServer;
  const made = instances(Redis, () => server.url);

  beforeAll(async () => {
    server = await startRedis(); // no AOF; SAVE writes the RDB it restarts from
  });

  afterEach(() => made.close());

  afterAll(async () => {
    await server?.stop();
  });

  /** Kills redis-server and starts it again from whatever it saved last. */
  async function restart(): Promise<void> {
    await server.kill('SIGKILL');
    await server.restart();
  }

  it('restarted without losing anything: every cursor keeps working, with no cursor_expired', async () => {
    const admin = await ready(new Redis(server.url));
    const survivor = await made.engine();
    const seen = await survivor.append('kept', JSON.stringify('seen'));
    const { cursor: nothingYet } = await survivor.read('kept-2', undefined, 10);
    await admin.save(); // the RDB holds everything: as if every write had been fsynced
    admin.disconnect();
    await restart();
    const fresh = await made.engine();
    // The survivor's first command after it reconnects checks: it saw nothing Redis lacks.
    for (let answered = false; !answered; ) answered = await survivor.read('kept-probe', undefined, 1).then(() => true, () => sleep(20).then(() => false));
    await fresh.append('kept', JSON.stringify('new'));
    await fresh.append('kept-2', JSON.stringify('new'));
    expect(data(await fresh.read('kept', seen.cursor, 10))).toEqual(['new']);
    expect(data(await fresh.read('kept-2', nothingYet, 10))).toEqual(['new']);
    expect(data(await survivor.read('kept', seen.cursor, 10))).toEqual(['new']);
  });

  it('restarted empty: expires every cursor, of channels with and without history', async () => {
    const before = await made.engine();
    const seen = await before.append('empty-restart', JSON.stringify('seen'));
    const { cursor: nothingYet } = await before.read('empty-restart-2', undefined, 10);
    made.close(); // no instance outlives the restart: only the cursors can tell
    const admin = await ready(new Redis(server.url));
    await admin.flushall(); // the RDB a restart would load is empty
    await admin.save();
    admin.disconnect();
    await restart();
    const after = await made.engine();
    await after.append('empty-restart', JSON.stringify('new'));
    await after.append('empty-restart-2', JSON.stringify('new'));
    for (const [channel, cursor] of [['empty-restart', seen.cursor], ['empty-restart-2', nothingYet]] as const) {
      const error = await rejection(after.read(channel, cursor, 10));
      expect(error.code).toBe('cursor_expired');
      expect(data(await after.read(channel, error.earliestCursor, 10))).toEqual(['new']);
    }
  });

  it('restarted from an older snapshot: a cursor ahead of the stream’s last entry gets cursor_expired at once, not a wait', async () => {
    const admin = await ready(new Redis(server.url));
    const before = await made.engine();
    await before.append('rollback', JSON.stringify('saved'));
    await admin.save();
    admin.disconnect();
    const lost = await before.append('rollback', JSON.stringify('lost'));
    made.close();
    await restart();
    const engine = await made.engine({ broker: true });
    const b = new Broker({ engine });
    try {
      const started = performance.now();
      const error = await rejection(b.poll('rollback', { cursor: lost.cursor, wait: 5_000 }));
      expect(error.code).toBe('cursor_expired');
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(data(await b.read('rollback', { cursor: error.earliestCursor }))).toEqual(['saved']);
    } finally {
      await b.close();
    }
  });

  it('restarted from an older snapshot: an instance that outlived the restart expires every cursor issued before, even after new publishes', async () => {
    const admin = await ready(new Redis(server.url));
    const survivor = await made.engine();
    const saved = await survivor.append('rollback-a', JSON.stringify('saved'));
    await admin.save();
    // After the snapshot: a message that the restart loses, and a cursor of a channel read
    // while it had no history, whose first message the restart loses too.
    await survivor.append('rollback-a', JSON.stringify('lost'));
    const { cursor: nothingYet } = await survivor.read('rollback-b', undefined, 10);
    await survivor.append('rollback-b', JSON.stringify('lost'));
    admin.disconnect();
    await restart();
    const fresh = await made.engine(); // a new instance, which knows nothing of before
    await untilExpired(fresh, 'rollback-a', saved.cursor); // the survivor reconnects and checks
    await fresh.append('rollback-a', JSON.stringify('new'));
    await fresh.append('rollback-b', JSON.stringify('new'));
    for (const [channel, cursor] of [['rollback-a', saved.cursor], ['rollback-b', nothingYet]] as const) {
      const error = await rejection(fresh.read(channel, cursor, 10));
      expect(error.code).toBe('cursor_expired');
      expect(data(await fresh.read(channel, error.earliestCursor, 10))).toContain('new');
    }
  });
});

describe.runIf(redisAvailable()).each(ioredisMajors)('RedisEngine when its connections cannot open, with $name', ({ Redis }) => {
  it('answers unavailable (503) while Redis is not there, and serves and wakes polls once it is', async () => {
    const port = await freePort();
    const made = instances(Redis, () => `redis://127.0.0.1:${port}`);
    const redis = new Redis(`redis://127.0.0.1:${port}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    redis.on('error', () => {});
    const b = new Broker({ engine: new RedisEngine({ redis, prefix: PREFIX }) });
    const errors: Error[] = [];
    b.on('error', (error) => errors.push(error));
    let late: RedisServer | undefined;
    try {
      await expect(b.publish('late', 'early')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
      await expect(b.read('late')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
      await sleep(200); // the connections keep failing to open
      expect(errors).toHaveLength(1); // the listening connection's outage, reported once
      expect(errors[0]).toMatchObject({ code: 'unavailable' });
      late = await startRedis(port);
      await ready(redis);
      const admin = await ready(new Redis(late.url));
      try {
        // The listening connection is back too: a publish through another instance wakes a held poll.
        const listening = async () => ((await admin.pubsub('NUMSUB', `${PREFIX}appended`)) as [string, number])[1];
        for (const deadline = Date.now() + 5_000; (await listening()) !== 1 && Date.now() < deadline; ) await sleep(20);
        expect(await listening()).toBe(1);
        const { cursor } = await b.read('late');
        const held = b.poll('late', { cursor, wait: 5_000 });
        await sleep(50);
        const other = await made.engine();
        await other.append('late', JSON.stringify('hello'));
        expect(data(await held)).toEqual(['hello']);
        expect(data(await b.publish('late', 'again').then(() => b.read('late', { cursor })))).toEqual(['hello', 'again']);
      } finally {
        admin.disconnect();
      }
    } finally {
      await b.close();
      made.close();
      redis.disconnect();
      await late?.stop();
    }
  });
});

/** A TCP proxy on 127.0.0.1 whose target can be switched, as a failover moves the primary. */
async function proxy(target: number): Promise<{ port: number; switchTo(port: number): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    switchTo(port) {
      target = port;
      for (const socket of sockets) socket.destroy(); // the old primary's connections drop
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe.runIf(redisAvailable()).each(ioredisMajors)('RedisEngine after a failover to a replica that lagged, with $name', ({ Redis }) => {
  it('expires every cursor issued before when an instance that saw the lost appends is still running', async () => {
    const [primary, replica] = [await startRedis(), await startRedis()];
    const front = await proxy(primary.port);
    const made = instances(Redis, () => `redis://127.0.0.1:${front.port}`);
    const admin = await ready(new Redis(replica.url));
    try {
      const survivor = await made.engine();
      const saved = await survivor.append('failover', JSON.stringify('replicated'));
      const primaryAdmin = await ready(new Redis(primary.url));
      await primaryAdmin.config('SET', 'repl-diskless-sync-delay', '0'); // sync at once, not after 5 s
      primaryAdmin.disconnect();
      await admin.replicaof('127.0.0.1', primary.port);
      for (const deadline = Date.now() + 5_000; !/master_link_status:up/.test(await admin.info('replication')) && Date.now() < deadline; ) await sleep(20);
      expect(await admin.info('replication')).toMatch(/master_link_status:up/);
      await admin.replicaof('NO', 'ONE'); // from here on the replica lags behind
      await survivor.append('failover', JSON.stringify('lost'));
      front.switchTo(replica.port); // promoted
      const fresh = await made.engine(); // a new instance, which knows nothing of before
      await untilExpired(fresh, 'failover', saved.cursor); // the survivor reconnects and checks
      await fresh.append('failover', JSON.stringify('new'));
      const error = await rejection(fresh.read('failover', saved.cursor, 10));
      expect(error.code).toBe('cursor_expired');
      expect(data(await fresh.read('failover', error.earliestCursor, 10))).toEqual(['new']);
    } finally {
      made.close();
      admin.disconnect();
      await front.close();
      await Promise.all([primary.stop(), replica.stop()]);
    }
  });
});
