import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Broker, LongPollError, type PollResult } from '../src/index.js';

const CHANNELS = ['a', 'b', '__proto__'];

type Command =
  | { kind: 'publish'; channel: number }
  | { kind: 'poll'; follower: number; wait: number; limit: number }
  | { kind: 'abort'; follower: number }
  | { kind: 'advance'; ms: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('publish' as const), channel: fc.nat(CHANNELS.length - 1) }), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constant('poll' as const),
      follower: fc.nat(4),
      wait: fc.constantFrom(0, 50, 300),
      limit: fc.constantFrom(1, 2, 100),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant('abort' as const), follower: fc.nat(4) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 400 }) }), weight: 2 },
);

/** What one subscriber saw: message ids (ULIDs), and 'expired' where it was told it missed something. */
interface Follower {
  readonly channel: string;
  cursor: string | undefined;
  readonly seen: string[];
  pending?: { controller: AbortController; done: Promise<void> };
}

function follow(follower: Follower, outcome: PollResult<number>): void {
  follower.seen.push(...outcome.messages.map((m) => m.id));
  follower.cursor = outcome.cursor;
}

function rehydrate(follower: Follower, error: unknown): void {
  if (error instanceof LongPollError && error.code === 'cursor_expired') {
    follower.seen.push('expired');
    follower.cursor = error.earliestCursor;
  } else if (!(error instanceof Error && error.message === 'aborted')) {
    throw error;
  }
}

/** Each run of ids between 'expired' markers is a contiguous slice of the published sequence, and runs move forward. */
function assertNoSilentGap(seen: readonly string[], published: readonly string[]): void {
  let previous = -1;
  let gapAllowed = true; // the first poll has no cursor: it starts from whatever is retained
  for (const id of seen) {
    if (id === 'expired') {
      gapAllowed = true;
      continue;
    }
    const index = published.indexOf(id);
    expect(index, 'a message that was never published').toBeGreaterThanOrEqual(0);
    if (gapAllowed) expect(index, 'a duplicate or a step back').toBeGreaterThan(previous);
    else expect(index, 'a silent gap, a duplicate or a reordering').toBe(previous + 1);
    previous = index;
    gapAllowed = false;
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Broker (property)', () => {
  it('gives every follower its channel sequence in order without duplicates or silent gaps, or cursor_expired', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 20, maxLength: 120, size: 'max' }), async (commands) => {
        vi.useFakeTimers();
        const broker = new Broker<number>({ capacity: 4, maxAge: 500 });
        const published = new Map<string, string[]>(CHANNELS.map((c) => [c, []]));
        const followers: Follower[] = Array.from({ length: 5 }, (_, i) => ({ channel: CHANNELS[i % CHANNELS.length]!, cursor: undefined, seen: [] }));
        let counter = 0;
        try {
          for (const step of commands) {
            if (step.kind === 'publish') {
              const channel = CHANNELS[step.channel]!;
              published.get(channel)!.push((await broker.publish(channel, counter++)).id);
            } else if (step.kind === 'poll') {
              const follower = followers[step.follower]!;
              if (follower.pending) continue;
              const controller = new AbortController();
              const done = broker
                .poll(follower.channel, { cursor: follower.cursor, wait: step.wait, limit: step.limit, signal: controller.signal })
                .then(
                  (outcome) => follow(follower, outcome),
                  (error: unknown) => rehydrate(follower, error),
                )
                .finally(() => (follower.pending = undefined));
              follower.pending = { controller, done };
            } else if (step.kind === 'abort') {
              followers[step.follower]!.pending?.controller.abort(new Error('aborted'));
            } else {
              await vi.advanceTimersByTimeAsync(step.ms);
            }
            await vi.advanceTimersByTimeAsync(0);
          }
          // Catch up: every follower reads until nothing is left, rehydrating when told to.
          await vi.advanceTimersByTimeAsync(1000);
          for (const follower of followers) {
            await follower.pending?.done;
            for (let guard = 0; guard < 100; guard++) {
              try {
                const outcome = await broker.poll(follower.channel, { cursor: follower.cursor, wait: 0 });
                follow(follower, outcome);
                if (outcome.messages.length === 0) break;
              } catch (error) {
                rehydrate(follower, error);
              }
            }
            const ids = published.get(follower.channel)!;
            assertNoSilentGap(follower.seen, ids);
            const retained = (await broker.read(follower.channel)).messages;
            if (retained.length > 0) expect(follower.seen.at(-1)).toBe(retained.at(-1)!.id);
            if (retained.length > 0) expect(retained.at(-1)!.id).toBe(ids.at(-1));
          }
          expect(broker.stats().waiters).toBe(0);
        } finally {
          await broker.close();
          vi.useRealTimers();
        }
      }),
      { numRuns: 150 },
    );
  });
});
