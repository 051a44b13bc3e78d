/**
 * Red-team tests of parked many-channel polls (commit 3a0edbf): the ways a parked poll could be
 * taken over when it must not, outlive its grace period, or disturb the polls held beside it.
 * Each test names the defect or the mutant of src/broker.ts / src/waiter.ts it catches.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Broker, MemoryEngine, type Batch, type Cursor, type PollResult } from '../src/index.js';

/** A MemoryEngine that counts its synchronous reads: a poll taken over reads nothing. */
class CountingEngine extends MemoryEngine {
  reads = 0;
  override readNow(channel: string, cursor: Cursor | undefined, limit: number): Batch {
    this.reads++;
    return super.readNow(channel, cursor, limit);
  }
}

const brokers: Broker<unknown>[] = [];
function setUp(options: { capacity?: number; maxAge?: number } = {}): { broker: Broker<unknown>; engine: CountingEngine } {
  const engine = new CountingEngine({ capacity: 10_000, ...options });
  const broker = new Broker<unknown>({ engine });
  brokers.push(broker);
  return { broker, engine };
}

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(brokers.splice(0).map((made) => made.close()));
});

const data = (result: PollResult<unknown>) => result.messages.map((m) => `${m.channel}:${String(m.data)}`);
const tick = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Broker: parked many-channel polls (red team)', () => {
  it('does not hold a re-poll on a poll parked by a publish made during another channel\'s wake (an evict listener)', async () => {
    // Defect: `#wakeMany(a)` groups the polls held on `a`, then reads `a`; that read expires old
    // messages of `a` (maxAge) and reports `evict`, whose listener publishes on `x`. The nested
    // wake of `x` answers the poll on [a, x] and parks it at its position on `a` from before the
    // message just published there; back in the wake of `a`, the poll is no longer held and is
    // skipped, but stays parked. Its re-poll takes it over and waits, though `a` has a message.
    const { broker } = setUp({ maxAge: 1_000 });
    let clock = Date.now();
    let ticking = false;
    vi.spyOn(Date, 'now').mockImplementation(() => (ticking ? clock++ : clock));
    await broker.publish('a', 0);
    const list = ['a', 'x'];
    const first = await broker.pollMany(list, { wait: 0 });
    expect(data(first)).toEqual(['a:0']);
    const held = broker.pollMany(list, { cursor: first.cursor, wait: 5_000 });
    await tick();
    let once = false;
    broker.on('evict', ({ channel, reason }) => {
      if (once || channel !== 'a' || reason !== 'maxAge') return;
      once = true;
      void broker.publish('x', 'evicted');
    });
    // The publish on `a` appends with this clock (a:0 not expired yet); its wake's read, a
    // millisecond later, expires a:0.
    clock += 999;
    ticking = true;
    await broker.publish('a', 1);
    ticking = false;
    vi.restoreAllMocks();
    expect(once).toBe(true);
    const answer = await held;
    expect(data(answer)).toEqual(['x:evicted']);
    // `a:1` is there: the re-poll must return it at once, not wait for its wait to run out.
    const again = await broker.pollMany(list, { cursor: answer.cursor, wait: 300 });
    expect(data(again)).toEqual(['a:1']);
  });
});
