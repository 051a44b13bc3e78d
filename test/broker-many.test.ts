import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, MemoryEngine, type LongPollError, type PollResult } from '../src/index.js';
import { requiredOnly } from './support/engines.js';
import { rejection } from './support/expect-error.js';

const brokers: Broker<unknown>[] = [];
function broker(options: ConstructorParameters<typeof Broker<unknown>>[0] = {}): Broker<unknown> {
  const made = new Broker<unknown>(options);
  brokers.push(made);
  return made;
}

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((made) => made.close()));
});

const data = (result: PollResult<unknown>) => result.messages.map((m) => `${m.channel}:${String(m.data)}`);

describe('Broker: many channels in one poll', () => {
  it('reads every channel, each message naming its channel, each channel in publish order', async () => {
    const b = broker();
    for (let i = 0; i < 3; i++) {
      await b.publish('a', i);
      await b.publish('b', i);
    }
    const first = await b.readMany(['a', 'b', 'c']);
    expect(data(first).filter((m) => m.startsWith('a:'))).toEqual(['a:0', 'a:1', 'a:2']);
    expect(data(first).filter((m) => m.startsWith('b:'))).toEqual(['b:0', 'b:1', 'b:2']);
    await b.publish('c', 'x');
    await b.publish('a', 3);
    expect(data(await b.readMany(['a', 'b', 'c'], { cursor: first.cursor })).sort()).toEqual(['a:3', 'c:x']);
  });

  it('shares the limit round-robin, so a backlog on one channel keeps no other out, and resumes exactly', async () => {
    const b = broker();
    for (let i = 0; i < 50; i++) await b.publish('busy', i);
    await b.publish('quiet', 'q0');
    await b.publish('quiet', 'q1');
    const first = await b.readMany(['busy', 'quiet'], { limit: 10 });
    expect(data(first)).toHaveLength(10);
    expect(data(first).filter((m) => m.startsWith('quiet:'))).toEqual(['quiet:q0', 'quiet:q1']);
    expect(data(first).filter((m) => m.startsWith('busy:'))).toEqual(Array.from({ length: 8 }, (_, i) => `busy:${i}`));
    const second = await b.readMany(['busy', 'quiet'], { cursor: first.cursor, limit: 10 });
    expect(data(second)).toEqual(Array.from({ length: 10 }, (_, i) => `busy:${i + 8}`));
  });

  it('keeps the cursor across a change of the channel list: an added channel reads everything retained, a removed one is dropped', async () => {
    const b = broker();
    await b.publish('a', 1);
    await b.publish('b', 1);
    const first = await b.readMany(['a']);
    await b.publish('a', 2);
    const second = await b.readMany(['a', 'b'], { cursor: first.cursor });
    expect(data(second).sort()).toEqual(['a:2', 'b:1']);
    const third = await b.readMany(['b'], { cursor: second.cursor });
    expect(data(third)).toEqual([]);
    await b.publish('a', 3);
    // a was dropped from the cursor: added back, it is read from everything retained.
    expect(data(await b.readMany(['a', 'b'], { cursor: third.cursor })).sort()).toEqual(['a:1', 'a:2', 'a:3']);
  });

  it('answers cursor_expired once, moving only the expired channels: the others lose nothing', async () => {
    const b = broker({ capacity: 3 });
    await b.publish('a', 0);
    await b.publish('b', 0);
    const start = await b.readMany(['a', 'b']);
    for (let i = 1; i <= 5; i++) await b.publish('a', i); // a's 1 and 2 are evicted
    await b.publish('b', 1);
    const error = await rejection(b.readMany(['a', 'b'], { cursor: start.cursor }), 'cursor_expired');
    const resumed = await b.readMany(['a', 'b'], { cursor: error.earliestCursor! });
    expect(data(resumed).sort()).toEqual(['a:3', 'a:4', 'a:5', 'b:1']);
  });

  it.each([
    ['every engine member', () => new MemoryEngine({ capacity: 3 })],
    // Without Batch.cursors, a channel cut short by the limit is read again for its cursor.
    ['the required members only', () => requiredOnly(new MemoryEngine({ capacity: 3 }))],
  ])('answers a composite cursor_expired when a publish evicts during the reads of a channel cut short by the limit (%s)', async (_, engine) => {
    const b = broker({ engine: engine() });
    const first = await b.readMany(['a', 'b']);
    for (let i = 0; i < 3; i++) await b.publish('a', i);
    await b.publish('b', 0);
    // a has 3 for a share of 1; this publish evicts a:0 before a can be read again for its cursor.
    const read = b.readMany(['a', 'b'], { cursor: first.cursor, limit: 2 });
    const published = b.publish('a', 3);
    let seen: string[];
    let cursor: string;
    try {
      // Answered from the first read (the engine gave each message's cursor): a:0 made it.
      const result = await read;
      seen = data(result);
      cursor = result.cursor;
    } catch (error) {
      // Or the composite cursor_expired: b keeps its place, a resumes at its oldest.
      expect(error).toMatchObject({ code: 'cursor_expired' });
      seen = [];
      cursor = (error as LongPollError).earliestCursor!;
    }
    await published;
    seen.push(...data(await b.readMany(['a', 'b'], { cursor })));
    expect(seen.sort()).toEqual(seen.includes('a:0') ? ['a:0', 'a:1', 'a:2', 'a:3', 'b:0'] : ['a:1', 'a:2', 'a:3', 'b:0']);
  });

  it('tells apart two channels whose 32-bit tags collide, however the list is ordered or shortened', async () => {
    // c693596 and c1170850 have the same FNV-1a hash, the tag inside the engines' cursors.
    const [x, y] = ['c693596', 'c1170850'];
    const b = broker();
    await b.publish(y, 1);
    await b.publish(y, 2);
    await b.publish(x, 1);
    const first = await b.readMany([x, y], { limit: 2 });
    expect(data(first).sort()).toEqual([`${x}:1`, `${y}:1`].sort());
    // Reordered: each channel keeps its own position (y must not take x's, past y:2).
    expect(data(await b.readMany([y, x], { cursor: first.cursor }))).toEqual([`${y}:2`]);
    // Shortened to y: x's entry is dropped, not given to y.
    expect(data(await b.readMany([y], { cursor: first.cursor }))).toEqual([`${y}:2`]);
  });

  // Known gap: a listed channel that the cursor does not name yet and that got none of the limit
  // (the other channels took it) stays unnamed in the next cursor, so it is read from everything
  // retained again; if its oldest message is evicted in between, that message is skipped without
  // a cursor_expired. Naming it at the position before its oldest retained message needs an engine
  // member that the Engine contract does not have (a cursor before the first retained message).
  it.fails('never skips the oldest message of a listed channel that got none of the limit when it is evicted', async () => {
    const b = broker({ capacity: 3 });
    await b.publish('a', 0);
    await b.publish('b', 0);
    const first = await b.readMany(['b', 'a'], { limit: 1 });
    expect(data(first)).toEqual(['b:0']);
    for (let i = 1; i <= 3; i++) await b.publish('a', i); // a:0 is evicted
    let resumed: PollResult<unknown> | undefined;
    try {
      resumed = await b.readMany(['b', 'a'], { cursor: first.cursor });
    } catch (error) {
      expect(error).toMatchObject({ code: 'cursor_expired' }); // acceptable: told
      return;
    }
    expect(data(resumed)).toEqual(['a:0', 'a:1', 'a:2', 'a:3']); // a silent gap: a:1, a:2, a:3
  });

  it('holds one poll for all its channels until a publish on any of them', async () => {
    const b = broker();
    const start = await b.readMany(['a', 'b', 'c']);
    const held = b.pollMany(['a', 'b', 'c'], { cursor: start.cursor, wait: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(b.stats().waiters).toBe(1);
    await b.publish('c', 'woke');
    expect(data(await held)).toEqual(['c:woke']);
    expect(b.stats()).toMatchObject({ waiters: 0 });
  });

  it('loses no wake-up: a publish while the poll reads its channels still answers it', async () => {
    const b = broker({ engine: requiredOnly(new MemoryEngine()) });
    let { cursor } = await b.readMany(['a', 'b']);
    for (let i = 0; i < 50; i++) {
      const held = b.pollMany(['a', 'b'], { cursor, wait: 2_000 });
      // Published while the poll is between its reads and its registration.
      await b.publish(i % 2 ? 'a' : 'b', i);
      const result = await held;
      expect(data(result)).toEqual([`${i % 2 ? 'a' : 'b'}:${i}`]);
      cursor = result.cursor;
    }
  });

  it('times out with a cursor that resumes exactly, and forgets an aborted poll at once', async () => {
    const b = broker();
    const timedOut = await b.pollMany(['a', 'b'], { wait: 30 });
    expect(timedOut).toMatchObject({ messages: [], timedOut: true });
    const controller = new AbortController();
    const held = b.pollMany(['a', 'b'], { cursor: timedOut.cursor, wait: 5_000, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort(new Error('gone'));
    await expect(held).rejects.toThrow('gone');
    expect(b.stats()).toMatchObject({ waiters: 0, channels: 0 });
    await b.publish('b', 1);
    expect(data(await b.pollMany(['a', 'b'], { cursor: timedOut.cursor, wait: 0 }))).toEqual(['b:1']);
  });

  it('answers held many-channel polls with shutting_down on close', async () => {
    const b = broker();
    const held = b.pollMany(['a', 'b'], { wait: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    await b.close();
    await expect(held).rejects.toMatchObject({ code: 'shutting_down' });
  });

  it.each([
    ['an empty list', [], undefined, 'invalid_channel'],
    ['a duplicate', ['a', 'a'], undefined, 'invalid_channel'],
    ['an empty name', ['a', ''], undefined, 'invalid_channel'],
    ['a garbage cursor', ['a'], 'garbage', 'invalid_cursor'],
  ])('refuses %s', async (_, channels, cursor, code) => {
    const b = broker();
    await expect(b.readMany(channels, { cursor })).rejects.toMatchObject({ code });
    await expect(b.pollMany(channels, { cursor, wait: 0 })).rejects.toMatchObject({ code });
  });

  it.each([
    ['every engine member', () => new MemoryEngine({ capacity: 10_000 })],
    ['the required members only', () => requiredOnly(new MemoryEngine({ capacity: 10_000 }))],
  ])(
    'delivers any interleaving of publishes once per channel, in order, across any changes of the channel list (%s)',
    async (_, engine) => {
      const CHANNELS = ['a', 'b', 'c', '__proto__'];
      const step = fc.oneof(
        fc.record({ publish: fc.constantFrom(...CHANNELS), count: fc.integer({ min: 1, max: 4 }) }),
        fc.record({ poll: fc.subarray(CHANNELS, { minLength: 1 }), limit: fc.integer({ min: 1, max: 5 }) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
          const b = new Broker<unknown>({ engine: engine() });
          try {
            const published = new Map<string, number[]>(CHANNELS.map((channel) => [channel, []]));
            // What a follower got of each channel since that channel was last added to its list.
            const received = new Map<string, number[]>();
            let list: string[] = [];
            let cursor: string | undefined;
            let serial = 0;
            const poll = async (channels: string[], limit: number) => {
              for (const channel of channels) if (!list.includes(channel)) received.set(channel, []);
              for (const channel of list) if (!channels.includes(channel)) received.delete(channel);
              list = channels;
              const result = await b.pollMany(channels, { cursor, limit, wait: 0 });
              cursor = result.cursor;
              for (const message of result.messages) received.get(message.channel)!.push(message.data as number);
              return result.messages.length;
            };
            for (const s of steps) {
              if ('publish' in s) {
                for (let i = 0; i < s.count; i++) {
                  await b.publish(s.publish, ++serial);
                  published.get(s.publish)!.push(serial);
                }
              } else {
                await poll(s.poll, s.limit);
              }
              // Within one membership, a channel's messages are a prefix of what was published, in order.
              for (const [channel, got] of received) {
                expect(got).toEqual(published.get(channel)!.slice(0, got.length));
              }
            }
            // Drain with every channel listed: each channel's membership ends with all of it.
            const finalList = [...new Set([...list, ...CHANNELS])];
            while ((await poll(finalList, 5)) > 0);
            for (const channel of CHANNELS) expect(received.get(channel)).toEqual(published.get(channel));
          } finally {
            await b.close();
          }
        }),
        { numRuns: 200 },
      );
    },
  );
});

describe.each([
  ['the engine tail', () => new MemoryEngine()],
  ['reading to the end (an engine without tail)', () => requiredOnly(new MemoryEngine({ capacity: 2500 }))],
])("firstMessage: 'newest' through %s", (_name, engineOf) => {
  it('reads, polls and polls many channels from after the newest message', async () => {
    const b = broker({ engine: engineOf() });
    // More than one read of 1,000 messages, for the engine read to its end.
    for (let i = 0; i < 2100; i++) await b.publish('a', i);
    await b.publish('b', 'old');
    expect((await b.read('a', { firstMessage: 'newest' })).messages).toEqual([]);
    expect((await b.readMany(['a', 'b'], { firstMessage: 'newest' })).messages).toEqual([]);
    const one = b.poll('a', { firstMessage: 'newest', wait: 5_000 });
    const many = b.pollMany(['a', 'b'], { firstMessage: 'newest', wait: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(b.stats().waiters).toBe(2);
    await b.publish('b', 'new');
    await b.publish('a', 'new');
    expect((await one).messages.map((m) => m.data)).toEqual(['new']);
    expect((await many).messages.map((m) => `${m.channel}:${String(m.data)}`)).toEqual(['b:new']);
    // A cursor wins: 'newest' only places reads that have none.
    const first = await b.read('b', { limit: 1 });
    expect((await b.read('b', { cursor: first.cursor, firstMessage: 'newest' })).messages.map((m) => m.data)).toEqual(['new']);
  });

  it('refuses another value with invalid_option', async () => {
    const b = broker({ engine: engineOf() });
    await rejection(b.read('a', { firstMessage: 'latest' as 'newest' }), 'invalid_option');
  });
});
