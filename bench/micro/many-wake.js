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

const CHANNELS = 40;
const POLLS = 200;

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

/** A broker with POLLS re-polling many-channel polls; `run(n)` publishes n times. */
async function setUp(engine) {
  const broker = new Broker({ engine });
  const channel = (i) => `room.${i}`;
  let answers = 0;
  const loop = async (list) => {
    let cursor;
    for (;;) {
      const result = await broker.pollMany(list, { cursor, wait: 60_000 }).catch(() => undefined);
      if (!result) return;
      cursor = result.cursor;
      answers++;
    }
  };
  for (let p = 0; p < POLLS; p++) void loop(Array.from({ length: 10 }, (_, k) => channel((p + k * 4) % CHANNELS)));
  while (broker.stats().waiters < POLLS) await new Promise((resolve) => setTimeout(resolve, 5));
  let next = 0;
  return {
    broker,
    async run(n) {
      const before = answers;
      for (let i = 0; i < n; i++) {
        const target = answers + POLLS / 4;
        await broker.publish(channel(next++ % CHANNELS), { text: 'hello' });
        // Until every woken poll has its answer and is held again.
        while (answers < target || broker.stats().waiters < POLLS) await new Promise((resolve) => setImmediate(resolve));
      }
      return answers - before;
    },
  };
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
