import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, LongPollError } from 'longpoll-kit';
import { RedisEngine } from 'longpoll-kit/redis';
import { ioredisMajors, type Redis } from '../support/ioredis.js';
import { redisAvailable, startRedis, type RedisServer } from '../support/redis-server.js';

const PREFIX = `engine-${process.pid}:`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check()) && Date.now() < deadline) await sleep(10);
  expect(await check()).toBe(true);
}

describe.runIf(redisAvailable()).each(ioredisMajors)('RedisEngine with $name', ({ Redis, Cluster }) => {
  let server: RedisServer;
  const clients: Redis[] = [];
  const brokers: Broker[] = [];

  /** A client with the options the README recommends. */
  function client(retryStrategy: () => number | null = () => 50): Redis {
    const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy });
    redis.on('error', () => {}); // outages are what these tests cause
    clients.push(redis);
    return redis;
  }

  async function ready(redis: Redis): Promise<Redis> {
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    return redis;
  }

  function broker(redis: Redis, options: { timeout?: number } = {}): Broker {
    const made = new Broker({ engine: new RedisEngine({ redis, prefix: PREFIX, ...options }) });
    brokers.push(made);
    return made;
  }

  /** How many connections listen for notifications under this suite's prefix. */
  async function listeners(admin: Redis): Promise<number> {
    const [, count] = (await admin.pubsub('NUMSUB', `${PREFIX}appended`)) as [string, number];
    return count;
  }

  /** A broker holding one poll on `channel` (10 s wait), once its subscriber listens. */
  async function holding(redis: Redis, channel: string) {
    const b = broker(redis);
    const admin = await ready(client());
    await eventually(async () => (await listeners(admin)) === 1);
    const { cursor } = await b.read(channel);
    const started = performance.now();
    const held = b.poll(channel, { cursor, wait: 10_000 }).then(
      (result) => ({ result, after: performance.now() - started }),
      (error: unknown) => ({ error, after: performance.now() - started }),
    );
    await eventually(() => b.stats().waiters === 1);
    return { b, admin, held };
  }

  beforeAll(async () => {
    server = await startRedis(undefined, { appendonly: true });
  });

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
  });

  afterAll(async () => {
    for (const redis of clients) redis.disconnect();
    await server?.stop();
  });

  it('refuses bad options with invalid_option', async () => {
    const redis = client();
    for (const options of [{ redis, capacity: 0 }, { redis, maxAge: -1 }, { redis, prefix: 1 }, { redis, timeout: 0 }, { redis: {} }]) {
      expect(() => new RedisEngine(options as never)).toThrow(expect.objectContaining({ code: 'invalid_option' }));
    }
  });

  it('refuses a Redis Cluster client with invalid_option (not supported yet)', () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: server.port }], { lazyConnect: true });
    try {
      expect(() => new RedisEngine({ redis: cluster as never })).toThrow(expect.objectContaining({ code: 'invalid_option', message: expect.stringContaining('Cluster') }));
    } finally {
      cluster.disconnect();
    }
  });

  it('lets every key of a channel expire, and writes none for a channel that is only read', async () => {
    const redis = await ready(client());
    const engine = new RedisEngine({ redis, prefix: PREFIX, maxAge: 60_000 });
    const [history, meta] = [`${PREFIX}{ttl}:history`, `${PREFIX}{ttl}:meta`];
    const { cursor } = await engine.read('ttl', undefined, 10);
    expect(await redis.exists(history, meta)).toBe(0);
    await engine.append('ttl', '1');
    expect(await redis.pttl(history)).toBeGreaterThan(50_000);
    expect(await redis.pttl(history)).toBeLessThanOrEqual(60_000);
    expect(await redis.pttl(meta)).toBeGreaterThan(86_400_000);
    await engine.read('ttl', undefined, 10); // a read never shortens it
    expect(await redis.pttl(meta)).toBeGreaterThan(86_400_000);
    expect((await engine.read('ttl', cursor, 10)).messages.map((m) => m.data)).toEqual([1]);
  });

  it('wakes a poll held on one broker with a message published through another', async () => {
    const [a, b] = [broker(await ready(client())), broker(await ready(client()))];
    const { cursor } = await b.read('wake');
    const held = b.poll('wake', { cursor, wait: 5_000 });
    await sleep(100);
    await a.publish('wake', { text: 'hi' });
    const result = await held;
    expect(result.timedOut).toBe(false);
    expect(result.messages.map((m) => m.data)).toEqual([{ text: 'hi' }]);
  });

  it('closes the connection it opened and leaves the caller’s client open', async () => {
    const redis = await ready(client());
    const admin = await ready(client());
    const before = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]);
    const readyListeners = redis.listenerCount('ready');
    const engine = new RedisEngine({ redis, prefix: PREFIX });
    engine.attach({ appended: () => {}, resync: () => {}, evicted: () => {} });
    await eventually(async () => Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]) === before + 1);
    for (let n = 0; n < 5; n++) {
      await admin.client('KILL', 'ID', String(await redis.client('ID'))); // and reconnect
      await admin.client('KILL', 'TYPE', 'pubsub');
      await eventually(async () => (await listeners(admin)) === 1 && redis.status === 'ready');
    }
    expect(redis.listenerCount('ready')).toBe(readyListeners + 1); // one, however many reconnects
    await engine.close();
    expect(redis.listenerCount('ready')).toBe(readyListeners);
    await eventually(async () => Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]) === before);
    expect(await redis.ping()).toBe('PONG');
  });

  it('fails a publish with unavailable within a second while Redis is down, and stores nothing of it', async () => {
    const redis = await ready(client());
    const b = broker(redis);
    await b.publish('outage', 'before');
    await server.kill('SIGKILL');
    try {
      const started = Date.now();
      const error = await b.publish('outage', 'during').then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(LongPollError);
      expect(error).toMatchObject({ code: 'unavailable', status: 503 });
      expect(Date.now() - started).toBeLessThan(1_000);
      const read = await b.read('outage').catch((reason: unknown) => reason);
      expect(read).toMatchObject({ code: 'unavailable' });
    } finally {
      await server.restart();
    }
    await ready(redis);
    expect((await b.read('outage')).messages.map((m) => m.data)).toEqual(['before']);
  });

  it('bounds a command by `timeout` even when the client queues commands while offline', async () => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 }); // ioredis defaults: queue forever
    redis.on('error', () => {});
    clients.push(redis);
    await ready(redis);
    const engine = new RedisEngine({ redis, prefix: PREFIX, timeout: 300 });
    await server.kill('SIGKILL');
    try {
      const started = Date.now();
      await expect(engine.append('queued', '1')).rejects.toMatchObject({ code: 'unavailable' });
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      await server.restart();
      await engine.close();
    }
  });

  it('wakes a held poll with a message whose notification was lost while its subscriber reconnected', async () => {
    const redis = await ready(client(() => 300));
    const { admin, held } = await holding(redis, 'resync');
    const other = new RedisEngine({ redis: await ready(client()), prefix: PREFIX });
    // Kills only the engine's listening connection: the notification of this append is lost
    // for certain, and only the re-read after the reconnect can find the message.
    expect(Number(await admin.client('KILL', 'TYPE', 'pubsub'))).toBe(1);
    await other.append('resync', JSON.stringify('while deaf'));
    const answer = await held;
    expect(answer).toMatchObject({ result: { timedOut: false } });
    expect('result' in answer && answer.result.messages.map((m) => m.data)).toEqual(['while deaf']);
    expect(answer.after).toBeLessThan(3_000); // the wait was 10 s
  });

  it('reads again only once the caller’s client is back too, rather than answering held polls with 503', async () => {
    const redis = await ready(client(() => 400)); // back well after the engine's own connection
    const { admin, held } = await holding(redis, 'both');
    const other = new RedisEngine({ redis: await ready(client()), prefix: PREFIX });
    await admin.client('KILL', 'ID', String(await redis.client('ID')));
    await admin.client('KILL', 'TYPE', 'pubsub');
    await other.append('both', JSON.stringify('while both were down'));
    const answer = await held;
    expect(answer).not.toHaveProperty('error');
    expect('result' in answer && answer.result.messages.map((m) => m.data)).toEqual(['while both were down']);
    expect(answer.after).toBeLessThan(3_000);
  });

  it('keeps listening after an outage even when the caller’s client would give up reconnecting', async () => {
    const redis = await ready(client(() => null)); // ioredis: never reconnect
    const { admin, held } = await holding(redis, 'persistent');
    await admin.client('KILL', 'TYPE', 'pubsub');
    await eventually(async () => (await listeners(admin)) === 1);
    await new RedisEngine({ redis: admin, prefix: PREFIX }).append('persistent', JSON.stringify('later'));
    const answer = await held;
    expect('result' in answer && answer.result.messages.map((m) => m.data)).toEqual(['later']);
  });

  it('wakes this instance’s held polls when its own publish timed out but was stored', async () => {
    const redis = await ready(client());
    const b = broker(redis, { timeout: 400 });
    const admin = await ready(client());
    const { cursor } = await b.read('slow');
    const held = b.poll('slow', { cursor, wait: 8_000 });
    await eventually(() => b.stats().waiters === 1);
    await admin.client('PAUSE', 500, 'ALL'); // Redis runs the publish only after 500 ms
    const started = performance.now();
    await expect(b.publish('slow', 'late')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
    const result = await held;
    expect(result.messages.map((m) => m.data)).toEqual(['late']);
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('reports a lost listening connection once per outage through the broker’s error event', async () => {
    const b = broker(await ready(client()));
    const errors: Error[] = [];
    b.on('error', (error) => errors.push(error));
    const admin = await ready(client());
    await eventually(async () => (await listeners(admin)) === 1);
    await server.kill('SIGKILL');
    try {
      await sleep(600); // several failed reconnects
    } finally {
      await server.restart();
    }
    await eventually(async () => (await listeners(await ready(admin))) === 1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'unavailable' });
  });

  it('answers 500 internal when Redis refuses a command, and 503 when the refusal passes (OOM)', async () => {
    const redis = await ready(client());
    const engine = new RedisEngine({ redis, prefix: PREFIX });
    await redis.set(`${PREFIX}{wrongtype}:history`, 'not a stream');
    await expect(engine.append('wrongtype', '1')).rejects.toMatchObject({ code: 'internal', status: 500 });
    await redis.config('SET', 'maxmemory', '1');
    try {
      await expect(engine.append('full', '1')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
  });

  it('continues above a stream that survived the loss of its epoch hash, with cursor_expired for old cursors', async () => {
    const redis = await ready(client());
    const engine = new RedisEngine({ redis, prefix: PREFIX });
    const [history, meta] = [`${PREFIX}{survivor}:history`, `${PREFIX}{survivor}:meta`];
    const old = await engine.append('survivor', JSON.stringify('old'));
    // An entry ahead of Redis' clock (written by a server whose clock was ahead, say).
    await redis.xadd(history, `${Date.now() + 3_600_000}-0`, 'id', 'x', 'data', JSON.stringify('ahead'));
    await redis.del(meta); // eviction or a manual DEL
    await expect(engine.read('survivor', old.cursor, 10)).rejects.toMatchObject({ code: 'cursor_expired' });
    const { cursor } = await engine.read('survivor', undefined, 10);
    expect((await engine.read('survivor', cursor, 10)).messages).toEqual([]); // no 410 loop
    const next = await engine.append('survivor', JSON.stringify('new'));
    expect((await engine.read('survivor', cursor, 10)).messages.map((m) => m.data)).toEqual(['new']);
    expect((await engine.read('survivor', next.cursor, 10)).messages).toEqual([]);
  });

  it('trims to a smaller capacity in one append, and expires only cursors before the retained messages', async () => {
    const redis = await ready(client());
    const large = new RedisEngine({ redis, prefix: PREFIX, capacity: 100 });
    const published = [];
    for (let n = 0; n < 50; n++) published.push(await large.append('shrink', String(n)));
    const small = new RedisEngine({ redis, prefix: PREFIX, capacity: 10 });
    published.push(await small.append('shrink', '50'));
    const retained = await small.read('shrink', undefined, 100);
    expect(retained.messages.map((m) => m.data)).toEqual([41, 42, 43, 44, 45, 46, 47, 48, 49, 50]);
    await expect(small.read('shrink', published[20]!.cursor, 100)).rejects.toMatchObject({ code: 'cursor_expired' });
    const fromEarliest = await small.read('shrink', published[20]!.cursor, 100).catch((error: { earliestCursor: string }) => small.read('shrink', error.earliestCursor, 100));
    expect(fromEarliest.messages.map((m) => m.data)).toEqual([41, 42, 43, 44, 45, 46, 47, 48, 49, 50]);
    expect((await small.read('shrink', published[45]!.cursor, 100)).messages.map((m) => m.data)).toEqual([46, 47, 48, 49, 50]);
  });
});
