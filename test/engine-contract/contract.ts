import { afterEach, describe, expect, it } from 'vitest';
import { LongPollError, type Batch, type Engine, type EngineListener, type EvictReason } from 'longpoll-kit';

/** How the contract suite makes engines of one kind. */
export interface EngineFixture {
  /** A new engine. Engines of a shared fixture see one history, like instances on one Redis. */
  engine(options?: { capacity?: number; maxAge?: number }): Engine;
  /** Whether engines made by `engine()` share one history. */
  readonly shared: boolean;
  /** Loses every history, as a flush or a restart without persistence does. */
  loseHistory(): Promise<void>;
  /** Deletes one channel's stored history behind the engines' backs, where there is such a thing. */
  deleteChannel?: (channel: string) => Promise<void>;
  /**
   * What the store behind the engines holds (its keys, its rows), where there is such a
   * thing: taken before and after reads that must write nothing, and compared.
   */
  stored?: () => Promise<unknown>;
}

/** What a listener heard. */
interface Heard {
  appended: string[];
  resyncs: number;
  evicted: { channel: string; count: number; reason: EvictReason }[];
}

function listenTo(engine: Engine): Heard {
  const heard: Heard = { appended: [], resyncs: 0, evicted: [] };
  const listener: EngineListener = {
    appended: (channel) => heard.appended.push(channel),
    resync: () => heard.resyncs++,
    evicted: (channel, count, reason) => heard.evicted.push({ channel, count, reason }),
  };
  void engine.attach(listener);
  return heard;
}

async function failure(promise: Promise<unknown>): Promise<LongPollError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(LongPollError);
  return error as LongPollError;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits, at most `ms`, until `check` holds. */
async function eventually(check: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await sleep(5);
  expect(check()).toBe(true);
}

const json = (value: unknown) => JSON.stringify(value);

/**
 * Registers the engine contract (docs/architecture.md, "Engines"): ordering, cursors, expiry by count and
 * by age, epochs, concurrent appends and wake-ups, for the engines `fixture` makes.
 */
