/**
 * Attacks on the synchronous `Broker#poll` (a poll of one channel on an engine with `readNow`
 * reads and answers or holds without a promise): what a caller of `broker.poll(...).catch(...)`
 * may rely on whatever the engine, the options, the signal or the broker's state, and what must
 * come back to nothing afterwards.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, LongPollError, MemoryEngine, type Engine, type PollOptions, type PollResult } from '../src/index.js';
import { requiredOnly } from './support/engines.js';

/**
 * Every method of `inner` bound to it (MemoryEngine keeps its state in private fields), with
 * `overrides` on top: readNow among them, or as a getter.
 */
function wrap(inner: MemoryEngine, overrides: PropertyDescriptorMap = {}): Engine {
  const engine: Engine = {
    attach: (listener) => inner.attach(listener),
    append: (channel, json, value) => inner.append(channel, json, value),
    read: (channel, cursor, limit) => inner.read(channel, cursor, limit),
    readNow: (channel, cursor, limit) => inner.readNow(channel, cursor, limit),
    tail: (channel) => inner.tail(channel),
    checkCursor: (channel, cursor) => inner.checkCursor(channel, cursor),
    retains: (channel) => inner.retains(channel),
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
  return Object.defineProperties(engine, overrides);
}

/** Engines a broker can hold, each over a fresh MemoryEngine. */
const ENGINES: Record<string, () => Engine> = {
  memory: () => new MemoryEngine(),
  // Without readNow: every poll goes the asynchronous way.
  required: () => requiredOnly(new MemoryEngine()),
  // readNow, and an attach that takes a turn: polls wait for it (`#ready`), then read synchronously.
  'async attach': () => {
    const inner = new MemoryEngine();
    return wrap(inner, {
      attach: {
        value: async (listener: Parameters<Engine['attach']>[0]) => {
          await new Promise((resolve) => setTimeout(resolve, 1));
          inner.attach(listener);
        },
      },
    });
  },
  // readNow, but an append that stores after an await (its notification comes from inside the
  // inner append, a turn late): outside the contract's order, it must still lose nothing.
  'late append': () => {
    const inner = new MemoryEngine();
    return wrap(inner, {
      append: {
        value: async (channel: string, json: string) => {
          await Promise.resolve();
          return inner.append(channel, json);
        },
      },
    });
  },
};

let brokers: Broker<unknown>[] = [];
function brokerOf(engine: Engine, options: { closeTimeout?: number } = {}): Broker<unknown> {
  const broker = new Broker<unknown>({ engine, ...options });
  brokers.push(broker);
  return broker;
}

afterEach(async () => {
  await Promise.all(brokers.map((broker) => broker.close()));
  brokers = [];
});

/** Calls `poll` and fails the test if it throws instead of returning a promise. */
function pollOf(broker: Broker<unknown>, channel: unknown, options?: unknown): Promise<PollResult<unknown>> {
  let promise: Promise<PollResult<unknown>> | undefined;
  expect(() => {
    promise = broker.poll(channel as string, options as PollOptions);
  }).not.toThrow();
  expect(promise).toBeInstanceOf(Promise);
  return promise!;
}

async function reasonOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('the poll resolved');
}

