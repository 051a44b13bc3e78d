/**
 * Waking polls over many channels (`Broker#wakeMany`, broker.ts; `readMany`, read-many.ts). With
 * an engine that reads synchronously (MemoryEngine), a publish on one channel answers every
 * many-channel poll held on it with one read of that channel per position, and `readMany` reads
 * without a promise per channel. Against the same MemoryEngine behind a wrapper that offers only
 * the required members (no `readNow`): each woken poll reads all its channels again, each read a
 * promise. 200 polls of 10 channels out of 40 (a different list each), each publish waking a
 * quarter of them, which re-poll at once, as HTTP clients do.
 */
import { Broker, MemoryEngine } from '../../dist/index.js';
import { compareAsync } from './harness.js';
import { manyPolls } from './many-polls.js';

/** MemoryEngine without its optional members. */
function requiredOnly(inner) {
  return {
    attach: (listener) => inner.attach(listener),
    append: (channel, json) => inner.append(channel, json),
    read: (channel, cursor, limit) => inner.read(channel, cursor, limit),
    retains: (channel) => inner.retains(channel),
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
}

/**
 * A broker on `engine` with the shared many-channel polls (many-polls.js). They ask `limit: 1`,
 * so that each one-message answer fills the limit and no answered poll is parked for its re-poll
 * (many-park.js measures that): every re-poll reads, in both variants.
 */
async function setUp(engine) {
  const broker = new Broker({ engine });
  return { broker, run: await manyPolls(broker, 1) };
}

const fast = await setUp(new MemoryEngine());
const slow = await setUp(requiredOnly(new MemoryEngine()));
await compareAsync(
  '200 polls of 10 channels, a publish waking 50 of them, which re-poll',
  { name: 'readNow: one read per channel and position, no promise per read', run: (n) => fast.run(n) },
  { name: 'read only: each woken poll reads all its channels, a promise per read', run: (n) => slow.run(n) },
  { n: 40 },
);
await fast.broker.close();
await slow.broker.close();
