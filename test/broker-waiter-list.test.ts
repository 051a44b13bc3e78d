/**
 * Attacks on `WaiterList` (src/waiter.ts), the array a channel keeps its held polls in: a poll
 * is taken off by moving the last one into its place, and `Waiter.detach()` relies on `delete`
 * returning false for a poll already taken off, which is what answers a poll at most once. So:
 * polls taken off in the middle, answers that cancel, expire, re-poll, publish or close the
 * broker while a drain still iterates its groups, an engine read during which polls go away, and
 * random interleavings of all of it. Every poll must be answered exactly once and
 * `stats().waiters` must come back to what is really held.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, type LongPollError, type Engine } from '../src/index.js';
import { PollTicket, startPoll, type Answer, type PollOptions } from '../src/poll.js';
import { WaiterList, type Waiter } from '../src/waiter.js';
import { gatedEngine } from './support/engines.js';

/** Lets pending promise callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Rejects after `ms` ms: a poll that is never answered fails the test instead of hanging it. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A ticket that counts what the broker calls, and may act inside the call as the HTTP layer's do. */
class Counting extends PollTicket<unknown> {
  readonly answers: Answer<unknown>[] = [];
  readonly errors: unknown[] = [];
  onResolve: ((answer: Answer<unknown>) => void) | undefined;

  constructor(readonly name: string) {
    super();
  }

  get settled(): number {
    return this.answers.length + this.errors.length;
  }

  resolve(answer: Answer<unknown>): void {
    this.answers.push(answer);
    this.onResolve?.(answer);
  }

  reject(error: unknown): void {
    this.errors.push(error);
  }
}

let brokers: Broker<unknown>[] = [];
function brokerOf(engine?: Engine): Broker<unknown> {
  const broker = new Broker<unknown>(engine ? { engine } : {});
  brokers.push(broker);
  return broker;
}
afterEach(async () => {
  await Promise.all(brokers.map((broker) => broker.close()));
  brokers = [];
});

function start(broker: Broker<unknown>, channel: string, options: PollOptions, ticket: PollTicket<unknown>): void {
  broker[startPoll](channel, options, ticket);
}