describe.each(Object.keys(ENGINES))('a poll on the %s engine', (name) => {
  const engine = ENGINES[name]!;

  it('never throws synchronously: bad options, signals and a closed broker reject', async () => {
    const broker = brokerOf(engine());
    await broker.publish('c', 1);
    const aborted = AbortSignal.abort(new Error('already aborted'));
    const bad: [unknown, unknown, string][] = [
      ['', {}, 'invalid_channel'],
      [42, {}, 'invalid_channel'],
      ['c', { cursor: '' }, 'invalid_cursor'],
      ['c', { cursor: 7 }, 'invalid_cursor'],
      ['c', { cursor: 'not a cursor' }, 'invalid_cursor'],
      ['c', { limit: 0 }, 'invalid_limit'],
      ['c', { limit: 1.5 }, 'invalid_limit'],
      ['c', { wait: -1 }, 'invalid_wait'],
      ['c', { wait: Number.NaN }, 'invalid_wait'],
      ['c', { wait: '5' }, 'invalid_wait'],
      ['c', { firstMessage: 'latest' }, 'invalid_option'],
    ];
    for (const [channel, options, code] of bad) {
      const error = await reasonOf(pollOf(broker, channel, options));
      expect(error, JSON.stringify([channel, options])).toBeInstanceOf(LongPollError);
      expect((error as LongPollError).code).toBe(code);
    }
    // Options whose reading throws, and a signal that is not one.
    const throwing = Object.defineProperty({}, 'limit', {
      get() {
        throw new Error('a getter');
      },
    });
    expect(((await reasonOf(pollOf(broker, 'c', throwing))) as Error).message).toBe('a getter');
    expect(await reasonOf(pollOf(broker, 'c', { signal: {} }))).toBeInstanceOf(TypeError);
    // An aborted signal wins over messages that are there, and is not listened to.
    expect(await reasonOf(pollOf(broker, 'c', { signal: aborted }))).toBe(aborted.reason);
    expect(await reasonOf(pollOf(broker, 'c', { signal: aborted, wait: 0 }))).toBe(aborted.reason);
    expect(getEventListeners(aborted, 'abort')).toHaveLength(0);
    // A signal that did not abort is let go once the poll is answered, at once or after a wait.
    const controller = new AbortController();
    expect((await pollOf(broker, 'c', { signal: controller.signal })).messages).toHaveLength(1);
    const { cursor } = await broker.read('c');
    const timedOut = await pollOf(broker, 'c', { cursor, wait: 5, signal: controller.signal });
    expect(timedOut.timedOut).toBe(true);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(broker.stats().waiters).toBe(0);
    // A closed broker.
    const closing = broker.close();
    expect(((await reasonOf(pollOf(broker, 'c', {}))) as LongPollError).code).toBe('shutting_down');
    expect(((await reasonOf(pollOf(broker, 'c', { wait: 0 }))) as LongPollError).code).toBe('shutting_down');
    await closing;
  });

  it('loses no publish that lands in the same turn as the poll, before or after it, and keeps their order', async () => {
    const broker = brokerOf(engine());
    let { cursor } = await broker.read('order');
    for (let i = 0; i < 60; i++) {
      // The publish starts before the poll, after it, or both.
      const before = i % 3 !== 1 ? broker.publish('order', `a${i}`) : undefined;
      const poll = broker.poll('order', { cursor, wait: 2_000, limit: i % 2 === 0 ? 1 : 100 });
      const after = i % 3 !== 0 ? broker.publish('order', `b${i}`) : undefined;
      const expected = [before && `a${i}`, after && `b${i}`].filter((value) => value !== undefined);
      await Promise.all([before, after]);
      const got: unknown[] = [];
      let result = await poll;
      for (;;) {
        expect(result.timedOut).toBe(false);
        got.push(...result.messages.map((message) => message.data));
        cursor = result.cursor;
        if (got.length >= expected.length) break;
        result = await broker.poll('order', { cursor, wait: 2_000 });
      }
      expect(got).toEqual(expected);
    }
    expect(broker.stats().waiters).toBe(0);
  });

  it('answers wait: 0 at once, from history or as a timeout that resumes exactly', async () => {
    const broker = brokerOf(engine());
    const empty = await pollOf(broker, 'zero', { wait: 0 });
    expect(empty).toMatchObject({ messages: [], timedOut: true });
    const published = await broker.publish('zero', 'x');
    const result = await pollOf(broker, 'zero', { cursor: empty.cursor, wait: 0 });
    expect(result.messages.map((message) => message.id)).toEqual([published.id]);
    expect(result.cursor).toBe(published.cursor);
    expect(broker.stats().waiters).toBe(0);
  });
});

