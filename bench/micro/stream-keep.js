/**
 * An event stream on one channel stays held after an answer that read its channel to the end
 * (`PollTicket.keeps`, `EventStream`; the Broker's drain moves the held poll to the batch's
 * cursor): the next publish answers it again, with no poll to read and hold on the next turn.
 * Against streams that read with `limit: 1`, whose one-message answers fill the limit, so the
 * broker takes each poll off and the stream polls again on the next turn, as every stream did
 * before. Timed: the CPU of each publish to 1,000 streams and of the turns until every stream is
 * held again. The streams write into sinks that keep nothing, so only the library's own work is
 * timed.
 */
import { Broker } from '../../dist/index.js';
import { EventStream } from '../../dist/http/sse.js';
import { compareAsync } from './harness.js';

const STREAMS = 1000;
const settings = { heartbeat: 60_000, maxStream: 3_600_000, retry: 2000, sendTimeout: 30_000, firstMessage: 'newest' };
let written = 0;

/** A broker with STREAMS open streams reading up to `limit` on one channel; `run(n)` publishes n times. */
async function setUp(limit) {
  const broker = new Broker();
  for (let i = 0; i < STREAMS; i++) {
    const stream = new EventStream(broker, 'room', undefined, limit, settings, settings.heartbeat);
    stream.open(() => stream.attach({ send: (chunk) => ((written += chunk.byteLength), true), end() {}, destroy() {} }));
  }
  const heldAgain = async () => {
    while (broker.stats().waiters < STREAMS) await new Promise((resolve) => setImmediate(resolve));
  };
  await heldAgain();
  return {
    broker,
    async run(n) {
      const before = written;
      for (let i = 0; i < n; i++) {
        await broker.publish('room', { text: 'hello', i });
        await heldAgain();
      }
      return written - before;
    },
  };
}

const kept = await setUp(100);
const repolled = await setUp(1);
await compareAsync(
  `a publish written to ${STREAMS} event streams, and the streams held again`,
  { name: 'kept: each stream stays held at the cursor it wrote', run: (n) => kept.run(n) },
  { name: 'polled again (limit 1): taken off, a poll each on the next turn', run: (n) => repolled.run(n) },
  { n: 20 },
);
await kept.broker.close();
await repolled.broker.close();
