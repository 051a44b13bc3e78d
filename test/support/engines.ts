import type { Engine, MemoryEngine } from '../../src/index.js';

/**
 * A MemoryEngine seen through the required part of the engine contract only: no synchronous
 * `readNow` and no text of the messages (`Batch.json`), as an engine whose history lives
 * elsewhere (RedisEngine) behaves.
 */
export function requiredOnly(inner: MemoryEngine): Engine {
  return {
    attach: (listener) => inner.attach(listener),
    append: (channel, json) => inner.append(channel, json),
    read: async (channel, cursor, limit) => {
      const { messages, cursor: next } = await inner.read(channel, cursor, limit);
      return { messages, cursor: next };
    },
    checkCursor: (channel, cursor) => inner.checkCursor(channel, cursor),
    retains: (channel) => inner.retains(channel),
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
}
