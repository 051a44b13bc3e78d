import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../support/example-process.js';
import { startAll } from './start-all.js';
import { redisAvailable, startRedis, type RedisServer } from '../support/redis-server.js';
import { poll, publish, sleep, type Answer } from './http-client.js';

const WAIT = 1; // seconds a poll is held
const prefix = `faults-${process.pid}:`;

/** A client that follows one channel from its cursor over the given instances, in turn. */
class Follower {
  readonly received: { id: string; data: string }[] = [];
  /** Where in `received` a cursor_expired (410) restarted the follower. */
  readonly resets: number[] = [];
  readonly statuses = new Map<number, number>();
  /** Polls that got no answer at all within wait + 4 s. */
  unanswered = 0;
  longest = 0;
  stopped = false;
  readonly done: Promise<void>;

  constructor(
    readonly instances: () => URL[],
    readonly channel: string,
    cursor: string,
  ) {
    this.done = this.#run(cursor);
  }

  async #run(start: string): Promise<void> {
    let cursor = start;
    for (let turn = 0; !this.stopped; turn++) {
      const urls = this.instances();
      const started = performance.now();
      let answer: Answer;
      try {
        answer = await poll(urls[turn % urls.length]!, this.channel, { cursor, wait: WAIT, limit: 100 });
      } catch (error) {
        if ((error as Error).name === 'TimeoutError') this.unanswered++;
        await sleep(20); // the instance is gone: try the next one
        continue;
      }
      this.longest = Math.max(this.longest, performance.now() - started);
      this.statuses.set(answer.status, (this.statuses.get(answer.status) ?? 0) + 1);
      if (answer.status === 200) {
        this.received.push(...(answer.body.messages as { id: string; data: string }[]));
        cursor = answer.body.cursor!;
      } else if (answer.status === 410) {
        this.resets.push(this.received.length);
        cursor = answer.body.earliestCursor!;
      } else {
        await sleep(50); // 503 while Redis is down: back off a little
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** Parses a publish key `publisher:seq`. */
const keyOf = (data: string) => data.split(':').map(Number) as [number, number];

/**
 * Never a gap: between two consecutive messages of one publisher that a follower received with
 * no reset in between, every sequence number skipped must be a publish that did not succeed.
 */
function gapsOf(follower: Follower, succeeded: Set<string>): string[] {
  const gaps: string[] = [];
  const previous = new Map<number, number>();
  let reset = 0;
  follower.received.forEach((message, index) => {
    while (reset < follower.resets.length && follower.resets[reset] === index) {
      previous.clear();
      reset++;
    }
    const [publisher, seq] = keyOf(message.data);
    const before = previous.get(publisher);
    if (before !== undefined) {
      if (seq <= before) gaps.push(`${message.data} after ${publisher}:${before} (out of order)`);
      for (let missing = before + 1; missing < seq; missing++) {
        if (succeeded.has(`${publisher}:${missing}`)) gaps.push(`${publisher}:${missing} (published, never delivered)`);
      }
    }
    previous.set(publisher, seq);
  });
  return gaps;
}

describe.runIf(redisAvailable())('faults', () => {
  let redis: RedisServer;
  const instances: RunningExample[] = [];

  beforeAll(async () => {
    redis = await startRedis(undefined, { appendonly: true });
    const env = { REDIS_URL: redis.url, PREFIX: prefix };
    instances.push(...(await startAll([0, 1].map((n) => startExample('examples/cluster/instance.js', { ...env, NAME: `i${n}` })))));
  });

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
    await redis?.stop();
  });

  it('loses no successful publish when redis-server is SIGKILLed and restarted under load', async () => {
    const channel = 'crash';
    const urls = instances.map((instance) => instance.url);
    const start = (await poll(urls[0]!, channel, { wait: 0 })).body.cursor!;
    const followers = [0, 1, 2].map(() => new Follower(() => urls, channel, start));
    const succeeded: string[] = [];
    const publishStatuses = new Map<number | string, number>();
    let phase: 'before' | 'down' | 'after' = 'before';
    const failedWhileDown: number[] = [];
    const succeededAfter: string[] = [];
    let publishing = true;

    const publisher = async (id: number) => {
      for (let seq = 0; publishing; seq++) {
        const key = `${id}:${seq}`;
        let status: number | string;
        try {
          status = (await publish(urls[seq % urls.length]!, channel, key)).status;
        } catch (error) {
          status = (error as Error).name;
        }
        publishStatuses.set(status, (publishStatuses.get(status) ?? 0) + 1);
        if (status === 201) {
          succeeded.push(key);
          if (phase === 'after') succeededAfter.push(key);
        } else if (phase === 'down' && typeof status === 'number') {
          failedWhileDown.push(status);
        }
        await sleep(phase === 'down' ? 20 : 10);
      }
    };
    const publishers = [0, 1].map(publisher);

    await sleep(3_000);
    await redis.kill('SIGKILL');
    phase = 'down';
    await sleep(1_000);
    await redis.restart();
    phase = 'after';
    await sleep(3_000);
    publishing = false;
    await Promise.all(publishers);

    // Let the followers catch up (bounded), then stop them.
    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline && followers.some((f) => f.received.length < succeeded.length)) await sleep(50);
    await Promise.all(followers.map((f) => f.stop()));

    const statuses = followers.map((f) => Object.fromEntries(f.statuses));
    console.log(
      `published ${succeeded.length} (${succeededAfter.length} after the restart); publish answers ${JSON.stringify(Object.fromEntries(publishStatuses))}; ` +
        `poll answers ${JSON.stringify(statuses)}; resets ${followers.map((f) => f.resets.length).join('/')}; ` +
        `longest poll ${Math.max(...followers.map((f) => f.longest)).toFixed(0)} ms`,
    );

    // Publishes: 201, or 503 while Redis is down; nothing else.
    expect([...publishStatuses.keys()].every((status) => status === 201 || status === 503)).toBe(true);
    expect(failedWhileDown.length).toBeGreaterThan(0);
    expect(failedWhileDown.every((status) => status === 503)).toBe(true);
    expect(succeededAfter.length).toBeGreaterThan(0); // publishers recovered

    const success = new Set(succeeded);
    for (const follower of followers) {
      // Held polls were answered (200, 410 or 503), none hung past its wait.
      expect(follower.unanswered).toBe(0);
      expect(follower.longest).toBeLessThan(WAIT * 1000 + 2_000);
      expect([...follower.statuses.keys()].every((status) => [200, 410, 503].includes(status))).toBe(true);
      // Exactly once, in order, never a gap; and, with no reset, every successful publish.
      expect(new Set(follower.received.map((m) => m.id)).size).toBe(follower.received.length);
      expect(gapsOf(follower, success)).toEqual([]);
      const delivered = new Set(follower.received.map((m) => m.data));
      if (follower.resets.length === 0) expect(succeeded.filter((key) => !delivered.has(key))).toEqual([]);
      // Clients recovered: they received what was published after the restart.
      expect(succeededAfter.filter((key) => !delivered.has(key))).toEqual([]);
    }
  });

  it('answers cursor_expired, never a gap, when a redis-server without persistence comes back empty', async () => {
    const volatile = await startRedis(); // no AOF, no RDB: a restart loses everything
    let instance: RunningExample | undefined;
    try {
      instance = await startExample('examples/cluster/instance.js', { REDIS_URL: volatile.url, PREFIX: prefix, NAME: 'volatile' });
      const { url } = instance;
      const before = (await poll(url, 'amnesia', { wait: 0 })).body.cursor!;
      for (let n = 0; n < 5; n++) expect((await publish(url, 'amnesia', `old ${n}`)).status).toBe(201);
      const seen = (await poll(url, 'amnesia', { cursor: before, wait: 0, limit: 2 })).body; // read 2 of 5
      await volatile.kill('SIGKILL');
      await volatile.restart();
      let published = 0;
      for (const deadline = Date.now() + 5_000; published < 3 && Date.now() < deadline; ) {
        const answer = await publish(url, 'amnesia', `new ${published}`);
        if (answer.status === 201) published++;
        else await sleep(50); // 503 until the instance has reconnected
      }
      expect(published).toBe(3);
      const expired = await poll(url, 'amnesia', { cursor: seen.cursor!, wait: 0 });
      expect(expired.status).toBe(410);
      expect(expired.body.code).toBe('cursor_expired');
      const resumed = await poll(url, 'amnesia', { cursor: expired.body.earliestCursor!, wait: 0 });
      expect(resumed.body.messages!.map((m) => m.data)).toEqual(['new 0', 'new 1', 'new 2']);
    } finally {
      await instance?.stop();
      await volatile.stop();
    }
  });

  it('lets the clients of a SIGKILLed instance resume on another with nothing lost', async () => {
    const channel = 'victim';
    const victim = await startExample('examples/cluster/instance.js', { REDIS_URL: redis.url, PREFIX: prefix, NAME: 'victim' });
    instances.push(victim);
    let alive = [victim.url];
    const start = (await poll(victim.url, channel, { wait: 0 })).body.cursor!;
    const followers = [0, 1, 2].map(() => new Follower(() => alive, channel, start));
    const count = 200;
    for (let seq = 0; seq < count; seq++) {
      expect((await publish(instances[seq % 2]!.url, channel, `0:${seq}`)).status).toBe(201);
      if (seq === count / 2) {
        victim.child.kill('SIGKILL');
        alive = [instances[0]!.url, instances[1]!.url];
      }
      await sleep(5);
    }
    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline && followers.some((f) => f.received.length < count)) await sleep(50);
    await Promise.all(followers.map((f) => f.stop()));
    for (const follower of followers) {
      expect(follower.resets).toEqual([]);
      expect(follower.received.map((m) => m.data)).toEqual(Array.from({ length: count }, (_, seq) => `0:${seq}`));
    }
  });
});
