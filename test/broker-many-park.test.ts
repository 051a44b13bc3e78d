/**
 * Parked many-channel polls: a many-channel poll answered by a publish stays on its channels'
 * lists for a moment, under its answer's cursor, and the re-poll that comes back with that
 * cursor is held again without reading its channels. What must hold: nothing published in
 * between is lost or repeated, a re-poll that differs in anything reads as before, a parked poll
 * that nobody takes over goes away, and none of it shows as a held poll.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, LongPollError, MemoryEngine, type Batch, type Cursor, type PollResult } from '../src/index.js';
import { CountingEngine } from './support/engines.js';

const brokers: Broker<unknown>[] = [];
function setUp(): { broker: Broker<unknown>; engine: CountingEngine } {
  const engine = new CountingEngine({ capacity: 10_000 });
  const broker = new Broker<unknown>({ engine });
  brokers.push(broker);
  return { broker, engine };
}

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((made) => made.close()));
});

const data = (result: PollResult<unknown>) => result.messages.map((m) => `${m.channel}:${String(m.data)}`);
const tick = () => new Promise((resolve) => setImmediate(resolve));
const LIST = ['a', 'b', 'c'];

/** A held poll on LIST answered by a publish on `a`: its answer. */
async function answered(broker: Broker<unknown>): Promise<PollResult<unknown>> {
  const first = await broker.pollMany(LIST, { wait: 0 });
  const held = broker.pollMany(LIST, { cursor: first.cursor, wait: 5_000 });
  await tick();
  await broker.publish('a', 1);
  const answer = await held;
  expect(data(answer)).toEqual(['a:1']);
  return answer;
}

