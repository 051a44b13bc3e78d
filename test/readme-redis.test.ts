import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from 'longpoll-kit';
import type { Redis } from 'ioredis';
import { redisAvailable, startRedis, type RedisServer } from './support/redis-server.js';

/** The README's Redis block, as written. */
async function redisBlock(): Promise<string> {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const block = /<!-- test\/readme-redis\.test\.ts runs this block[^>]*-->\n```ts\n([\s\S]*?)\n```/.exec(readme)?.[1];
  expect(block, 'the README block').toBeDefined();
  return block!;
}

describe.runIf(redisAvailable())('the README’s Redis block', () => {
  let server: RedisServer;
  let made: { broker: Broker; redis: Redis } | undefined;

  beforeAll(async () => {
    server = await startRedis();
  });

  afterAll(async () => {
    await made?.broker.close();
    made?.redis.disconnect();
    await server?.stop();
  });

  it('runs as written with REDIS_URL set, and its broker publishes at once and serves polls', async () => {
    // The block as written, then its first publish right away (what failed while the client
    // was not awaited: "Stream isn't writeable and enableOfflineQueue options is false").
    const code = `${await redisBlock()}\nawait broker.publish('room:1', { text: 'first' });\nexport { broker, redis };\n`;
    const file = new URL('./.tmp/readme-redis.ts', import.meta.url);
    await mkdir(new URL('.', file), { recursive: true });
    await writeFile(file, code);
    process.env.REDIS_URL = server.url;
    try {
      made = (await import(/* @vite-ignore */ file.href)) as { broker: Broker; redis: Redis };
    } finally {
      delete process.env.REDIS_URL;
    }
    const { broker, redis } = made;
    expect(await redis.xlen('lp:{room:1}:history')).toBe(1);
    const { messages, cursor } = await broker.read('room:1');
    expect(messages.map((m) => m.data)).toEqual([{ text: 'first' }]);
    const held = broker.poll('room:1', { cursor, wait: 5_000 });
    await broker.publish('room:1', { text: 'second' });
    expect((await held).messages.map((m) => m.data)).toEqual([{ text: 'second' }]);
  });
});