describe('WaiterList', () => {
  /** A deterministic PRNG (mulberry32), so that a failure replays. */
  function random(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('keeps every held waiter at its place and every removed one at -1, through 5,000 random adds and deletes', () => {
    const next = random(7);
    const list = new WaiterList<unknown>();
    const held = new Set<Waiter<unknown>>();
    const removed: Waiter<unknown>[] = [];
    for (let step = 0; step < 5_000; step++) {
      const r = next();
      if (r < 0.45 || held.size === 0) {
        const waiter = { place: -1 } as Waiter<unknown>;
        list.add(waiter);
        held.add(waiter);
      } else if (r < 0.9) {
        // A waiter anywhere: the first, the last, the middle.
        const all = [...held];
        const waiter = all[Math.floor(next() * all.length)]!;
        expect(list.delete(waiter)).toBe(true);
        held.delete(waiter);
        removed.push(waiter);
      } else if (removed.length > 0) {
        // Taken off again (a publish, a timeout and a disconnect racing): nothing happens.
        const waiter = removed[Math.floor(next() * removed.length)]!;
        const size = list.size;
        expect(list.delete(waiter)).toBe(false);
        expect(list.size).toBe(size);
      }
      expect(list.size).toBe(held.size);
      for (let i = 0; i < list.size; i++) expect(list.at(i).place).toBe(i);
      expect(new Set(list.snapshot())).toEqual(held);
    }
    for (const waiter of removed) expect(waiter.place).toBe(-1);
    // A waiter of another list at the same index is not this list's.
    const other = new WaiterList<unknown>();
    const stranger = { place: -1 } as Waiter<unknown>;
    other.add(stranger);
    if (list.size > 0) expect(list.delete(stranger)).toBe(false);
    expect(other.size).toBe(1);
  });

  it('takes off a waiter that was moved into a removed one’s place, and the last one, and the only one', () => {
    const list = new WaiterList<unknown>();
    const [a, b, c, d] = Array.from({ length: 4 }, () => ({ place: -1 }) as Waiter<unknown>);
    for (const waiter of [a, b, c, d]) list.add(waiter!);
    expect(list.delete(a!)).toBe(true); // d moves to 0
    expect(d!.place).toBe(0);
    expect(list.delete(d!)).toBe(true); // the moved one; c moves to 0
    expect(c!.place).toBe(0);
    expect(list.delete(b!)).toBe(true); // the last
    expect(list.delete(c!)).toBe(true); // the only one
    expect(list.size).toBe(0);
    for (const waiter of [a, b, c, d]) {
      expect(waiter!.place).toBe(-1);
      expect(list.delete(waiter!)).toBe(false);
    }
  });

  it('refuses a waiter taken off (place -1) without looking at the array: a polluted Array.prototype[-1] is never read', () => {
    const list = new WaiterList<unknown>();
    const [a, b] = [{ place: -1 }, { place: -1 }] as Waiter<unknown>[];
    list.add(a!);
    list.add(b!);
    expect(list.delete(a!)).toBe(true);
    let reads = 0;
    // Without the `place < 0` guard, `array[-1]` goes to the prototype chain.
    Object.defineProperty(Array.prototype, '-1', {
      configurable: true,
      get() {
        reads++;
        return a;
      },
    });
    try {
      expect(list.delete(a!)).toBe(false);
      expect(list.delete({ place: -1 } as Waiter<unknown>)).toBe(false);
    } finally {
      delete (Array.prototype as unknown as Record<string, unknown>)['-1'];
    }
    expect(reads).toBe(0);
    expect(list.size).toBe(1);
    expect(list.at(0)).toBe(b);
  });
});

describe('held polls taken off in the middle', () => {
  it('answers every poll left after aborts in the middle, at the front and of a moved poll', async () => {
    const broker = brokerOf();
    const controllers = Array.from({ length: 8 }, () => new AbortController());
    const polls = controllers.map((controller) => broker.poll('c', { wait: 10_000, signal: controller.signal }));
    await settle();
    expect(broker.stats().waiters).toBe(8);
    // 0 first (7 moves to 0), then 7 (the moved one), then one in the middle.
    const gone = [0, 7, 3];
    for (const i of gone) controllers[i]!.abort(new Error(`gone ${i}`));
    for (const i of gone) await expect(within(polls[i]!, 2_000, `poll ${i}`)).rejects.toThrow(`gone ${i}`);
    expect(broker.stats().waiters).toBe(5);
    const deliveries: number[] = [];
    broker.on('deliver', ({ polls: count }) => deliveries.push(count));
    await broker.publish('c', 'x');
    for (const [i, poll] of polls.entries()) {
      if (gone.includes(i)) continue;
      expect((await within(poll, 2_000, `poll ${i}`)).messages.map((m) => m.data)).toEqual(['x']);
    }
    expect(deliveries).toEqual([5]);
    expect(broker.stats()).toMatchObject({ waiters: 0 });
  });

  it('takes off by abort polls that a fanout’s re-polls moved, 200 polls over 20 publishes', async () => {
    const broker = brokerOf();
    const n = 200;
    const first = await broker.read('c');
    const cursors: string[] = new Array<string>(n).fill(first.cursor);
    const controllers: AbortController[] = [];
    const seen: number[][] = Array.from({ length: n }, () => []);
    const live = new Set<number>(Array.from({ length: n }, (_, i) => i));
    const poll = (i: number) => {
      controllers[i] = new AbortController();
      return broker.poll('c', { cursor: cursors[i], wait: 10_000, signal: controllers[i].signal }).then(
        (result) => {
          for (const m of result.messages) seen[i]!.push(m.data as number);
          cursors[i] = result.cursor;
        },
        () => {},
      );
    };
    for (let round = 0; round < 20; round++) {
      const polls = [...live].map(poll);
      await settle();
      expect(broker.stats().waiters).toBe(live.size);
      // Abort three polls, wherever the swaps of the previous rounds put them.
      for (const i of [...live].filter((_, k) => k % 37 === round % 37).slice(0, 3)) {
        controllers[i]!.abort(new Error('gone'));
        live.delete(i);
      }
      expect(broker.stats().waiters).toBe(live.size);
      await broker.publish('c', round);
      await within(Promise.all(polls), 2_000, `round ${round}`);
      expect(broker.stats().waiters).toBe(0);
    }
    // A live poll saw every round once, in order; an aborted one a prefix of them.
    for (let i = 0; i < n; i++) {
      expect(seen[i]).toEqual(Array.from({ length: seen[i]!.length }, (_, k) => k));
      if (live.has(i)) expect(seen[i]!.length).toBe(20);
    }
    expect(live.size).toBeLessThan(n);
  });
});

describe('a drain that waits for the engine while polls go away', () => {
  it('answers a poll aborted during the drain’s read once, with the abort, and counts only the others delivered', async () => {
    const engine = gatedEngine();
    const broker = brokerOf(engine);
    const controllers = Array.from({ length: 4 }, () => new AbortController());
    const polls = controllers.map((controller) => broker.poll('c', { wait: 10_000, signal: controller.signal }));
    await settle();
    expect(broker.stats().waiters).toBe(4);
    const deliveries: number[] = [];
    broker.on('deliver', ({ polls: count }) => deliveries.push(count));
    const gate = engine.block();
    const published = broker.publish('c', 'x');
    await within(gate.started, 2_000, 'the drain’s read');
    controllers[1]!.abort(new Error('gone 1'));
    controllers[3]!.abort(new Error('gone 3'));
    expect(broker.stats().waiters).toBe(2);
    gate.open();
    await published;
    await expect(within(polls[1]!, 2_000, 'poll 1')).rejects.toThrow('gone 1');
    await expect(within(polls[3]!, 2_000, 'poll 3')).rejects.toThrow('gone 3');
    for (const i of [0, 2]) expect((await within(polls[i]!, 2_000, `poll ${i}`)).messages.map((m) => m.data)).toEqual(['x']);
    await settle();
    expect(deliveries).toEqual([2]);
    expect(broker.stats().waiters).toBe(0);
  });

  it('answers every poll once when close() comes during the drain’s read, and ends with none held', async () => {
    const engine = gatedEngine();
    const broker = brokerOf(engine);
    const tickets = Array.from({ length: 6 }, (_, i) => new Counting(`t${i}`));
    for (const [i, ticket] of tickets.entries()) start(broker, 'c', { wait: 10_000, limit: i % 2 === 0 ? 1 : 100 }, ticket);
    await settle();
    expect(broker.stats().waiters).toBe(6);
    const gate = engine.block();
    const published = broker.publish('c', 'x');
    await within(gate.started, 2_000, 'the drain’s read');
    const closed = broker.close();
    for (const ticket of tickets) {
      expect(ticket.answers).toEqual([]);
      expect(ticket.errors.map((error) => (error as LongPollError).code)).toEqual(['shutting_down']);
    }
    expect(broker.stats().waiters).toBe(0);
    gate.open();
    await published;
    await within(closed, 2_000, 'close()');
    for (const ticket of tickets) expect(ticket.settled).toBe(1);
    expect(broker.stats().waiters).toBe(0);
  });
});

describe('answers that act on the same channel while the drain runs (a synchronous engine)', () => {
  it('an answer that cancels every other poll of the channel, in its group and in others: one answer, the rest cancelled once', async () => {
    const broker = brokerOf();
    const limits = [1, 100, 2, 100, 1, 100, 2, 100, 100];
    const tickets = limits.map((_, i) => new Counting(`t${i}`));
    for (const [i, ticket] of tickets.entries()) start(broker, 'c', { wait: 10_000, limit: limits[i] }, ticket);
    expect(broker.stats().waiters).toBe(limits.length);
    // Whichever the drain answers first (no order is promised) cancels all the others, as an
    // exchange whose write closes the connections of other polls would.
    for (const ticket of tickets) {
      ticket.onResolve = () => {
        for (const other of tickets) if (other !== ticket) other.cancel(new Error(`cancelled by ${ticket.name}`));
      };
    }
    const deliveries: number[] = [];
    broker.on('deliver', ({ polls: count }) => deliveries.push(count));
    await broker.publish('c', 'x');
    const answered = tickets.filter((ticket) => ticket.answers.length > 0);
    expect(answered.length).toBe(1);
    for (const ticket of tickets) expect(ticket.settled, ticket.name).toBe(1);
    for (const ticket of tickets) {
      if (ticket !== answered[0]) expect(String(ticket.errors[0])).toContain(`cancelled by ${answered[0]!.name}`);
    }
    expect(deliveries).toEqual([1]);
    expect(broker.stats().waiters).toBe(0);
  });

  it('an answer that expires another poll (a pipelined request) while the drain runs: each answered once', async () => {
    const broker = brokerOf();
    const tickets = Array.from({ length: 10 }, (_, i) => new Counting(`t${i}`));
    for (const [i, ticket] of tickets.entries()) start(broker, 'c', { wait: 10_000, limit: i % 3 === 0 ? 1 : 100 }, ticket);
    for (const [i, ticket] of tickets.entries()) {
      // Expires the next two polls, as a request pipelined behind them would.
      ticket.onResolve = () => {
        tickets[(i + 1) % tickets.length]!.expire();
        tickets[(i + 2) % tickets.length]!.expire();
      };
    }
    await broker.publish('c', 'x');
    for (const ticket of tickets) {
      expect(ticket.settled, ticket.name).toBe(1);
      expect(ticket.errors).toEqual([]);
    }
    const withMessage = tickets.filter((ticket) => ticket.answers[0]!.result.messages.length === 1);
    const timedOut = tickets.filter((ticket) => ticket.answers[0]!.result.timedOut);
    expect(withMessage.length + timedOut.length).toBe(tickets.length);
    expect(withMessage.length).toBeGreaterThan(0);
    expect(broker.stats().waiters).toBe(0);
  });

  it('answers that re-poll at once on the same channel, with the same ticket, and publish again: every message once and in order', async () => {
    const broker = brokerOf();
    const K = 30;
    const limits = [1, 2, 100, 1, 100, 3, 100, 1];
    const tickets = limits.map((_, i) => new Counting(`t${i}`));
    const seen = tickets.map(() => [] as number[]);
    let published = 0;
    for (const [i, ticket] of tickets.entries()) {
      ticket.onResolve = (answer) => {
        const { messages, cursor } = answer.result;
        for (const m of messages) seen[i]!.push(m.data as number);
        // The same ticket polls again before returning, as a stream's `pollNow` does: held while
        // the drain still runs, or answered at once from what the nested publishes added.
        start(broker, 'c', { cursor, wait: 10_000, limit: limits[i] }, ticket);
        // One poll keeps publishing from inside its answers, up to K messages.
        if (i === 0 && published < K) void broker.publish('c', published++);
      };
    }
    const head = await broker.read('c');
    for (const [i, ticket] of tickets.entries()) start(broker, 'c', { cursor: head.cursor, wait: 10_000, limit: limits[i] }, ticket);
    expect(broker.stats().waiters).toBe(tickets.length);
    await broker.publish('c', published++);
    for (let round = 0; round < 100 && seen.some((s) => s.length < K); round++) await settle();
    for (const [i, s] of seen.entries()) expect(s, tickets[i]!.name).toEqual(Array.from({ length: K }, (_, k) => k));
    // Each ticket holds exactly one poll: its last re-poll.
    expect(broker.stats().waiters).toBe(tickets.length);
    await broker.close();
    for (const ticket of tickets) {
      expect(ticket.errors.map((error) => (error as LongPollError).code)).toEqual(['shutting_down']);
      expect(ticket.held).toBeUndefined();
    }
    expect(broker.stats().waiters).toBe(0);
  });

  it('an answer that closes the broker in the middle of a fanout: every other poll answered once, close() resolves, none held', async () => {
    const broker = brokerOf();
    const tickets = Array.from({ length: 12 }, (_, i) => new Counting(`t${i}`));
    for (const [i, ticket] of tickets.entries()) start(broker, i % 2 === 0 ? 'c' : 'd', { wait: 10_000, limit: i % 4 < 2 ? 1 : 100 }, ticket);
    let closing: Promise<void> | undefined;
    for (const ticket of tickets) {
      ticket.onResolve = () => {
        closing ??= broker.close();
      };
    }
    await broker.publish('c', 'x');
    expect(closing).toBeDefined();
    await within(closing!, 2_000, 'close()');
    const answered = tickets.filter((ticket) => ticket.answers.length > 0);
    expect(answered.length).toBe(1);
    for (const ticket of tickets) expect(ticket.settled, ticket.name).toBe(1);
    expect(broker.stats().waiters).toBe(0);
  });

  it('a channel emptied by cancels and held again is one state: the new poll is answered, the old ones never', async () => {
    const broker = brokerOf();
    for (let round = 0; round < 5; round++) {
      const head = await broker.read('c', { firstMessage: 'newest' });
      const old = Array.from({ length: 3 }, (_, i) => new Counting(`old${i}`));
      for (const ticket of old) start(broker, 'c', { cursor: head.cursor, wait: 10_000 }, ticket);
      expect(broker.stats().waiters).toBe(3);
      for (const ticket of old) ticket.cancel(new Error('gone'));
      expect(broker.stats().waiters).toBe(0);
      const fresh = new Counting('fresh');
      start(broker, 'c', { cursor: head.cursor, wait: 10_000 }, fresh);
      expect(broker.stats().waiters).toBe(1);
      await broker.publish('c', round);
      expect(fresh.answers.map((answer) => answer.result.messages.map((m) => m.data))).toEqual([[round]]);
      for (const ticket of old) {
        expect(ticket.answers).toEqual([]);
        expect(ticket.errors.length).toBe(1);
      }
      expect(broker.stats().waiters).toBe(0);
    }
  });
});

type Op =
  | { kind: 'hold'; limit: number; effect: 'none' | 'repoll' | 'cancel' | 'expire' }
  | { kind: 'cancel'; which: number }
  | { kind: 'expire'; which: number }
  | { kind: 'publish'; count: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('hold' as const),
      limit: fc.constantFrom(1, 2, 100),
      effect: fc.constantFrom('none' as const, 'repoll' as const, 'cancel' as const, 'expire' as const),
    }),
    weight: 5,
  },
  { arbitrary: fc.record({ kind: fc.constant('cancel' as const), which: fc.nat(50) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('expire' as const), which: fc.nat(50) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('publish' as const), count: fc.integer({ min: 1, max: 3 }) }), weight: 2 },
);

