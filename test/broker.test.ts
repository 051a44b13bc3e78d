import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Broker, LongPollError, MemoryEngine, type Engine, type Message, type PollResult } from '../src/index.js';
import { requiredOnly } from './support/engines.js';
import { rejection } from './support/expect-error.js';

interface Chat {
  text: string;
}

/** Lets pending promise callbacks run (held polls register after one engine read). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

let broker: Broker<Chat>;
beforeEach(() => {
  broker = new Broker<Chat>();
});
afterEach(async () => {
  vi.useRealTimers();
  await broker.close();
});

describe('publish', () => {
  it('stores a copy of the payload with a ULID, the channel, an ISO timestamp and a cursor', async () => {
    const payload = { text: 'hi' };
    const message = await broker.publish('room:1', payload);
    payload.text = 'changed';
    expect(message.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(message.channel).toBe('room:1');
    expect(message.data).toEqual({ text: 'hi' });
    expect(new Date(message.publishedAt).toISOString()).toBe(message.publishedAt);
    expect(message.cursor).toMatch(/^[A-Za-z0-9._~-]+$/);
    const { messages } = await broker.read('room:1');
    expect(messages).toEqual([{ id: message.id, channel: 'room:1', data: { text: 'hi' }, publishedAt: message.publishedAt }]);
  });

  it('gives ids that sort in publish order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await broker.publish('room:1', { text: String(i) })).id);
    expect([...ids].sort()).toEqual(ids);
  });

  it('emits publish with the stored message', async () => {
    const seen = vi.fn();
    broker.on('publish', seen);
    const message = await broker.publish('room:1', { text: 'hi' });
    expect(seen).toHaveBeenCalledWith(message);
  });
});

describe('poll', () => {
  it('answers a held poll as soon as a message is published', async () => {
    const held = broker.poll('room:1', { wait: 10_000 });
    await settle();
    expect(broker.stats().waiters).toBe(1);
    const message = await broker.publish('room:1', { text: 'hi' });
    const result = await held;
    expect(result.timedOut).toBe(false);
    expect(result.messages.map((m) => m.id)).toEqual([message.id]);
    expect(broker.stats().waiters).toBe(0);
  });

  it('returns at once when messages exist after the cursor', async () => {
    const first = await broker.publish('room:1', { text: 'a' });
    const second = await broker.publish('room:1', { text: 'b' });
    const result = await broker.poll('room:1', { cursor: first.cursor, wait: 60_000 });
    expect(result.messages.map((m) => m.id)).toEqual([second.id]);
    expect(result.timedOut).toBe(false);
  });

  it('without a cursor returns everything retained', async () => {
    await broker.publish('room:1', { text: 'a' });
    await broker.publish('room:1', { text: 'b' });
    const result = await broker.poll('room:1', { wait: 0 });
    expect(result.messages.map((m) => m.data.text)).toEqual(['a', 'b']);
  });

  it('caps the batch at limit and continues exactly after the last message returned', async () => {
    for (let i = 0; i < 7; i++) await broker.publish('room:1', { text: String(i) });
    const texts: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const result = await broker.poll('room:1', { cursor, limit: 3, wait: 0 });
      expect(result.messages.length).toBeLessThanOrEqual(3);
      texts.push(...result.messages.map((m) => m.data.text));
      cursor = result.cursor;
      if (result.messages.length === 0) break;
    }
    expect(texts).toEqual(['0', '1', '2', '3', '4', '5', '6']);
  });

  it('clamps limit to 1000', async () => {
    const channel = new Broker({ capacity: 1500 });
    for (let i = 0; i < 1200; i++) await channel.publish('big', i);
    expect((await channel.poll('big', { limit: 5000, wait: 0 })).messages).toHaveLength(1000);
    await channel.close();
  });

  it('times out as a normal result whose cursor resumes exactly', async () => {
    const before = await broker.publish('room:1', { text: 'seen' });
    const timedOut = await broker.poll('room:1', { cursor: before.cursor, wait: 20 });
    expect(timedOut).toEqual({ messages: [], cursor: expect.any(String), timedOut: true });
    const after = await broker.publish('room:1', { text: 'next' });
    const resumed = await broker.poll('room:1', { cursor: timedOut.cursor, wait: 0 });
    expect(resumed.messages.map((m) => m.id)).toEqual([after.id]);
    expect(broker.stats().waiters).toBe(0);
  });

  it('defaults to a 25 s wait', async () => {
    vi.useFakeTimers();
    const fake = new Broker();
    let result: PollResult | undefined;
    void fake.poll('room:1').then((r) => (result = r));
    await vi.advanceTimersByTimeAsync(24_999);
    expect(result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(result?.timedOut).toBe(true);
    await fake.close();
  });

  it('with wait 0 and nothing new answers at once with timedOut', async () => {
    const result = await broker.poll('room:1', { wait: 0 });
    expect(result.messages).toEqual([]);
    expect(result.timedOut).toBe(true);
    expect(broker.stats()).toEqual({ channels: 0, waiters: 0, messages: 0 });
  });

  it('rejects with the signal reason on abort and leaves no waiter', async () => {
    const controller = new AbortController();
    const held = broker.poll('room:1', { wait: 10_000, signal: controller.signal });
    await settle();
    expect(broker.stats()).toMatchObject({ waiters: 1, channels: 1 });
    const reason = new Error('client went away');
    controller.abort(reason);
    await expect(held).rejects.toBe(reason);
    expect(broker.stats()).toEqual({ channels: 0, waiters: 0, messages: 0 });
  });

  it('rejects at once with the reason of a signal that already aborted', async () => {
    const reason = new Error('gone');
    await expect(broker.poll('room:1', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(broker.stats().waiters).toBe(0);
  });

  it('hands one frozen result object to every poll woken with the same cursor', async () => {
    const start = await broker.read('room:1');
    const polls = Array.from({ length: 5 }, () => broker.poll('room:1', { cursor: start.cursor, wait: 10_000 }));
    await settle();
    await broker.publish('room:1', { text: 'fan out' });
    const results = await Promise.all(polls);
    for (const result of results) expect(result).toBe(results[0]);
    expect(Object.isFrozen(results[0])).toBe(true);
  });

  it('answers polls with different cursors each from its own position', async () => {
    const a = await broker.publish('room:1', { text: 'a' });
    const start = await broker.read('room:1', { cursor: a.cursor });
    const fromStart = broker.poll('room:1', { wait: 10_000 }); // returns a at once
    const fromA = broker.poll('room:1', { cursor: start.cursor, wait: 10_000 });
    await settle();
    await broker.publish('room:1', { text: 'b' });
    expect((await fromStart).messages.map((m) => m.data.text)).toEqual(['a']);
    expect((await fromA).messages.map((m) => m.data.text)).toEqual(['b']);
  });

  it('emits deliver and timeout', async () => {
    const deliver = vi.fn();
    const timeout = vi.fn();
    broker.on('deliver', deliver).on('timeout', timeout);
    const polls = [broker.poll('room:1', { wait: 10_000 }), broker.poll('room:1', { wait: 10_000 })];
    await settle();
    await broker.publish('room:1', { text: 'x' });
    await Promise.all(polls);
    expect(deliver).toHaveBeenCalledWith({ channel: 'room:1', messages: 1, polls: 2 });
    await broker.poll('room:2', { wait: 5 });
    expect(timeout).toHaveBeenCalledWith('room:2');
  });
});

describe('read', () => {
  it('on a channel that never existed returns nothing and a cursor that delivers its first message', async () => {
    await broker.publish('other', { text: 'noise' });
    const empty = await broker.read('room:new');
    expect(empty).toEqual({ messages: [], cursor: expect.any(String), timedOut: false });
    const first = await broker.publish('room:new', { text: 'first' });
    const result = await broker.poll('room:new', { cursor: empty.cursor, wait: 0 });
    expect(result.messages.map((m) => m.id)).toEqual([first.id]);
  });

  it('never waits and always has timedOut false', async () => {
    const message = await broker.publish('room:1', { text: 'a' });
    const result = await broker.read('room:1', { cursor: message.cursor });
    expect(result).toEqual({ messages: [], cursor: expect.any(String), timedOut: false });
  });
});

describe('history', () => {
  it('evicts by count and answers an older cursor with cursor_expired and earliestCursor', async () => {
    const small = new Broker<number>({ capacity: 3 });
    const evicted = vi.fn();
    small.on('evict', evicted);
    const first = await small.publish('c', 1);
    for (let i = 2; i <= 5; i++) await small.publish('c', i);
    expect(evicted).toHaveBeenCalledWith({ channel: 'c', count: 1, reason: 'capacity' });
    const error = await rejection(small.poll('c', { cursor: first.cursor, wait: 0 }), 'cursor_expired');
    expect(error.status).toBe(410);
    const rehydrated = await small.poll('c', { cursor: error.earliestCursor, wait: 0 });
    expect(rehydrated.messages.map((m) => m.data)).toEqual([3, 4, 5]);
    expect(small.stats().messages).toBe(3);
    await small.close();
  });

  it('accepts the cursor of the last evicted message: nothing after it was lost', async () => {
    const small = new Broker<number>({ capacity: 2 });
    const one = await small.publish('c', 1);
    await small.publish('c', 2);
    await small.publish('c', 3); // evicts 1
    expect((await small.read('c', { cursor: one.cursor })).messages.map((m) => m.data)).toEqual([2, 3]);
    await small.close();
  });

  it('evicts by age, lazily and by timer, and answers an older cursor with cursor_expired', async () => {
    vi.useFakeTimers();
    const aging = new Broker<number>({ maxAge: 1000 });
    const start = await aging.read('c');
    await aging.publish('c', 1);
    await vi.advanceTimersByTimeAsync(600);
    await aging.publish('c', 2);
    await vi.advanceTimersByTimeAsync(500); // 1 is 1100 ms old, 2 is 500 ms old
    const error = await rejection(aging.poll('c', { cursor: start.cursor, wait: 0 }), 'cursor_expired');
    expect((await aging.read('c', { cursor: error.earliestCursor })).messages.map((m) => m.data)).toEqual([2]);
    await vi.advanceTimersByTimeAsync(2000); // the sweep timer drops 2 and the idle channel
    expect(aging.stats()).toEqual({ channels: 0, waiters: 0, messages: 0 });
    await aging.close();
  });

  it('answers cursor_expired, never a silent gap, when an expired channel was dropped and re-created', async () => {
    vi.useFakeTimers();
    const aging = new Broker<number>({ maxAge: 1000 });
    const start = await aging.read('c');
    await aging.publish('c', 1); // never seen by the holder of start
    await vi.advanceTimersByTimeAsync(5000);
    expect(aging.stats().channels).toBe(0);
    await aging.publish('c', 2);
    const error = await rejection(aging.poll('c', { cursor: start.cursor, wait: 0 }), 'cursor_expired');
    expect((await aging.read('c', { cursor: error.earliestCursor })).messages.map((m) => m.data)).toEqual([2]);
    await rejection(aging.read('c', { cursor: start.cursor }), 'cursor_expired');
    await aging.close();
  });

  it('answers a cursor from another engine (another epoch) with cursor_expired', async () => {
    const before = await broker.publish('room:1', { text: 'old life' });
    const restarted = new Broker<Chat>();
    await restarted.publish('room:1', { text: 'new life' });
    const error = await rejection(restarted.poll('room:1', { cursor: before.cursor, wait: 0 }), 'cursor_expired');
    const result = await restarted.read('room:1', { cursor: error.earliestCursor });
    expect(result.messages.map((m) => m.data.text)).toEqual(['new life']);
    await restarted.close();
  });

  it('answers garbage, a cursor of another channel and a cursor from the future with invalid_cursor', async () => {
    const other = await broker.publish('room:2', { text: 'x' });
    for (const cursor of ['garbage', '../../etc', 'x'.repeat(5000), other.cursor, other.cursor.replace(/\.[^.]+$/, '.zzzzzz')]) {
      await rejection(broker.poll('room:1', { cursor, wait: 0 }), 'invalid_cursor');
    }
    await rejection(broker.poll('room:1', { cursor: '', wait: 0 }), 'invalid_cursor');
  });

  it('drops idle channels and counts channels holding messages or waiters', async () => {
    const held = broker.poll('waiting', { wait: 10_000 });
    await broker.publish('stored', { text: 'x' });
    await settle();
    expect(broker.stats()).toEqual({ channels: 2, waiters: 1, messages: 1 });
    await broker.publish('waiting', { text: 'y' });
    await held;
    expect(broker.stats()).toEqual({ channels: 2, waiters: 0, messages: 2 });
  });

  it('keeps memory bounded: 100,000 timed-out or aborted polls on 10,000 channels leave nothing behind', async () => {
    const busy = new Broker();
    const timeouts = vi.fn();
    busy.on('timeout', timeouts);
    for (let round = 0; round < 2; round++) {
      const controllers: AbortController[] = [];
      const polls: Promise<unknown>[] = [];
      for (let i = 0; i < 50_000; i++) {
        const channel = `ch:${i % 10_000}`;
        const controller = new AbortController();
        controllers.push(controller);
        const cursor = i % 3 === 0 ? (await busy.read(channel)).cursor : undefined;
        polls.push(busy.poll(channel, { cursor, wait: i % 2 === 0 ? 60_000 : 1500, signal: controller.signal }).catch(() => 'aborted'));
      }
      await settle();
      // Every poll is held, or (on a slow machine) already timed out.
      expect(busy.stats().waiters + timeouts.mock.calls.length - round * 25_000).toBe(50_000);
      controllers.forEach((controller, i) => i % 2 === 0 && controller.abort());
      const outcomes = await Promise.all(polls);
      expect(outcomes.filter((o) => o === 'aborted')).toHaveLength(25_000);
      expect(busy.stats()).toEqual({ channels: 0, waiters: 0, messages: 0 });
    }
    expect(timeouts).toHaveBeenCalledTimes(50_000);
    await busy.close();
  }, 30_000);
});

describe('no lost wake-up', () => {
  it('delivers a message appended between a poll read and its registration as a waiter', async () => {
    // An engine whose reads resolve late, so a publish can land after a read, before registration.
    const engine = new MemoryEngine();
    let gate = Promise.resolve();
    const slow: Engine = {
      attach: (listener) => engine.attach(listener),
      append: (channel, json) => engine.append(channel, json),
      read: async (channel, cursor, limit) => {
        const batch = engine.readNow(channel, cursor, limit);
        await gate;
        return batch;
      },
      retains: (channel) => engine.retains(channel),
      stats: () => engine.stats(),
      close: () => engine.close(),
    };
    const racing = new Broker<number>({ engine: slow });
    const start = await racing.read('c');
    let open!: () => void;
    gate = new Promise<void>((resolve) => (open = resolve));
    const held = racing.poll('c', { cursor: start.cursor, wait: 2000 });
    await settle(); // the poll has read: nothing yet
    const message = await racing.publish('c', 1);
    open();
    const result = await held;
    expect(result.timedOut).toBe(false);
    expect(result.messages.map((m) => m.id)).toEqual([message.id]);
    await racing.close();
  });

  it('wakes every poll that raced with a burst of concurrent publishes', async () => {
    for (let round = 0; round < 20; round++) {
      const start = await broker.read(`race:${round}`);
      const polls = Array.from({ length: 20 }, (_, i) =>
        new Promise<void>((resolve) => setTimeout(resolve, i % 3)).then(() =>
          broker.poll(`race:${round}`, { cursor: start.cursor, wait: 5000 }),
        ),
      );
      const published = Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          new Promise<void>((resolve) => setTimeout(resolve, i % 2)).then(() => broker.publish(`race:${round}`, { text: String(i) })),
        ),
      );
      const [results] = await Promise.all([Promise.all(polls), published]);
      for (const result of results) {
        expect(result.timedOut).toBe(false);
        expect(result.messages.length).toBeGreaterThan(0);
      }
    }
  });
});

describe('close', () => {
  it('answers held polls with shutting_down, refuses new work and leaves nothing held', async () => {
    const held = [broker.poll('a', { wait: 60_000 }), broker.poll('b', { wait: 60_000 })];
    await settle();
    const closed = vi.fn();
    broker.on('close', closed);
    await broker.close();
    for (const poll of held) {
      const error = await rejection(poll, 'shutting_down');
      expect(error.status).toBe(503);
      expect(error.retryAfter).toBeGreaterThanOrEqual(1);
    }
    expect(closed).toHaveBeenCalledOnce();
    await rejection(broker.poll('a'), 'shutting_down');
    await rejection(broker.publish('a', { text: 'late' }), 'shutting_down');
    await rejection(broker.read('a'), 'shutting_down');
    expect(broker.stats().waiters).toBe(0);
    await expect(broker.close()).resolves.toBeUndefined();
  });
});

describe('bad input', () => {
  it('rejects empty and non-string channels with invalid_channel', async () => {
    for (const channel of ['', 42, undefined, null, {}]) {
      await rejection(broker.publish(channel as string, { text: 'x' }), 'invalid_channel');
      await rejection(broker.poll(channel as string, { wait: 0 }), 'invalid_channel');
      await rejection(broker.read(channel as string), 'invalid_channel');
    }
  });

  it('rejects payloads that are not JSON with invalid_payload', async () => {
    const json = new Broker<unknown>();
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const data of [undefined, 10n, cycle, () => 1, Symbol('s')]) {
      const error = await rejection(json.publish('c', data), 'invalid_payload');
      expect(error.message).toMatch(/JSON/);
    }
    expect(json.stats().messages).toBe(0);
    await json.close();
  });

  it('rejects NaN, negative and non-numeric waits and limits', async () => {
    for (const wait of [Number.NaN, -1, '5']) await rejection(broker.poll('c', { wait: wait as number }), 'invalid_wait');
    for (const limit of [Number.NaN, -1, 0, 1.5, Number.POSITIVE_INFINITY]) {
      await rejection(broker.poll('c', { limit, wait: 0 }), 'invalid_limit');
      await rejection(broker.read('c', { limit }), 'invalid_limit');
    }
    await rejection(broker.poll('c', { cursor: 5 as unknown as string }), 'invalid_cursor');
  });

  it('rejects bad constructor options with invalid_option', () => {
    for (const options of [{ capacity: -1 }, { capacity: 0 }, { capacity: 1.5 }, { maxAge: 0 }, { maxAge: Number.NaN }]) {
      expect(() => new Broker(options)).toThrow(LongPollError);
      try {
        new Broker(options);
      } catch (error) {
        expect((error as LongPollError).code).toBe('invalid_option');
        expect((error as LongPollError).message).toMatch(/capacity|maxAge/);
      }
    }
    expect(() => new Broker({ engine: new MemoryEngine(), capacity: 5 })).toThrow(/capacity/);
    const engine = new MemoryEngine();
    const first = new Broker({ engine });
    expect(() => new Broker({ engine })).toThrow(/already/);
    void first.close();
  });
});

describe('listeners', () => {
  it('loses no wake-up when a deliver, timeout, publish or evict listener throws, and reports it as error', async () => {
    const small = new Broker<Chat>({ capacity: 1 });
    const errors: Error[] = [];
    small.on('error', (error) => errors.push(error));
    for (const event of ['deliver', 'timeout', 'publish', 'evict'] as const) {
      small.on(event, () => {
        throw new Error(`${event} listener failed`);
      });
    }
    // Two groups of waiters (different limits), so one drain answers several groups.
    const first = small.poll('c', { limit: 1, wait: 5_000 });
    const second = small.poll('c', { limit: 2, wait: 5_000 });
    await settle();
    await small.publish('c', { text: 'a' });
    await small.publish('c', { text: 'b' }); // evicts 'a' by capacity
    expect((await first).messages.length).toBeGreaterThan(0);
    expect((await second).messages.length).toBeGreaterThan(0);
    const timedOut = await small.poll('other', { wait: 10 });
    expect(timedOut.timedOut).toBe(true);
    expect(new Set(errors.map((error) => error.message))).toEqual(
      new Set(['deliver listener failed', 'timeout listener failed', 'publish listener failed', 'evict listener failed']),
    );
    expect(small.stats().waiters).toBe(0);
    await small.close();
  });

  it('turns a throwing listener into a process warning when nobody listens for error', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      broker.on('publish', () => {
        throw new Error('metrics broke');
      });
      const held = broker.poll('c', { wait: 5_000 });
      await settle();
      await broker.publish('c', { text: 'still delivered' });
      expect((await held).messages[0]!.data.text).toBe('still delivered');
      await vi.waitFor(() => expect(warnings.map((w) => (w as Error & { code?: string }).code)).toContain('LONGPOLL_LISTENER_ERROR'));
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('does not report a cursor evicted while a poll was held as an error', async () => {
    // An engine that reads asynchronously: the memory engine's synchronous read would answer
    // the poll inside the first publish.
    const small = new Broker<Chat>({ engine: requiredOnly(new MemoryEngine({ capacity: 1 })) });
    const errors: Error[] = [];
    small.on('error', (error) => errors.push(error));
    const { cursor } = await small.read('c');
    const held = small.poll('c', { cursor, limit: 1, wait: 5_000 });
    await settle();
    // Both land before the drain reads, so the held cursor is already behind the history.
    void small.publish('c', { text: 'a' });
    void small.publish('c', { text: 'b' });
    await rejection(held, 'cursor_expired');
    expect(errors).toEqual([]);
    await small.close();
  });
});

describe('event order', () => {
  it('reports a publish before the deliveries it caused, also when a deliver listener publishes again', async () => {
    const ordered = new Broker<number>();
    const events: string[] = [];
    ordered.on('publish', (message) => events.push(`publish ${message.data}`));
    ordered.on('deliver', ({ polls }) => {
      events.push(`deliver ${polls}`);
      if (events.length === 2) void ordered.publish('c', 2);
    });
    const held = ordered.poll('c', { wait: 5_000 });
    await settle();
    await ordered.publish('c', 1);
    expect((await held).messages.map((m) => m.data)).toEqual([1]);
    await settle();
    expect(events).toEqual(['publish 1', 'deliver 1', 'publish 2']);
    await ordered.close();
  });
});

describe('shared messages', () => {
  it('hands out frozen batches and payloads, so one consumer cannot change what another receives', async () => {
    const sent = await broker.publish('c', { text: 'a' });
    await broker.publish('c', { text: 'b' });
    const first = await broker.read('c');
    expect(() => (first.messages as Message<Chat>[]).reverse()).toThrow(TypeError);
    expect(() => {
      first.messages[0]!.data.text = 'changed';
    }).toThrow(TypeError);
    expect(() => {
      sent.data.text = 'changed';
    }).toThrow(TypeError);
    const again = await broker.read('c');
    expect(again.messages.map((m) => m.data.text)).toEqual(['a', 'b']);
  });
});

describe('checkCursor', () => {
  it('refuses garbage and another channel’s cursor at once, and accepts its own or an older epoch’s', async () => {
    const { cursor } = await broker.publish('room:1', { text: 'a' });
    expect(() => broker.checkCursor('room:1', cursor)).not.toThrow();
    await rejection(() => broker.checkCursor('room:1', 'garbage'), 'invalid_cursor');
    await rejection(() => broker.checkCursor('room:2', cursor), 'invalid_cursor');
    await rejection(() => broker.checkCursor('', cursor), 'invalid_channel');
    // Another epoch's cursor is well-formed: whether it is retained is poll's question (410).
    const other = new Broker<Chat>();
    const old = await other.publish('room:1', { text: 'x' });
    expect(() => broker.checkCursor('room:1', old.cursor)).not.toThrow();
    await rejection(broker.poll('room:1', { cursor: old.cursor, wait: 0 }), 'cursor_expired');
    await other.close();
  });
});

describe('options', () => {
  it('takes null options as no options', async () => {
    const plain = new Broker(null as unknown as undefined);
    await plain.publish('c', 1);
    expect((await plain.read('c', null as unknown as undefined)).messages).toHaveLength(1);
    expect((await plain.poll('c', null as unknown as undefined)).messages).toHaveLength(1);
    await plain.close();
  });
});
