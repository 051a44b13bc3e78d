/**
 * An event stream on one channel stays held after an answer that read its channel to the end
 * (`PollTicket.keeps`): the broker moves its poll to the batch's cursor and starts its wait over.
 * What must still hold: every message once and in order, a ping only after `heartbeat` ms without
 * a message, nothing written while the transport is full, and the end of `maxStream` on time
 * however busy the channel.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, MemoryEngine, type Engine } from '../../src/index.js';
import { requiredOnly } from '../support/engines.js';
import { EventStream, type StreamSettings } from '../../src/http/sse.js';

const brokers: Broker<unknown>[] = [];
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A stream on `room` whose sink records what it is given, and takes it while `open`. */
function streamOf(settings: Partial<StreamSettings>, limit = 100, engine?: Engine) {
  const broker = new Broker<unknown>({ engine });
  brokers.push(broker);
  const full: StreamSettings = { heartbeat: 60_000, maxStream: 3_600_000, retry: 2000, sendTimeout: 30_000, firstMessage: 'newest', ...settings };
  const stream = new EventStream(broker, 'room', undefined, limit, full, full.heartbeat);
  const sink = {
    open: true,
    ended: false,
    texts: [] as string[],
    send(chunk: Uint8Array) {
      sink.texts.push(new TextDecoder().decode(chunk));
      return sink.open;
    },
    end() {
      sink.ended = true;
    },
    destroy() {},
  };
  stream.open(() => stream.attach(sink));
  const data = () => sink.texts.join('').match(/^data: .*$/gm)?.map((line) => (JSON.parse(line.slice(6)) as { data: unknown }).data) ?? [];
  const pings = () => sink.texts.filter((text) => text === ': ping\n\n').length;
  return { broker, stream, sink, data, pings };
}

describe('EventStream: kept held between publishes', () => {
  it('stays held across publishes, with no turn of the event loop between them, and writes each message once in order', async () => {
    const { broker, data } = streamOf({});
    await tick();
    expect(broker.stats().waiters).toBe(1);
    for (let i = 0; i < 5; i++) {
      await broker.publish('room', i);
      expect(broker.stats().waiters).toBe(1);
    }
    expect(data()).toEqual([0, 1, 2, 3, 4]);
  });

  it('sends a ping only after a heartbeat without a message, however long messages keep coming', async () => {
    const { broker, pings } = streamOf({ heartbeat: 250 });
    await tick();
    // Messages every 80 ms for 800 ms: no heartbeat of silence, no ping.
    for (let i = 0; i < 10; i++) {
      await sleep(80);
      await broker.publish('room', i);
    }
    expect(pings()).toBe(0);
    await sleep(400);
    expect(pings()).toBeGreaterThanOrEqual(1);
  });

  it('writes nothing while the transport is full, then everything published meanwhile, once and in order', async () => {
    const { broker, stream, sink, data } = streamOf({});
    await tick();
    sink.open = false;
    await broker.publish('room', 0);
    const written = sink.texts.length;
    expect(broker.stats().waiters).toBe(0);
    for (let i = 1; i <= 3; i++) await broker.publish('room', i);
    expect(sink.texts.length).toBe(written);
    sink.open = true;
    stream.drained();
    await tick();
    expect(data()).toEqual([0, 1, 2, 3]);
    expect(broker.stats().waiters).toBe(1);
  });

  it('ends at maxStream on a channel that never goes quiet', async () => {
    const { broker, sink } = streamOf({ heartbeat: 200, maxStream: 600 });
    await tick();
    const started = Date.now();
    while (!sink.ended && Date.now() - started < 2_000) {
      await broker.publish('room', 'busy');
      await sleep(40);
    }
    expect(sink.ended).toBe(true);
    // maxStream less up to an eighth, and the poll's wait that ends with it.
    expect(Date.now() - started).toBeLessThan(600 + 150);
    expect(broker.stats().waiters).toBe(0);
  });

  it('polls again, not kept, when an answer fills its limit: the rest comes at once', async () => {
    // An engine that reads asynchronously: a burst of publishes lands before the drain reads.
    const { broker, data } = streamOf({}, 2, requiredOnly(new MemoryEngine()));
    await sleep(10);
    // Three messages in one synchronous burst: the first answer takes two, and the third must
    // follow without another publish.
    void broker.publish('room', 0);
    void broker.publish('room', 1);
    void broker.publish('room', 2);
    await sleep(20);
    expect(data()).toEqual([0, 1, 2]);
  });
});