describe('random interleavings on one channel', () => {
  it('answers each poll at most once, every held poll on a publish, and stats().waiters is what is held', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const broker = new Broker<unknown>();
        try {
          const tickets: Counting[] = [];
          const hold = (limit: number, effect: 'none' | 'repoll' | 'cancel' | 'expire', cursor: string) => {
            const ticket = new Counting(`t${tickets.length}`);
            tickets.push(ticket);
            ticket.onResolve = (answer) => {
              // An answer that acts on another poll of the channel, or polls again.
              const others = tickets.filter((other) => other !== ticket && other.held);
              if (effect === 'repoll' && tickets.length < 200) hold(limit, 'none', answer.result.cursor);
              else if (effect === 'cancel' && others.length > 0) others[tickets.length % others.length]!.cancel(new Error('cancelled'));
              else if (effect === 'expire' && others.length > 0) others[tickets.length % others.length]!.expire();
            };
            start(broker, 'c', { cursor, wait: 60_000, limit }, ticket);
          };
          let head = (await broker.read('c')).cursor;
          for (const o of ops) {
            if (o.kind === 'hold') hold(o.limit, o.effect, head);
            else if (o.kind === 'cancel' && tickets.length > 0) tickets[o.which % tickets.length]!.cancel(new Error('cancelled'));
            else if (o.kind === 'expire' && tickets.length > 0) tickets[o.which % tickets.length]!.expire();
            else if (o.kind === 'publish') {
              const before = tickets.filter((ticket) => ticket.held);
              for (let k = 0; k < o.count; k++) await broker.publish('c', k);
              head = (await broker.read('c', { firstMessage: 'newest' })).cursor;
              // Every poll held before the publish was answered (or cancelled by another's answer).
              for (const ticket of before) expect(ticket.settled, ticket.name).toBeGreaterThanOrEqual(1);
            }
            for (const ticket of tickets) {
              expect(ticket.settled, ticket.name).toBeLessThanOrEqual(1);
              // A synchronous engine: a poll is answered or held as soon as it starts.
              expect(ticket.settled === 1 || ticket.held !== undefined, ticket.name).toBe(true);
              if (ticket.settled === 1) expect(ticket.held, ticket.name).toBeUndefined();
            }
            expect(broker.stats().waiters).toBe(tickets.filter((ticket) => ticket.held).length);
          }
          await broker.close();
          for (const ticket of tickets) expect(ticket.settled, ticket.name).toBe(1);
          expect(broker.stats().waiters).toBe(0);
        } finally {
          await broker.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
