import { afterAll, beforeAll, describe } from 'vitest';
import { RedisEngine } from 'longpoll-kit/redis';
import { ioredisMajors, type Redis } from '../support/ioredis.js';
import { redisAvailable, startRedis, type RedisServer } from '../support/redis-server.js';
import { engineContract, type EngineFixture } from './contract.js';

const PREFIX = `contract-${process.pid}:`;

describe.runIf(redisAvailable()).each(ioredisMajors)('RedisEngine on a redis-server of its own, with $name', ({ Redis }) => {
  let server: RedisServer;
  let admin: Redis;
  const clients: Redis[] = [];

  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.url, { enableOfflineQueue: true, maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    admin?.disconnect();
    await server?.stop();
  });

  const fixture: EngineFixture = {
    engine(options) {
      // The user's client: one per engine, as separate instances would have.
      const redis = new Redis(server.url, { maxRetriesPerRequest: 0 });
      clients.push(redis);
      return new RedisEngine({ redis, prefix: PREFIX, ...options });
    },
    shared: true,
    async loseHistory() {
      const keys = await admin.keys(`${PREFIX}*`);
      if (keys.length > 0) await admin.del(...keys);
    },
    async deleteChannel(channel) {
      await admin.del(`${PREFIX}{${channel}}:history`);
    },
    async stored() {
      // Every key of the prefix, and the engine-wide hash's fields (the append count among them).
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await admin.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
        keys.push(...found);
        cursor = next;
      } while (cursor !== '0');
      keys.sort();
      return { dbsize: await admin.dbsize(), keys, engineWide: await admin.hgetall(`${PREFIX}epoch`) };
    },
  };

  engineContract('RedisEngine', fixture);
});
