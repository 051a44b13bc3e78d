import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, LongPollError } from 'longpoll-kit';
import { RedisEngine } from 'longpoll-kit/redis';
import { redisAvailable, startRedis, type RedisServer } from '../support/redis-server.js';

const PREFIX = `engine-${process.pid}:`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check()) && Date.now() < deadline) await sleep(10);
  expect(await check()).toBe(true);
}

describe.runIf(redisAvailable())('RedisEngine', () => {
  let server: RedisServer;
  const clients: Redis[] = [];
  const brokers: Broker[] = [];

  /** A client with the options the README recommends. */
  function client(): Redis {
    const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    redis.on('error', () => {}); // outages are what these tests cause
    clients.push(redis);
    return redis;
  }

  async function ready(redis: Redis): Promise<Redis> {
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    return redis;
  }

  function broker(redis: Redis): Broker {
    const made = new Broker({ engine: new RedisEngine({ redis, prefix: PREFIX }) });
    brokers.push(made);
    return made;
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

  it('lets every key it writes expire: reads of unknown channels leave little behind for long', async () => {
    const redis = await ready(client());
    const engine = new RedisEngine({ redis, prefix: PREFIX, maxAge: 60_000 });
    const [history, meta] = [`${PREFIX}{ttl}:history`, `${PREFIX}{ttl}:meta`];
    await engine.read('ttl', undefined, 10);
    expect(await redis.exists(history)).toBe(0);
    const afterRead = await redis.pttl(meta);
    expect(afterRead).toBeGreaterThan(0);
    expect(afterRead).toBeLessThanOrEqual(600_000);
    await engine.append('ttl', '1');
    expect(await redis.pttl(history)).toBeGreaterThan(50_000);
    expect(await redis.pttl(history)).toBeLessThanOrEqual(60_000);
    expect(await redis.pttl(meta)).toBeGreaterThan(86_400_000);
    await engine.read('ttl', undefined, 10); // a read never shortens it
    expect(await redis.pttl(meta)).toBeGreaterThan(86_400_000);
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
    const before = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]);
    const engine = new RedisEngine({ redis, prefix: PREFIX });
    engine.attach({ appended: () => {}, resync: () => {}, evicted: () => {} });
    await eventually(async () => Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]) === before + 1);
    await engine.close();
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

  it('reads every channel with held polls again after the subscriber reconnects', async () => {
    const redis = await ready(client());
    const b = broker(redis);
    const other = await ready(client());
    const { cursor } = await b.read('resync');
    const held = b.poll('resync', { cursor, wait: 10_000 });
    await eventually(() => b.stats().waiters === 1);
    await server.kill('SIGKILL');
    await server.restart();
    await ready(other);
    // Published the moment Redis is back, perhaps before b listens again: the resync finds it.
    await new RedisEngine({ redis: other, prefix: PREFIX }).append('resync', JSON.stringify('after'));
    const result = await held;
    expect(result.messages.map((m) => m.data)).toEqual(['after']);
  });
});
