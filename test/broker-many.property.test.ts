/**
 * Property tests of the composite cursor of a poll over many channels: any interleaving of
 * publishes, any changes of the channel list (keeping the cursor) and any `limit`, over
 * `Broker.readMany`, `Broker.pollMany` and `GET {prefix}?channels=…`, checked against a model of
 * what each channel must deliver next.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Broker, LongPollError, type Message } from '../src/index.js';
import { decodeComposite } from '../src/composite-cursor.js';
import { PREFIX, startServer } from './support/servers.js';
import { json, type PollBody, send } from './http/requests.js';

/**
 * `c693596` and `c1170850` have the same 32-bit FNV-1a hash (the channel tag of the engines'
 * cursors): the composite cursor must still tell them apart, whatever the order of the list.
 */
const CHANNELS = ['a', 'c693596', 'c1170850', '__proto__'];
/** A history this small evicts all the time. */
const CAPACITY = 3;

type Step = { publish: string; count: number } | { read: string[]; limit: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ publish: fc.constantFrom(...CHANNELS), count: fc.integer({ min: 1, max: 5 }) }),
  // Any subset in any order: the order of the list must not matter to the cursor.
  fc.record({ read: fc.shuffledSubarray(CHANNELS, { minLength: 1 }), limit: fc.integer({ min: 1, max: 6 }) }),
);

/** What one read over many channels gave: its messages and cursor, or the cursor_expired's earliestCursor. */
type Outcome = { messages: readonly Pick<Message<unknown>, 'channel' | 'data'>[]; cursor: string; timedOut: boolean } | { earliestCursor: string };

/** One way of reading many channels at once without waiting. */
type Reader = (channels: string[], cursor: string | undefined, limit: number) => Promise<Outcome>;

async function expiredOr(read: () => Promise<Outcome>): Promise<Outcome> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof LongPollError && error.code === 'cursor_expired') return { earliestCursor: error.earliestCursor! };
    throw error;
  }
}

const viaReadMany =
  (broker: Broker<unknown>): Reader =>
  (channels, cursor, limit) =>
    expiredOr(() => broker.readMany(channels, { cursor, limit }));

const viaPollMany =
  (broker: Broker<unknown>): Reader =>
  (channels, cursor, limit) =>
    expiredOr(() => broker.pollMany(channels, { cursor, limit, wait: 0 }));

