/**
 * Event streams poll again after writing a publish's events on the next turn of the event loop, once every stream
 * the publish woke has written (`EventStream.again`, src/http/sse.ts), against polling again
 * right after each write. What is timed is the publish itself, which writes every stream's
 * events: how long the last of 1,000 streams waits for its bytes. The streams write into sinks
 * that keep nothing, so only the library's own work is timed; each publish is followed by a turn
 * of the event loop in which the streams poll again, untimed, in both variants. The streams read
 * with `limit: 1`, so that each answer fills the limit and the stream polls again: a stream whose
 * answer did not is left held by the broker instead (bench/micro/stream-keep.js).
 */
import { Broker } from '../../dist/index.js';
import { EventStream } from '../../dist/http/sse.js';
import { median, report } from './harness.js';

const STREAMS = 1000;
const ROUNDS = 15;
const PUBLISHES = 20;

/** Polls again at once, as streams did before. */
class AtOnce extends EventStream {
  again() {
    this.pollNow();
  }
}

const settings = { heartbeat: 60_000, maxStream: 3_600_000, retry: 2000, sendTimeout: 30_000, firstMessage: 'newest' };
let written = 0;

/** A broker with STREAMS open streams of `Stream` on one channel. */
async function setUp(Stream) {
  const broker = new Broker();
  for (let i = 0; i < STREAMS; i++) {
    const stream = new Stream(broker, 'room', undefined, 1, settings, settings.heartbeat);
    stream.open(() => stream.attach({ send: (chunk) => ((written += chunk.byteLength), true), end() {}, destroy() {} }));
  }
  while (broker.stats().waiters < STREAMS) await new Promise((resolve) => setImmediate(resolve));
  return broker;
}

/** ns per stream of the publishes that wake all of them, timed until the last has written. */
async function timeOf(broker) {
  let total = 0n;
  for (let i = 0; i < PUBLISHES; i++) {
    const start = process.hrtime.bigint();
    void broker.publish('room', { text: 'hello', i });
    total += process.hrtime.bigint() - start;
    while (broker.stats().waiters < STREAMS) await new Promise((resolve) => setImmediate(resolve));
  }
  return Number(total) / PUBLISHES / STREAMS;
}

const production = await setUp(EventStream);
const alternative = await setUp(AtOnce);
await timeOf(production);
await timeOf(alternative);
const times = { production: [], alternative: [] };
const ratios = [];
for (let round = 0; round < ROUNDS; round++) {
  const first = round % 2 === 0;
  const a = await timeOf(first ? production : alternative);
  const b = await timeOf(first ? alternative : production);
  const [p, q] = first ? [a, b] : [b, a];
  times.production.push(p);
  times.alternative.push(q);
  ratios.push(q / p);
}
report({
  title: `a publish written to ${STREAMS} event streams, until the last has its bytes`,
  production: { name: 'poll again on the next turn, after every stream has written', ns: median(times.production) },
  alternative: { name: 'poll again right after each write', ns: median(times.alternative) },
  ratio: median(ratios),
  rounds: ROUNDS,
});
console.log(`(checksum ${written})`);
await production.close();
await alternative.close();
