/**
 * The Redis engine: history in Redis Streams, shared by many instances behind a load balancer.
 * `ioredis` is an optional peer dependency: you create the client and pass it in.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { Broker } from 'longpoll-kit';
 * import { RedisEngine } from 'longpoll-kit/redis';
 *
 * const redis = new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
 * const broker = new Broker({ engine: new RedisEngine({ redis }) });
 * ```
 *
 * @packageDocumentation
 * @module longpoll-kit/redis
 */
export { RedisEngine, type RedisEngineOptions } from './redis-engine.js';
