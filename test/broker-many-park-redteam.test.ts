/**
 * Red-team tests of parked many-channel polls (commit 3a0edbf): the ways a parked poll could be
 * taken over when it must not, outlive its grace period, or disturb the polls held beside it.
 * Each test names the defect or the mutant of src/broker.ts / src/waiter.ts it catches.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Broker, type PollResult } from '../src/index.js';
import { PollTicket, selectMany, startPoll, type Answer } from '../src/poll.js';
import { CountingEngine } from './support/engines.js';

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

  /** A held poll on `list` answered by a publish on its first channel: its answer. */
  async function answered(broker: Broker<unknown>, list: string[], options: { limit?: number; wait?: number } = {}): Promise<PollResult<unknown>> {
    const first = await broker.pollMany(list, { wait: 0, ...options });
    const held = broker.pollMany(list, { cursor: first.cursor, wait: 5_000, ...options });
    await tick();
    await broker.publish(list[0]!, 1);
    const answer = await held;
    expect(data(answer)).toEqual([`${list[0]}:1`]);
    return answer;
  }

  it('times a taken-over poll out after its own wait, not the wait of the poll it takes over (nor never)', async () => {
    // Mutants: `resume` keeps the old deadline (5 s here), or the take-over adds no expiry.
    const { broker, engine } = setUp();
    const answer = await answered(broker, ['a', 'b', 'c']);
    const reads = engine.reads;
    const started = performance.now();
    const again = await broker.pollMany(['a', 'b', 'c'], { cursor: answer.cursor, wait: 80 });
    const took = performance.now() - started;
    expect(engine.reads).toBe(reads); // it was taken over
    expect(again).toMatchObject({ messages: [], timedOut: true, cursor: answer.cursor });
    expect(took).toBeGreaterThanOrEqual(70);
    expect(took).toBeLessThan(1_000);
    expect(broker.stats().waiters).toBe(0);
  });

  it('answers a re-poll with wait 0 at once, from a read, and leaves the parked poll to the next re-poll', async () => {
    // Mutant: no `deadline > Date.now()` check (wait 0 takes the parked poll over, answers it
    // from a timer a turn later, and forgets it).
    const { broker, engine } = setUp();
    const answer = await answered(broker, ['a', 'b', 'c']);
    const now = broker.pollMany(['a', 'b', 'c'], { cursor: answer.cursor, wait: 0 });
    const first = await Promise.race([now, tick().then(() => 'late' as const)]);
    expect(first).toMatchObject({ messages: [], timedOut: true });
    const reads = engine.reads;
    const again = broker.pollMany(['a', 'b', 'c'], { cursor: answer.cursor, wait: 5_000 });
    await tick();
    expect(engine.reads).toBe(reads);
    await broker.publish('b', 2);
    expect(data(await again)).toEqual(['b:2']);
  });

  it('rejects a re-poll whose signal already aborted, and leaves the parked poll to the next re-poll', async () => {
    // Mutant: the take-over skips `ticket.throwIfCancelled()`: the aborted poll is held, and
    // its promise settles with the next publish instead of rejecting at once.
    const { broker, engine } = setUp();
    const answer = await answered(broker, ['a', 'b', 'c']);
    const controller = new AbortController();
    controller.abort(new Error('aborted before'));
    const aborted = broker.pollMany(['a', 'b', 'c'], { cursor: answer.cursor, wait: 5_000, signal: controller.signal });
    const outcome = await Promise.race([aborted.then(() => 'resolved', (error: Error) => error.message), sleep(50).then(() => 'pending')]);
    expect(outcome).toBe('aborted before');
    expect(broker.stats().waiters).toBe(0);
    const reads = engine.reads;
    const again = broker.pollMany(['a', 'b', 'c'], { cursor: answer.cursor, wait: 5_000 });
    await tick();
    expect(engine.reads).toBe(reads);
    await broker.publish('c', 2);
    expect(data(await again)).toEqual(['c:2']);
  });

  it('does not park an answer whose read filled its limit: its re-poll reads', async () => {
    // Mutant: every answer parkable, whatever the read's length.
    const { broker, engine } = setUp();
    const answer = await answered(broker, ['a', 'b'], { limit: 1 });
    const reads = engine.reads;
    const again = broker.pollMany(['a', 'b'], { cursor: answer.cursor, wait: 5_000, limit: 1 });
    await tick();
    expect(engine.reads).toBe(reads + 2);
    await broker.publish('b', 2);
    expect(data(await again)).toEqual(['b:2']);
  });

  it('parks again once the parked polls a publish took off are gone: the cap counts parked polls, not forgotten ones', async () => {
    // Mutant: `detach` forgets `registry.parked.delete`: polls taken off by a publish (or their
    // grace period) stay in the map for ever, which grows without bound and, at 10,000, parks
    // nothing more.
    const { broker, engine } = setUp();
    const polls = 10_000;
    const lists = Array.from({ length: polls }, (_, i) => ['shared', `own.${i}`]);
    const held = lists.map((list) => broker.pollMany(list, { wait: 30_000 }));
    await tick();
    await broker.publish('shared', 1);
    await Promise.all(held);
    // Every one of them parked; this publish takes them all off.
    await broker.publish('shared', 2);
    expect(broker.stats().waiters).toBe(0);
    const answer = await answered(broker, ['x', 'y']);
    const reads = engine.reads;
    const again = broker.pollMany(['x', 'y'], { cursor: answer.cursor, wait: 5_000 });
    await tick();
    expect(engine.reads).toBe(reads);
    await broker.publish('y', 2);
    expect(data(await again)).toEqual(['y:2']);
  }, 20_000);

  it('keeps an answered ticket from reaching its parked poll, or the poll that took it over', async () => {
    // Mutant: `park` leaves `ticket.held` on the answered ticket. That ticket's `expire()` (an
    // HTTP exchange's, when a request is pipelined behind its answer) or `cancel()` then takes
    // the parked poll off, or answers another client's poll that took it over.
    const { broker } = setUp();
    class Ticket extends PollTicket<unknown> {
      answers: Answer<unknown>[] = [];
      errors: unknown[] = [];
      resolve(answer: Answer<unknown>): void {
        this.answers.push(answer);
      }
      reject(error: unknown): void {
        this.errors.push(error);
      }
    }
    const list = ['a', 'b'];
    const first = await broker.pollMany(list, { wait: 0 });
    const mine = new Ticket();
    broker[startPoll](broker[selectMany](list, first.cursor), { cursor: first.cursor, wait: 5_000 }, mine);
    await broker.publish('a', 1);
    expect(mine.answers.map((answer) => data(answer.result))).toEqual([['a:1']]);
    const cursor = mine.answers[0]!.result.cursor;
    // Another client with the same cursor takes the parked poll over.
    const other = broker.pollMany(list, { cursor, wait: 5_000 });
    await tick();
    expect(broker.stats().waiters).toBe(1);
    mine.expire();
    mine.cancel(new Error('the first client went away'));
    await tick();
    expect(broker.stats().waiters).toBe(1);
    await broker.publish('b', 2);
    expect(data(await other)).toEqual(['b:2']);
    expect(mine.answers.length + mine.errors.length).toBe(1);
  });

  it('counts no channel in stats() that holds only parked polls: no messages, no waiters', async () => {
    // Defect: `stats().channels` ("channels holding messages or waiters") counts every channel
    // with a many-channel poll on its list, parked ones included: after an answer on `a`, the
    // empty channels `b` and `c` of the parked poll count for up to a second.
    const { broker } = setUp();
    await answered(broker, ['a', 'b', 'c']);
    expect(broker.stats()).toEqual({ channels: 1, waiters: 0, messages: 1 });
  });

  it('lets a script that awaited a many-channel answer exit at once: a parked poll keeps no timer alive', async () => {
    // Defect: the grace period of a parked poll is an entry in a ref'd expiry list, so a script
    // that awaits `pollMany`, gets its answer by a publish, and ends without `close()` now stays
    // up one more second (a single-channel poll's script exits at once, as it did before).
    const hooks = new URL('./support/typescript-hooks.mjs', import.meta.url).href;
    const register = `data:text/javascript,import{register}from'node:module';register(${JSON.stringify(hooks)})`;
    const index = new URL('../src/index.ts', import.meta.url).href;
    const script = `
      const { Broker } = await import(${JSON.stringify(index)});
      const broker = new Broker();
      const held = broker.pollMany(['a', 'b'], { wait: 5000 });
      await new Promise((resolve) => setImmediate(resolve));
      await broker.publish('a', 1);
      await held;
      const answered = performance.now();
      process.on('exit', () => console.log('after ' + Math.round(performance.now() - answered)));
    `;
    const child = spawn(process.execPath, ['--import', register, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await new Promise((resolve) => child.once('exit', resolve));
    clearTimeout(killer);
    const after = /after (\d+)/.exec(output);
    expect(after, output).not.toBeNull();
    expect(Number(after![1])).toBeLessThan(500);
  }, 15_000);
});
