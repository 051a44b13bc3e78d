// Run by test/memory-engine-heap.test.ts in a process of its own, as
// `node --expose-gc --import <typescript hooks> memory-engine-heap.ts <scenario>`, so that the
// heap it measures holds nothing but this engine and garbage collection is real. Prints one line
// of JSON.
import { Broker } from '../../src/broker.js';
import { MemoryEngine } from '../../src/memory-engine.js';

declare const gc: () => void;

const MiB = 1024 * 1024;
const CHANNELS = 500;

/** Heap plus array buffers after full collections. */
function used(): number {
  for (let i = 0; i < 3; i++) gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

/** Payloads of 1 to 10 KB, as JSON: a chat message with a long text. */
function payload(n: number): { user: string; n: number; text: string } {
  const size = 1_000 + ((n * 7_919) % 9_000);
  return { user: `user${n % 97}`, n, text: `${n}`.padEnd(size, 'lorem ipsum ') };
}

/**
 * Reads every channel once, as subscribers that poll over HTTP do: the answer's text is encoded
 * for the socket, then let go.
 */
async function readAll(engine: MemoryEngine): Promise<void> {
  for (let c = 0; c < CHANNELS; c++) {
    const batch = engine.readNow(`room:${c}`, undefined, 1000);
    Buffer.from(batch.json ?? JSON.stringify(batch.messages));
  }
}

const scenario = process.argv[2];
if (scenario === 'churn') {
  // One old message, then one channel pushing out messages by capacity behind it: the
  // engine's list of messages in publish order must not keep the departed ones.
  const engine = new MemoryEngine({ capacity: 10, maxAge: Number.POSITIVE_INFINITY });
  const broker = new Broker({ engine });
  await broker.publish('quiet', 'the oldest message');
  for (let n = 0; n < 2_000; n++) await broker.publish('busy', n);
  const before = used();
  for (let n = 0; n < 200_000; n++) await broker.publish('busy', n);
  console.log(JSON.stringify({ scenario, messages: engine.stats().messages, publishGrowth: used() - before }));
  process.exit(0);
}
if (scenario === 'channels') {
  // Many channels of one small message each, each read at its head as a held poll reads it (the
  // read that finds nothing after the message): what the engine counts against maxBytes per
  // channel must cover what the channel holds.
  const engine = new MemoryEngine({ maxAge: Number.POSITIVE_INFINITY });
  for (let n = 0; n < 100; n++) engine.readNow(`warm-up:${n % 10}`, (await engine.append(`warm-up:${n % 10}`, '1')).cursor, 100);
  const counted = engine.stats().bytes;
  const before = used();
  for (let n = 0; n < 20_000; n++) {
    const channel = `room:${String(n).padStart(5, '0')}`;
    engine.readNow(channel, (await engine.append(channel, '1')).cursor, 100);
  }
  const publishGrowth = used() - before;
  console.log(JSON.stringify({ scenario, messages: engine.stats().messages, counted: engine.stats().bytes - counted, publishGrowth }));
  process.exit(0);
}
const maxBytes = 8 * MiB;
const engine = new MemoryEngine(scenario === 'publish' ? ({ maxBytes }) : {});
const broker = new Broker({ engine });
// Warm up the code paths, then start from an empty history.
for (let n = 0; n < 200; n++) await broker.publish('warm-up', payload(n));
await broker.read('warm-up');

let published = 0;
let n = 0;
const before = used();
const target = scenario === 'publish' ? 3 * maxBytes : 8 * MiB;
while (published < target) {
  const data = payload(n);
  await broker.publish(`room:${n % CHANNELS}`, data);
  published += JSON.stringify(data).length;
  n++;
  if (scenario === 'publish' && n % 2_000 === 0) await readAll(engine);
}
const afterPublish = used();
await readAll(engine);
const afterRead = used();
console.log(
  JSON.stringify({
    scenario,
    maxBytes,
    published,
    messages: engine.stats().messages,
    publishGrowth: afterPublish - before,
    readGrowth: afterRead - afterPublish,
  }),
);
await broker.close();