describe('Broker: parked many-channel polls', () => {
  it('holds a re-poll with its answer cursor again without a read, and answers it with the next publish', async () => {
    const { broker, engine } = setUp();
    const answer = await answered(broker);
    expect(broker.stats().waiters).toBe(0);
    const reads = engine.reads;
    const again = broker.pollMany(LIST, { cursor: answer.cursor, wait: 5_000 });
    await tick();
    expect(engine.reads).toBe(reads);
    expect(broker.stats().waiters).toBe(1);
    await broker.publish('c', 2);
    const next = await again;
    expect(data(next)).toEqual(['c:2']);
    // The next re-poll too: every channel's position moved exactly past what was delivered.
    await broker.publish('b', 3);
    await broker.publish('a', 4);
    expect(data(await broker.pollMany(LIST, { cursor: next.cursor, wait: 0 })).sort()).toEqual(['a:4', 'b:3']);
  });

  it.each(LIST)('loses nothing published on %s between the answer and the re-poll', async (channel) => {
    const { broker } = setUp();
    const answer = await answered(broker);
    await broker.publish(channel, 'between');
    expect(data(await broker.pollMany(LIST, { cursor: answer.cursor, wait: 5_000 }))).toEqual([`${channel}:between`]);
  });

  it('reads a re-poll that lists other channels, another order or another limit, and answers each rightly', async () => {
    for (const [list, options, channel] of [
      [['a', 'b'], {}, 'a'],
      [['c', 'b', 'a'], {}, 'a'],
      [['a', 'b', 'd'], {}, 'd'],
      [LIST, { limit: 5 }, 'a'],
    ] as const) {
      const { broker, engine } = setUp();
      const answer = await answered(broker);
      const reads = engine.reads;
      const again = broker.pollMany(list, { cursor: answer.cursor, wait: 5_000, ...options });
      await tick();
      expect(engine.reads).toBeGreaterThan(reads);
      await broker.publish(channel, 2);
      expect(data(await again)).toEqual([`${channel}:2`]);
    }
  });

  it('forgets a parked poll nobody took over after its grace period: the late re-poll reads, and gets what it must', async () => {
    const { broker, engine } = setUp();
    const answer = await answered(broker);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const reads = engine.reads;
    const again = broker.pollMany(LIST, { cursor: answer.cursor, wait: 5_000 });
    await tick();
    expect(engine.reads).toBe(reads + LIST.length);
    await broker.publish('b', 2);
    expect(data(await again)).toEqual(['b:2']);
  });

  it('takes over one parked poll per cursor: two clients answered alike both get the next publish once', async () => {
    const { broker } = setUp();
    const first = await broker.pollMany(LIST, { wait: 0 });
    const held = [0, 1].map(() => broker.pollMany(LIST, { cursor: first.cursor, wait: 5_000 }));
    await tick();
    await broker.publish('a', 1);
    const answers = await Promise.all(held);
    expect(answers[0]!.cursor).toBe(answers[1]!.cursor);
    const again = answers.map((answer) => broker.pollMany(LIST, { cursor: answer.cursor, wait: 5_000 }));
    await tick();
    expect(broker.stats().waiters).toBe(2);
    await broker.publish('b', 2);
    for (const result of await Promise.all(again)) expect(data(result)).toEqual(['b:2']);
    expect(broker.stats().waiters).toBe(0);
  });

  it('forgets a taken-over poll whose signal aborts, and times one out with a cursor that resumes exactly', async () => {
    const { broker } = setUp();
    const answer = await answered(broker);
    const controller = new AbortController();
    const aborted = broker.pollMany(LIST, { cursor: answer.cursor, wait: 5_000, signal: controller.signal });
    await tick();
    controller.abort(new Error('gone'));
    await expect(aborted).rejects.toThrow('gone');
    expect(broker.stats().waiters).toBe(0);
    // Aborted, it is gone for good: the next re-poll with the same cursor reads.
    const timedOut = await broker.pollMany(LIST, { cursor: answer.cursor, wait: 0.03 * 1000 });
    expect(timedOut).toMatchObject({ messages: [], timedOut: true });
    await broker.publish('c', 2);
    expect(data(await broker.pollMany(LIST, { cursor: timedOut.cursor, wait: 0 }))).toEqual(['c:2']);
  });

  it('closes with parked polls at once, and refuses their re-polls', async () => {
    const { broker } = setUp();
    const answer = await answered(broker);
    const started = Date.now();
    await broker.close();
    expect(Date.now() - started).toBeLessThan(500);
    await expect(broker.pollMany(LIST, { cursor: answer.cursor, wait: 5_000 })).rejects.toMatchObject({ code: 'shutting_down' });
  });

  it('re-polls nothing for a poll parked during a wake-up whose read then fails: it is taken off, and its client reads', async () => {
    // The read of `a` for the polls a publish on `a` woke first publishes on `x` (as an `evict`
    // listener may), which answers and parks the poll on [a, x], then fails with
    // `cursor_expired`. Such a read re-polls each poll of its group for its own client; a parked
    // poll has none: re-polled, it read for nobody and reported a delivery nobody got.
    class FailingOnce extends MemoryEngine {
      armed: (() => void) | undefined;
      override readNow(channel: string, cursor: Cursor | undefined, limit: number): Batch {
        const armed = this.armed;
        if (channel === 'a' && armed) {
          this.armed = undefined;
          armed();
          throw new LongPollError('cursor_expired', 'expired', { earliestCursor: cursor });
        }
        return super.readNow(channel, cursor, limit);
      }
    }
    const engine = new FailingOnce({ capacity: 10_000 });
    const broker = new Broker<unknown>({ engine });
    brokers.push(broker);
    const deliveries: string[] = [];
    broker.on('deliver', ({ channel, polls }) => deliveries.push(`${channel}:${polls}`));
    const first = await broker.pollMany(['a', 'x'], { wait: 0 });
    const held = broker.pollMany(['a', 'x'], { cursor: first.cursor, wait: 5_000 });
    await tick();
    engine.armed = () => void broker.publish('x', 1);
    await broker.publish('a', 2);
    const answer = await held;
    expect(data(answer)).toEqual(['x:1']);
    await tick();
    expect(broker.stats().waiters).toBe(0);
    // Its client reads `a` from where that answer left it, and is the only one to get `a:2`.
    expect(data(await broker.pollMany(['a', 'x'], { cursor: answer.cursor, wait: 5_000 }))).toEqual(['a:2']);
    expect(deliveries.filter((delivery) => delivery.startsWith('a:'))).toEqual(['a:1']);
  });

  it('parks at most 10,000 polls: the one past the cap reads on its re-poll, the others do not', async () => {
    const { broker, engine } = setUp();
    const polls = 10_001;
    // A list per poll, so that every answer has a cursor of its own.
    const lists = Array.from({ length: polls }, (_, i) => ['shared', `own.${i}`]);
    const held = lists.map((list) => broker.pollMany(list, { wait: 30_000 }));
    await tick();
    expect(broker.stats().waiters).toBe(polls);
    await broker.publish('shared', 1);
    const answers = await Promise.all(held);
    const reads = engine.reads;
    const again = lists.map((list, i) => broker.pollMany(list, { cursor: answers[i]!.cursor, wait: 30_000 }));
    await tick();
    expect(broker.stats().waiters).toBe(polls);
    // One poll of two channels read again: the one that was not parked.
    expect(engine.reads - reads).toBe(2);
    await broker.publish('shared', 2);
    for (const result of await Promise.all(again)) expect(data(result)).toEqual(['shared:2']);
  });

  it('delivers every publish once and in order to clients that re-poll at once, whatever lands between answer and re-poll', async () => {
    const CHANNELS = ['a', 'b', 'c', 'd'];
    const step = fc.oneof(
      fc.record({ publish: fc.constantFrom(...CHANNELS), count: fc.integer({ min: 1, max: 3 }) }),
      fc.constant({ tick: true as const }),
      fc.record({ client: fc.integer({ min: 0, max: 2 }), list: fc.shuffledSubarray(CHANNELS, { minLength: 1 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), fc.array(fc.array(fc.constantFrom(0, 1, 2), { minLength: 1, maxLength: 4 }), { minLength: 3, maxLength: 3 }), async (steps, delays) => {
        const broker = new Broker<unknown>({ capacity: 10_000 });
        const published = new Map<string, number[]>(CHANNELS.map((channel) => [channel, []]));
        let serial = 0;
        // Three clients, each on a list of channels it may change, re-polling after each answer.
        const clients = delays.map((pattern) => ({
          list: ['a', 'b'],
          delays: pattern,
          seen: new Map<string, unknown[]>(CHANNELS.map((channel) => [channel, []])),
          stopped: false,
        }));
        const loops = clients.map(async (client) => {
          let cursor: string | undefined;
          for (let answers = 0; !client.stopped; answers++) {
            const result = await broker.pollMany(client.list, { cursor, wait: 100 });
            for (const message of result.messages) client.seen.get(message.channel)!.push(message.data);
            cursor = result.cursor;
            // At once, after the pending callbacks, or a little later: publishes land between.
            const delay = client.delays[answers % client.delays.length]!;
            if (delay === 1) await tick();
            else if (delay === 2) await new Promise((resolve) => setTimeout(resolve, 1));
          }
        });
        try {
          // Every client held before the first publish, reading from everything retained.
          await tick();
          for (const s of steps) {
            if ('publish' in s) {
              for (let i = 0; i < s.count; i++) {
                await broker.publish(s.publish, ++serial);
                published.get(s.publish)!.push(serial);
              }
            } else if ('tick' in s) {
              await tick();
            } else {
              // A channel left out and listed again would be read again from everything
              // retained (as documented): lists here change order and grow, never lose one.
              const client = clients[s.client]!;
              client.list = [...s.list, ...client.list.filter((channel) => !s.list.includes(channel))];
            }
          }
          // Each client ends on every channel, and has then had each channel's messages once, in order.
          for (const client of clients) client.list = CHANNELS;
          await new Promise((resolve) => setTimeout(resolve, 250));
          for (const client of clients) client.stopped = true;
          await Promise.all(loops);
          for (const client of clients) {
            for (const channel of CHANNELS) expect(client.seen.get(channel), channel).toEqual(published.get(channel));
          }
        } finally {
          for (const client of clients) client.stopped = true;
          await broker.close();
          await Promise.allSettled(loops);
        }
      }),
      { numRuns: 40 },
    );
  }, 60_000);
});