describe('a poll on an engine whose readNow fails', () => {
  it('rejects with what readNow throws, an Error or not, and holds nothing', async () => {
    for (const thrown of [new Error('engine down'), 'a string', undefined]) {
      const engine = wrap(new MemoryEngine(), {
        readNow: {
          value() {
            // eslint-disable-next-line @typescript-eslint/only-throw-error -- an engine may throw anything
            throw thrown;
          },
        },
      });
      const broker = brokerOf(engine);
      await broker.publish('c', 1);
      expect(await reasonOf(pollOf(broker, 'c', { wait: 1_000 }))).toBe(thrown);
      expect(broker.stats().waiters).toBe(0);
      const started = performance.now();
      await broker.close();
      expect(performance.now() - started).toBeLessThan(1_000);
    }
  });

  it('rejects when reading readNow itself throws, and close() does not wait for that poll', async () => {
    let armed = false;
    const inner = new MemoryEngine();
    const engine = wrap(inner, {
      readNow: {
        get() {
          if (armed) throw new Error('readNow is gone');
          return inner.readNow.bind(inner);
        },
      },
    });
    const broker = brokerOf(engine, { closeTimeout: 5_000 });
    armed = true;
    expect(((await reasonOf(pollOf(broker, 'c', { wait: 1_000 }))) as Error).message).toBe('readNow is gone');
    armed = false;
    // The broker still serves the channel…
    const poll = pollOf(broker, 'c', { wait: 2_000 });
    await broker.publish('c', 'after');
    expect((await poll).messages.map((message) => message.data)).toEqual(['after']);
    // …and nothing is left reading: close() does not wait its closeTimeout.
    const started = performance.now();
    await broker.close();
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('rejects an expired cursor with cursor_expired and an earliestCursor that resumes', async () => {
    const broker = brokerOf(new MemoryEngine({ capacity: 2 }));
    const first = await broker.publish('small', 0);
    const { cursor: before } = await broker.read('small', { limit: 1 });
    for (let i = 1; i < 5; i++) await broker.publish('small', i);
    const error = (await reasonOf(pollOf(broker, 'small', { cursor: first.cursor, wait: 1_000 }))) as LongPollError;
    expect(error.code).toBe('cursor_expired');
    const resumed = await pollOf(broker, 'small', { cursor: error.earliestCursor!, wait: 0 });
    expect(resumed.messages.map((message) => message.data)).toEqual([3, 4]);
    expect(before).toBe(first.cursor);
    expect(broker.stats().waiters).toBe(0);
  });
});

describe('a synchronous poll and the code it calls', () => {
  it('survives a deliver listener that polls again, publishes or closes the broker inside it', async () => {
    const broker = brokerOf(new MemoryEngine(), { closeTimeout: 5_000 });
    await broker.publish('c', 1);
    const nested: Promise<PollResult<unknown>>[] = [];
    let published: Promise<unknown> | undefined;
    broker.once('deliver', () => {
      nested.push(broker.poll('c', { wait: 0 }));
      published = broker.publish('c', 2);
    });
    const outer = await pollOf(broker, 'c', { wait: 0 });
    expect(outer.messages.map((message) => message.data)).toEqual([1]);
    await published;
    expect((await nested[0]!).messages.map((message) => message.data)).toEqual([1]);
    // A listener that closes the broker while the poll that reported is still on the stack.
    let closing: Promise<void> | undefined;
    broker.once('deliver', () => {
      closing = broker.close();
    });
    const last = await pollOf(broker, 'c', { cursor: outer.cursor, wait: 1_000 });
    expect(last.messages.map((message) => message.data)).toEqual([2]);
    const started = performance.now();
    await closing;
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(((await reasonOf(pollOf(broker, 'c', {}))) as LongPollError).code).toBe('shutting_down');
  });

  it('is what a subclass overriding poll or read gets through super', async () => {
    class Logged extends Broker<unknown> {
      readonly calls: string[] = [];
      override poll(channel: string, options?: PollOptions): Promise<PollResult<unknown>> {
        this.calls.push(`poll ${channel}`);
        return super.poll(channel, options);
      }
      override read(channel: string, options?: PollOptions): Promise<PollResult<unknown>> {
        this.calls.push(`read ${channel}`);
        return super.read(channel, options);
      }
    }
    const broker = new Logged();
    brokers.push(broker);
    let thrown: unknown;
    let promise: Promise<unknown> | undefined;
    try {
      promise = broker.poll('', {});
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeUndefined();
    expect(((await reasonOf(promise!)) as LongPollError).code).toBe('invalid_channel');
    const held = broker.poll('sub', { wait: 2_000 });
    expect(broker.stats().waiters).toBe(1);
    await broker.publish('sub', 'x');
    expect((await held).messages.map((message) => message.data)).toEqual(['x']);
    expect(broker.calls).toEqual(['poll ', 'poll sub']);
  });

  it('holds synchronously and is forgotten at once on abort: waiters and channels back to 0', async () => {
    const broker = brokerOf(new MemoryEngine());
    const controllers = Array.from({ length: 50 }, () => new AbortController());
    const polls = controllers.map((controller, i) => broker.poll(`ch${i % 5}`, { wait: 10_000, signal: controller.signal }));
    // Held before poll() returned: no turn has passed.
    expect(broker.stats().waiters).toBe(50);
    for (const controller of controllers) controller.abort(new Error('gone'));
    expect(broker.stats()).toEqual({ channels: 0, waiters: 0, messages: 0 });
    for (const poll of polls) expect(((await reasonOf(poll)) as Error).message).toBe('gone');
    for (const controller of controllers) expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});