const viaHttp =
  (origin: string): Reader =>
  async (channels, cursor, limit) => {
    const query = `channels=${channels.map(encodeURIComponent).join(',')}&limit=${limit}&wait=0${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const answer = await send(`${origin}${PREFIX}?${query}`);
    if (answer.status === 410) return { earliestCursor: json<{ earliestCursor: string }>(answer).earliestCursor };
    expect(answer.status, answer.text).toBe(200);
    const body = json<PollBody>(answer);
    expect(answer.headers.get('longpoll-cursor')).toBe(body.cursor);
    return body;
  };

/**
 * Runs `steps` against `broker` (whose history keeps `capacity` messages per channel) through
 * `read`, checking every answer against a model: each listed channel has the index of the next
 * message it must deliver, or `'retained'` when it was (re-)added to the list and must be read
 * from the oldest message still retained.
 */
async function check(broker: Broker<unknown>, read: Reader, steps: readonly Step[], capacity: number): Promise<void> {
  const published = new Map<string, number[]>(CHANNELS.map((channel) => [channel, []]));
  const next = new Map<string, number | 'retained'>();
  let cursor: string | undefined;
  let serial = 0;

  /** One read of `list`; returns how many messages it delivered. */
  async function readAndCheck(list: string[], limit: number): Promise<number> {
    for (const channel of list) if (!next.has(channel)) next.set(channel, 'retained');
    for (const channel of [...next.keys()]) if (!list.includes(channel)) next.delete(channel);
    const floors = new Map(list.map((channel) => [channel, Math.max(0, published.get(channel)!.length - capacity)]));
    const expired = list.filter((channel) => {
      const from = next.get(channel)!;
      return from !== 'retained' && from < floors.get(channel)!;
    });
    const before = cursor;
    const outcome = await read(list, cursor, limit);
    if ('earliestCursor' in outcome) {
      // Never silent: told so exactly when a message the cursor needs is gone ...
      expect(expired, 'a cursor_expired with nothing expired').not.toEqual([]);
      const old = decodeComposite(before, list);
      const earliest = decodeComposite(outcome.earliestCursor, list);
      for (const channel of list) {
        // ... and the earliestCursor moves the expired channels only: the others lose nothing.
        if (expired.includes(channel)) expect(earliest.get(channel), `${channel} expired and moves`).not.toBe(old.get(channel));
        else expect(earliest.get(channel), `${channel} did not expire and keeps its position`).toBe(old.get(channel));
      }
      for (const channel of expired) next.set(channel, floors.get(channel)!);
      cursor = outcome.earliestCursor;
      return 0;
    }
    expect(expired, 'a silent gap: these channels lost messages without a cursor_expired').toEqual([]);
    const got = new Map<string, number[]>(list.map((channel) => [channel, []]));
    for (const message of outcome.messages) {
      const indexes = got.get(message.channel);
      expect(indexes, `a message of ${message.channel}, which is not listed`).toBeDefined();
      indexes!.push(published.get(message.channel)!.indexOf(message.data as number));
    }
    let available = 0;
    const shares: { share: number; left: number }[] = [];
    for (const channel of list) {
      const from = next.get(channel)!;
      const start = from === 'retained' ? floors.get(channel)! : from;
      const indexes = got.get(channel)!;
      // Exactly once, in publish order, from where the channel was (or everything retained).
      expect(indexes, `what ${channel} delivered`).toEqual(Array.from({ length: indexes.length }, (_, i) => start + i));
      const length = published.get(channel)!.length;
      available += length - start;
      shares.push({ share: indexes.length, left: length - start - indexes.length });
      // A channel read from everything retained that got nothing of what it has (the limit went
      // to others) stays unnamed in the cursor: read from everything retained again next time
      // (see the `.fails` test of broker-many.test.ts for what that costs under eviction).
      next.set(channel, from === 'retained' && indexes.length === 0 && length > start ? 'retained' : start + indexes.length);
    }
    // The limit is used whole, and shared round-robin: a channel cut short got at most one
    // message less than any other.
    expect(outcome.messages.length).toBe(Math.min(limit, available));
    for (const short of shares.filter(({ left }) => left > 0)) {
      for (const other of shares) expect(other.share, 'a channel kept out by a backlog elsewhere').toBeLessThanOrEqual(short.share + 1);
    }
    if (outcome.messages.length > 0) expect(outcome.timedOut).toBe(false);
    cursor = outcome.cursor;
    return outcome.messages.length;
  }

  for (const s of steps) {
    if ('publish' in s) {
      for (let i = 0; i < s.count; i++) {
        await broker.publish(s.publish, ++serial);
        published.get(s.publish)!.push(serial);
      }
    } else {
      await readAndCheck(s.read, s.limit);
    }
  }
  // Catch up with every channel listed: each one ends at its newest message.
  for (let guard = 0; guard < 100; guard++) {
    const delivered = await readAndCheck(CHANNELS, 4);
    if (delivered === 0 && CHANNELS.every((channel) => next.get(channel) === published.get(channel)!.length)) break;
  }
  for (const channel of CHANNELS) expect(next.get(channel), `${channel} caught up`).toBe(published.get(channel)!.length);
}

describe('Broker: many channels, composite cursor (property)', () => {
  it.each([
    ['readMany', viaReadMany],
    ['pollMany', viaPollMany],
  ])('%s delivers each channel exactly once and in order across list changes and limits, without eviction', async (_, via) => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        const broker = new Broker<unknown>({ capacity: 10_000 });
        try {
          await check(broker, via(broker), steps, 10_000);
        } finally {
          await broker.close();
        }
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ['readMany', viaReadMany],
    ['pollMany', viaPollMany],
  ])('%s with a small history: every message is delivered, or a cursor_expired that moves only the expired channels', async (_, via) => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        const broker = new Broker<unknown>({ capacity: CAPACITY });
        try {
          await check(broker, via(broker), steps, CAPACITY);
        } finally {
          await broker.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('pollMany held across publishes delivers each channel exactly once and in order', async () => {
    const held = fc.record({ hold: fc.shuffledSubarray(CHANNELS, { minLength: 1 }), limit: fc.integer({ min: 1, max: 6 }) });
    const publish = fc.record({ publish: fc.constantFrom(...CHANNELS), count: fc.integer({ min: 1, max: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(held, publish, fc.constant({ settle: true as const })), { maxLength: 40 }), async (steps) => {
        const broker = new Broker<unknown>({ capacity: 10_000 });
        const published = new Map<string, number[]>(CHANNELS.map((channel) => [channel, []]));
        // The channels the cursor names, each with the index of the next message it must deliver.
        let named = new Map<string, number>();
        let cursor: string | undefined;
        let serial = 0;
        let pending: { list: string[]; limit: number; controller: AbortController; answer: Promise<Outcome | undefined> } | undefined;
        const settle = async () => {
          if (!pending) return;
          const { list, limit, controller, answer } = pending;
          pending = undefined;
          controller.abort(new Error('settled'));
          const outcome = await answer;
          // Aborted before an answer: the cursor is the one before, naming what it named.
          if (outcome === undefined || 'earliestCursor' in outcome) {
            expect(outcome).toBeUndefined(); // nothing is evicted here
            return;
          }
          expect(outcome.messages.length).toBeGreaterThan(0);
          expect(outcome.messages.length).toBeLessThanOrEqual(limit);
          // The answer's cursor names exactly the listed channels: an unnamed one started from
          // everything retained (the whole history here), a dropped one is forgotten.
          const after = new Map<string, number>();
          for (const channel of list) {
            const indexes = outcome.messages.filter((m) => m.channel === channel).map((m) => published.get(channel)!.indexOf(m.data as number));
            const start = named.get(channel) ?? 0;
            expect(indexes, `what ${channel} delivered`).toEqual(Array.from({ length: indexes.length }, (_, i) => start + i));
            after.set(channel, start + indexes.length);
          }
          expect(outcome.messages.every((m) => list.includes(m.channel))).toBe(true);
          named = after;
          cursor = outcome.cursor;
        };
        try {
          for (const s of steps) {
            if ('publish' in s) {
              for (let i = 0; i < s.count; i++) {
                await broker.publish(s.publish, ++serial);
                published.get(s.publish)!.push(serial);
              }
              // Let a woken poll read between some publishes and not others.
              if (serial % 2) await new Promise((resolve) => setImmediate(resolve));
            } else if ('hold' in s) {
              await settle();
              const controller = new AbortController();
              const answer = broker.pollMany(s.hold, { cursor, limit: s.limit, wait: 10_000, signal: controller.signal }).then(
                (result) => result as Outcome,
                (error: unknown) => {
                  if (error instanceof Error && error.message === 'settled') return undefined;
                  throw error;
                },
              );
              pending = { list: s.hold, limit: s.limit, controller, answer };
            } else {
              await settle();
            }
          }
          await settle();
          expect(broker.stats().waiters).toBe(0);
          // Nothing was delivered twice or skipped: what is left to read is exactly the rest.
          const rest = await broker.readMany(CHANNELS, { cursor, limit: 1000 });
          for (const channel of CHANNELS) {
            const ids = rest.messages.filter((m) => m.channel === channel).map((m) => m.data);
            expect(ids, `the rest of ${channel}`).toEqual(published.get(channel)!.slice(named.get(channel) ?? 0));
          }
        } finally {
          await broker.close();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('GET ?channels= (node adapter) with a small history: delivered once and in order, or a 410 that moves only the expired channels', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 30 }), async (steps) => {
        // A fresh broker and server each run: the model starts from empty histories.
        const broker = new Broker<unknown>({ capacity: CAPACITY });
        const server = await startServer('node', broker);
        try {
          await check(broker, viaHttp(server.origin), steps, CAPACITY);
        } finally {
          await server.close();
          await broker.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});
