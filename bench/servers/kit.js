import { createServer } from 'node:http';
import { Broker } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/node';

/**
 * longpoll-kit as its README mounts it on node:http: a Broker (MemoryEngine, default history)
 * and the Node adapter under /channels. No ConnectionLimiter: the load generator is one client
 * address, and the default cap of 6 polls per client would (rightly) refuse it.
 */
export function start() {
  const broker = new Broker();
  const server = createServer(longPoll(broker, { prefix: '/channels' }));
  return {
    server,
    held: () => broker.stats().waiters,
    /** @param {unknown} data */
    publish: (data) => broker.publish('bench', /** @type {import('longpoll-kit').JsonValue} */ (data)),
    /** Publishes on another channel (bench/many.js publishes on every channel of its clients). @param {string} channel @param {unknown} data */
    publishOn: (channel, data) => broker.publish(channel, /** @type {import('longpoll-kit').JsonValue} */ (data)),
  };
}