export function engineContract(name: string, fx: EngineFixture): void {
  describe(`${name}: the engine contract`, () => {
    const open: Engine[] = [];
    let serial = 0;
    /** A channel no other test touches, on a shared Redis too. */
    const channel = () => `contract:${Date.now().toString(36)}:${++serial}`;
    const make = (options?: { capacity?: number; maxAge?: number }) => {
      const engine = fx.engine(options);
      open.push(engine);
      return engine;
    };

    afterEach(async () => {
      await Promise.all(open.splice(0).map((engine) => engine.close()));
    });

    describe('ordering', () => {
      it('returns messages in publish order, with ULID ids that sort in that order', async () => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        const before = Date.now();
        for (let i = 0; i < 20; i++) await engine.append(room, json({ n: i }));
        const { messages } = await engine.read(room, undefined, 100);
        expect(messages.map((m) => m.data)).toEqual(Array.from({ length: 20 }, (_, n) => ({ n })));
        const ids = messages.map((m) => m.id);
        expect(ids.every((id) => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id))).toBe(true);
        expect([...ids].sort()).toEqual(ids);
        for (const message of messages) {
          expect(message.channel).toBe(room);
          expect(new Date(message.publishedAt).toISOString()).toBe(message.publishedAt);
          expect(Date.parse(message.publishedAt)).toBeGreaterThanOrEqual(before - 1_000);
          expect(Date.parse(message.publishedAt)).toBeLessThanOrEqual(Date.now() + 1_000);
        }
      });

      it('returns what append returned, as a copy of the JSON', async () => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        const published = await engine.append(room, json({ text: 'hi', list: [1, null, 'x'] }));
        const { messages } = await engine.read(room, undefined, 10);
        expect(messages).toHaveLength(1);
        const { cursor: _cursor, ...message } = published;
        expect(messages[0]).toEqual(message);
      });
    });

    describe('cursors', () => {
      it('gives, on a channel that never existed, a cursor after which its first message is delivered', async () => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        const empty = await engine.read(room, undefined, 10);
        expect(empty.messages).toEqual([]);
        expect(empty.cursor).toMatch(/^[A-Za-z0-9._~-]+$/);
        await engine.append(room, json('first'));
        const next = await engine.read(room, empty.cursor, 10);
        expect(next.messages.map((m) => m.data)).toEqual(['first']);
      });

      it('resumes exactly after the cursor, in pages of `limit`, without repeating or skipping', async () => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        for (let i = 0; i < 10; i++) await engine.append(room, json(i));
        const seen: unknown[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 5; page++) {
          const batch = await engine.read(room, cursor, 3);
          expect(batch.messages.length).toBeLessThanOrEqual(3);
          seen.push(...batch.messages.map((m) => m.data));
          cursor = batch.cursor;
        }
        expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        const idle = await engine.read(room, cursor, 3);
        expect(idle.messages).toEqual([]);
        await engine.append(room, json(10));
        expect((await engine.read(room, idle.cursor, 3)).messages.map((m) => m.data)).toEqual([10]);
      });

      it('resumes just after a published message from the cursor append returned', async () => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        await engine.append(room, json('a'));
        const b = await engine.append(room, json('b'));
        await engine.append(room, json('c'));
        await engine.append(room, json('d'));
        expect((await engine.read(room, b.cursor, 10)).messages.map((m) => m.data)).toEqual(['c', 'd']);
      });

      it('rejects garbage cursors with invalid_cursor', async () => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        await engine.append(room, json(1));
        for (const garbage of ['garbage', '0', '...', 'a.b.c', '%00', ' ', 'x'.repeat(300)]) {
          expect((await failure(engine.read(room, garbage, 10))).code).toBe('invalid_cursor');
        }
      });

      it("rejects another channel's cursor with invalid_cursor", async () => {
        const engine = make();
        listenTo(engine);
        const [a, b] = [channel(), channel()];
        const fromA = await engine.append(a, json('a'));
        await engine.append(b, json('b'));
        const error = await failure(engine.read(b, fromA.cursor, 10));
        expect(error.code).toBe('invalid_cursor');
        expect(error.status).toBe(400);
      });

      it('checks a cursor synchronously: its own passes, garbage and another channel\'s fail with invalid_cursor', async () => {
        const engine = make();
        listenTo(engine);
        const [a, b] = [channel(), channel()];
        const fromA = await engine.append(a, json('a'));
        expect(typeof engine.checkCursor).toBe('function');
        expect(() => engine.checkCursor!(a, fromA.cursor)).not.toThrow();
        for (const [room, cursor] of [[a, 'garbage'], [b, fromA.cursor]] as const) {
          let thrown: unknown;
          try {
            engine.checkCursor!(room, cursor);
          } catch (error) {
            thrown = error;
          }
          expect(thrown).toBeInstanceOf(LongPollError);
          expect((thrown as LongPollError).code).toBe('invalid_cursor');
        }
      });
    });

    describe('shared messages', () => {
      it('reads frozen batches and payloads, which every woken poll shares', async () => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        await engine.append(room, json({ nested: { list: [1] } }));
        const { messages } = await engine.read(room, undefined, 10);
        expect(Object.isFrozen(messages)).toBe(true);
        const data = messages[0]!.data as { nested: { list: number[] } };
        expect(Object.isFrozen(data.nested.list)).toBe(true);
      });
    });

    describe('expiry by count', () => {
      it('keeps the newest `capacity` messages and tells the listener what left', async () => {
        const engine = make({ capacity: 3 });
        const heard = listenTo(engine);
        const room = channel();
        for (let i = 1; i <= 5; i++) await engine.append(room, json(i));
        expect((await engine.read(room, undefined, 10)).messages.map((m) => m.data)).toEqual([3, 4, 5]);
        const evicted = heard.evicted.filter((e) => e.channel === room && e.reason === 'capacity');
        expect(evicted.reduce((sum, e) => sum + e.count, 0)).toBe(2);
      });

      it('fails a cursor whose next messages were pushed out with cursor_expired and a resumable earliestCursor', async () => {
        const engine = make({ capacity: 3 });
        listenTo(engine);
        const room = channel();
        const first = await engine.append(room, json(1));
        const second = await engine.append(room, json(2));
        for (let i = 3; i <= 5; i++) await engine.append(room, json(i));
        const error = await failure(engine.read(room, first.cursor, 10));
        expect(error.code).toBe('cursor_expired');
        expect(error.status).toBe(410);
        expect(error.earliestCursor).toEqual(expect.any(String));
        expect((await engine.read(room, error.earliestCursor, 10)).messages.map((m) => m.data)).toEqual([3, 4, 5]);
        // Nothing after the second message was lost: that cursor still resumes.
        expect((await engine.read(room, second.cursor, 10)).messages.map((m) => m.data)).toEqual([3, 4, 5]);
      });
    });

    describe('expiry by age', () => {
      it('never returns a message older than maxAge, and fails a cursor before it with cursor_expired', async () => {
        const engine = make({ maxAge: 500 });
        listenTo(engine);
        const room = channel();
        const start = await engine.read(room, undefined, 10);
        await engine.append(room, json('old'));
        await sleep(350);
        const fresh = await engine.append(room, json('fresh'));
        await sleep(250); // 'old' is now at least 600 ms old, 'fresh' about 250 ms
        expect((await engine.read(room, undefined, 10)).messages.map((m) => m.data)).toEqual(['fresh']);
        const error = await failure(engine.read(room, start.cursor, 10));
        expect(error.code).toBe('cursor_expired');
        expect((await engine.read(room, error.earliestCursor, 10)).messages.map((m) => m.data)).toEqual(['fresh']);

        await sleep(400); // now 'fresh' is gone too
        expect((await engine.read(room, undefined, 10)).messages).toEqual([]);
        // A reader that had everything lost nothing: its cursor still resumes.
        const idle = await engine.read(room, fresh.cursor, 10);
        expect(idle.messages).toEqual([]);
        await engine.append(room, json('later'));
        expect((await engine.read(room, idle.cursor, 10)).messages.map((m) => m.data)).toEqual(['later']);
      });
    });

    describe('epochs', () => {
      it('fails a cursor from a lost history with cursor_expired, never a silent gap', async () => {
        const before = make();
        listenTo(before);
        const room = channel();
        const seen = await before.append(room, json('seen'));
        await before.append(room, json('missed'));
        await fx.loseHistory();
        const after = make();
        listenTo(after);
        await after.append(room, json('new'));
        const error = await failure(after.read(room, seen.cursor, 10));
        expect(error.code).toBe('cursor_expired');
        expect((await after.read(room, error.earliestCursor, 10)).messages.map((m) => m.data)).toEqual(['new']);
      });

      // Only engines that keep history outside the process can lose one channel's.
      const { deleteChannel } = fx;
      if (deleteChannel) {
        it('fails a cursor before messages whose stored history was deleted with cursor_expired', async () => {
          const engine = make();
          listenTo(engine);
          const room = channel();
          const seen = await engine.append(room, json('seen'));
          await engine.append(room, json('missed'));
          await deleteChannel(room);
          await engine.append(room, json('new'));
          const error = await failure(engine.read(room, seen.cursor, 10));
          expect(error.code).toBe('cursor_expired');
          expect((await engine.read(room, error.earliestCursor, 10)).messages.map((m) => m.data)).toEqual(['new']);
        });
      }
    });

    describe('concurrent appends', () => {
      it('gives concurrent appends one unique order that every reader and every cursor agree on', async () => {
        const engines = fx.shared ? [make(), make()] : [make()];
        for (const engine of engines) listenTo(engine);
        const room = channel();
        const published = await Promise.all(
          Array.from({ length: 200 }, (_, n) => engines[n % engines.length]!.append(room, json(n))),
        );
        const { messages } = await engines[0]!.read(room, undefined, 1000);
        expect(messages).toHaveLength(200);
        expect(new Set(messages.map((m) => m.id)).size).toBe(200);
        expect(new Set(messages.map((m) => m.data)).size).toBe(200);
        // Each engine's own appends keep their call order and id order.
        for (let e = 0; e < engines.length; e++) {
          const own = messages.filter((m) => (m.data as number) % engines.length === e);
          expect(own.map((m) => m.data)).toEqual([...own.map((m) => m.data)].sort((x, y) => (x as number) - (y as number)));
          expect(own.map((m) => m.id)).toEqual([...own.map((m) => m.id)].sort());
        }
        // Every published cursor resumes exactly after its own message, in that one order.
        const order = messages.map((m) => m.id);
        for (const message of published.filter((_, n) => n % 17 === 0)) {
          const after = await engines[1 % engines.length]!.read(room, message.cursor, 1000);
          expect(after.messages.map((m) => m.id)).toEqual(order.slice(order.indexOf(message.id) + 1));
        }
      });
    });

    describe('optional fast paths agree with the slow ones', () => {
      it('readNow returns what read returns, and Batch.json is JSON.stringify of the messages', async () => {
        const engine = make({ capacity: 50 });
        listenTo(engine);
        const room = channel();
        const cursors: (string | undefined)[] = [undefined];
        for (let i = 0; i < 60; i++) {
          const published = await engine.append(room, json({ i, text: `é\u2028"${i}"`, list: [i, null] }));
          if (i % 7 === 0) cursors.push(published.cursor);
        }
        const other = channel();
        cursors.push((await engine.read(other, undefined, 1)).cursor);
        for (const cursor of cursors) {
          for (const limit of [1, 3, 100]) {
            const slow: Batch | Error = await engine.read(room, cursor, limit).then(
              (batch) => batch,
              (error: unknown) => error as Error,
            );
            if (slow instanceof Error) {
              if (engine.readNow) expect(() => engine.readNow!(room, cursor, limit)).toThrow(slow.message);
              continue;
            }
            if (slow.json !== undefined) expect(slow.json).toBe(JSON.stringify(slow.messages));
            if (!engine.readNow) continue;
            const fast = engine.readNow(room, cursor, limit);
            expect(fast.messages).toEqual(slow.messages);
            expect(fast.cursor).toBe(slow.cursor);
            expect(fast.cursors).toEqual(slow.cursors);
            expect(fast.before).toBe(slow.before);
            if (fast.json !== undefined) expect(fast.json).toBe(JSON.stringify(fast.messages));
          }
        }
      });
    });

    describe('optional members: the cursor after each message (Batch.cursors) and tail', () => {
      /** The data of everything `engine` reads after `cursor`, in pages. */
      const rest = async (engine: Engine, room: string, cursor: string | undefined) => {
        const seen: unknown[] = [];
        for (let page = 0; page < 10; page++) {
          const batch = await engine.read(room, cursor, 100);
          if (batch.messages.length === 0) return seen;
          seen.push(...batch.messages.map((m) => m.data));
          cursor = batch.cursor;
        }
        throw new Error('More than 10 pages');
      };

      it('gives one cursor per message, after which a read resumes exactly at the next message', async ({ skip }) => {
        const engine = make();
        listenTo(engine);
        const [room, other] = [channel(), channel()];
        // The other channel's appends take positions between this channel's, where an engine has one sequence.
        for (let i = 0; i < 10; i++) {
          await engine.append(room, json(i));
          await engine.append(other, json(`other ${i}`));
        }
        const probe = await engine.read(room, undefined, 100);
        if (probe.cursors === undefined) return skip('this engine gives no Batch.cursors');
        const all = Array.from({ length: 10 }, (_, n) => n);
        let cursor: string | undefined;
        for (const limit of [4, 4, 4]) {
          const batch = await engine.read(room, cursor, limit);
          const data = batch.messages.map((m) => m.data);
          expect(batch.cursors).toHaveLength(batch.messages.length);
          expect(Object.isFrozen(batch.cursors)).toBe(true);
          for (let i = 0; i < batch.messages.length; i++) {
            const after = batch.cursors![i]!;
            expect(after).toMatch(/^[A-Za-z0-9._~-]+$/);
            engine.checkCursor?.(room, after);
            const resumed = await engine.read(room, after, limit);
            // Exactly the batch's next messages, then the rest of the channel.
            expect(resumed.messages.map((m) => m.data)).toEqual(all.slice(all.indexOf(data[i] as number) + 1).slice(0, limit));
            expect(await rest(engine, room, after)).toEqual(all.slice(all.indexOf(data[i] as number) + 1));
          }
          // The last cursor skips nothing that batch.cursor reads.
          const last = batch.cursors![batch.cursors!.length - 1]!;
          expect(await rest(engine, room, last)).toEqual(await rest(engine, room, batch.cursor));
          cursor = batch.cursor;
        }
        const end = await engine.read(room, cursor, 4);
        expect(end.messages).toEqual([]);
        expect(end.cursors ?? []).toEqual([]);
        // Past the channel's end too, the last cursor and batch.cursor read the same new message.
        const whole = await engine.read(room, undefined, 100);
        await engine.append(other, json('elsewhere'));
        await engine.append(room, json('new'));
        expect(await rest(engine, room, whole.cursors![9])).toEqual(['new']);
        expect(await rest(engine, room, whole.cursor)).toEqual(['new']);
      });

      it('gives, for a channel that never existed, a tail from which a read gets exactly its first message', async ({ skip }) => {
        const engine = make();
        listenTo(engine);
        if (!engine.tail) return skip('this engine has no tail');
        const room = channel();
        const tail = await engine.tail(room);
        expect(tail).toMatch(/^[A-Za-z0-9._~-]+$/);
        engine.checkCursor?.(room, tail);
        expect((await engine.read(room, tail, 10)).messages).toEqual([]);
        const first = await engine.append(room, json('first'));
        await engine.append(channel(), json('elsewhere'));
        const batch = await engine.read(room, tail, 10);
        expect(batch.messages.map((m) => m.id)).toEqual([first.id]);
        expect(await rest(engine, room, tail)).toEqual(['first']);
      });

      it('gives, after several publishes, a tail that reads nothing until the next publish', async ({ skip }) => {
        const engines = fx.shared ? [make(), make()] : [make()];
        for (const engine of engines) listenTo(engine);
        const [engine, writer] = [engines[0]!, engines[engines.length - 1]!];
        if (!engine.tail) return skip('this engine has no tail');
        const room = channel();
        for (let i = 0; i < 5; i++) await writer.append(room, json(i));
        const tail = await engine.tail(room);
        engine.checkCursor?.(room, tail);
        const idle = await engine.read(room, tail, 10);
        expect(idle.messages).toEqual([]);
        await writer.append(channel(), json('elsewhere'));
        expect((await engine.read(room, tail, 10)).messages).toEqual([]);
        const next = await writer.append(room, json('next'));
        await writer.append(room, json('after'));
        const batch = await engine.read(room, tail, 1);
        expect(batch.messages.map((m) => m.id)).toEqual([next.id]);
        expect(await rest(engine, room, tail)).toEqual(['next', 'after']);
        // A read to the channel's end and its tail lead to the same messages.
        const end = await rest(engine, room, (await engine.read(room, undefined, 100)).cursor);
        expect(end).toEqual([]);
        const again = await engine.tail(room);
        await writer.append(room, json('last'));
        expect(await rest(engine, room, again)).toEqual(['last']);
      });

      it('gives, for a channel whose messages were pushed out or expired, a tail that resumes without cursor_expired', async ({ skip }) => {
        const engine = make({ capacity: 2, maxAge: 300 });
        listenTo(engine);
        if (!engine.tail) return skip('this engine has no tail');
        const [trimmed, aged] = [channel(), channel()];
        for (let i = 0; i < 5; i++) await engine.append(trimmed, json(i));
        const afterTrim = await engine.tail(trimmed);
        expect((await engine.read(trimmed, afterTrim, 10)).messages).toEqual([]);
        await engine.append(aged, json('old'));
        const beforeAge = await engine.tail(aged);
        await sleep(400); // everything on both channels is now older than maxAge
        for (const room of [trimmed, aged]) {
          const tail = await engine.tail(room);
          expect((await engine.read(room, tail, 10)).messages).toEqual([]);
          await engine.append(room, json(`new on ${room}`));
          expect(await rest(engine, room, tail)).toEqual([`new on ${room}`]);
        }
        // Tails taken before the messages expired lost nothing either.
        expect(await rest(engine, trimmed, afterTrim)).toEqual([`new on ${trimmed}`]);
        expect(await rest(engine, aged, beforeAge)).toEqual([`new on ${aged}`]);
      });

      it('stores nothing when it reads, or takes the tail of, channels that have no history', async () => {
        const engine = make();
        listenTo(engine);
        await engine.read(channel(), undefined, 10); // engine-wide state, if any, once
        const stats = engine.stats();
        const stored = await fx.stored?.();
        const rooms = Array.from({ length: 20 }, () => channel());
        for (const room of rooms) {
          const { cursor, before } = await engine.read(room, undefined, 10);
          // Nothing read, nothing to name a channel at (Batch.before).
          expect(before).toBeUndefined();
          await engine.read(room, cursor, 10);
          if (engine.tail) await engine.read(room, await engine.tail(room), 10);
        }
        for (const room of rooms) expect(engine.retains(room)).toBe(false);
        expect(engine.stats()).toEqual(stats);
        expect(await fx.stored?.()).toEqual(stored);
      });
    });

    describe('optional member: where a read from everything retained started (Batch.before)', () => {
      /** The data of everything `engine` reads after `cursor`, in pages. */
      const rest = async (engine: Engine, room: string, cursor: string | undefined) => {
        const seen: unknown[] = [];
        for (let page = 0; page < 10; page++) {
          const batch = await engine.read(room, cursor, 100);
          if (batch.messages.length === 0) return seen;
          seen.push(...batch.messages.map((m) => m.data));
          cursor = batch.cursor;
        }
        throw new Error('More than 10 pages');
      };

      it('gives, with a read from everything retained, a cursor from which a read returns the same messages', async ({ skip }) => {
        const engines = fx.shared ? [make({ capacity: 4 }), make({ capacity: 4 })] : [make({ capacity: 4 })];
        for (const engine of engines) listenTo(engine);
        const [engine, reader] = [engines[0]!, engines[engines.length - 1]!];
        const [room, other] = [channel(), channel()];
        // Six on a history of four: the first two were pushed out, and the read starts at 2.
        for (let i = 0; i < 6; i++) {
          await engine.append(room, json(i));
          await engine.append(other, json(`other ${i}`));
        }
        const probe = await engine.read(room, undefined, 100);
        if (probe.before === undefined) return skip('this engine gives no Batch.before');
        for (const limit of [1, 3, 100]) {
          const batch = await engine.read(room, undefined, limit);
          const before = batch.before!;
          expect(before).toMatch(/^[A-Za-z0-9._~-]+$/);
          reader.checkCursor?.(room, before);
          // Exactly the same messages, on this instance and on another one of the same history.
          for (const from of engines) {
            const again = await from.read(room, before, limit);
            expect(again.messages).toEqual(batch.messages);
            expect(again.cursor).toBe(batch.cursor);
          }
          expect(await rest(reader, room, before)).toEqual([2, 3, 4, 5]);
        }
        // Other channels' appends move nothing: the same messages, then what comes next.
        await engine.append(other, json('elsewhere'));
        expect(await rest(reader, room, probe.before)).toEqual([2, 3, 4, 5]);
      });

      it('fails a read from it with cursor_expired once the oldest message has left, by capacity or by age', async ({ skip }) => {
        const engine = make({ capacity: 3, maxAge: 300 });
        listenTo(engine);
        const [trimmed, aged] = [channel(), channel()];
        for (let i = 0; i < 3; i++) await engine.append(trimmed, json(i));
        await engine.append(aged, json('old'));
        const [full, young] = [await engine.read(trimmed, undefined, 1), await engine.read(aged, undefined, 10)];
        if (full.before === undefined) return skip('this engine gives no Batch.before');
        await engine.append(trimmed, json(3)); // 0 is pushed out
        const error = await failure(engine.read(trimmed, full.before, 10));
        expect(error.code).toBe('cursor_expired');
        expect(await rest(engine, trimmed, error.earliestCursor)).toEqual([1, 2, 3]);
        await sleep(400); // old is now older than maxAge
        await engine.append(aged, json('new'));
        const aging = await failure(engine.read(aged, young.before, 10));
        expect(aging.code).toBe('cursor_expired');
        expect(await rest(engine, aged, aging.earliestCursor)).toEqual(['new']);
      });

      it('fails a read from it with cursor_expired once the history is lost', async ({ skip }) => {
        const engine = make();
        listenTo(engine);
        const room = channel();
        await engine.append(room, json('lost'));
        const { before } = await engine.read(room, undefined, 10);
        if (before === undefined) return skip('this engine gives no Batch.before');
        await fx.loseHistory();
        const after = make();
        listenTo(after);
        await after.append(room, json('new'));
        const error = await failure(after.read(room, before, 10));
        expect(error.code).toBe('cursor_expired');
        expect(await rest(after, room, error.earliestCursor)).toEqual(['new']);
      });
    });

    describe('wake-ups', () => {
      it('tells its listener about its own appends', async () => {
        const engine = make();
        const heard = listenTo(engine);
        const room = channel();
        await engine.append(room, json(1));
        await eventually(() => heard.appended.includes(room));
      });

      it('notifies once the message is readable: a read started inside appended sees it', async () => {
        const engine = make();
        const room = channel();
        const reads: Promise<Batch>[] = [];
        void engine.attach({
          appended: (name) => {
            if (name === room) reads.push(engine.read(room, undefined, 10));
          },
          resync: () => {},
          evicted: () => {},
        });
        await engine.append(room, json('seen'));
        await eventually(() => reads.length > 0);
        expect((await reads[0]!).messages.map((m) => m.data)).toEqual(['seen']);
      });

      it('notifies inside append, before it returns, when it reads synchronously (readNow)', async () => {
        const engine = make();
        const heard = listenTo(engine);
        const room = channel();
        const appending = engine.append(room, json(1));
        // The broker relies on this order to report deliver events after the publish event.
        if (engine.readNow) expect(heard.appended).toContain(room);
        await appending;
        await eventually(() => heard.appended.includes(room));
      });

      if (fx.shared) {
        it('tells its listener about appends made through another instance', async () => {
          const [a, b] = [make(), make()];
          listenTo(a);
          const heard = listenTo(b);
          await eventually(() => heard.resyncs > 0, 5_000); // b listens
          const room = channel();
          await a.append(room, json('hello'));
          await eventually(() => heard.appended.includes(room));
          expect((await b.read(room, undefined, 10)).messages.map((m) => m.data)).toEqual(['hello']);
        });
      }
    });
  });
}
