/**
 * MemoryEngine's read that finds nothing (3bd6abb): one frozen batch kept with the channel's last
 * cursor made, or with the engine's for channels without history, shared by every such read.
 * Whatever the publishes, reads, evictions (capacity, maxBytes, maxAge) and channels that come
 * and go, alternate or share a tag (`c693596` and `c1170850`), an empty read's cursor is the
 * engine's latest position on that channel, and a read from it returns the channel's next
 * message: never a stale shared batch, never a gap.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tagOf } from '../src/channel-tag.js';
import { LongPollError, MemoryEngine } from '../src/index.js';

const CHANNELS = ['a', 'b', 'c693596', 'c1170850'];

type Step =
  | { publish: string; size: number }
  | { head: string }
  | { fresh: string }
  | { old: string }
  | { wait: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ publish: fc.constantFrom(...CHANNELS), size: fc.integer({ min: 1, max: 600 }) }),
  fc.record({ head: fc.constantFrom(...CHANNELS) }),
  fc.record({ fresh: fc.constantFrom(...CHANNELS) }),
  fc.record({ old: fc.constantFrom(...CHANNELS) }),
  fc.record({ wait: fc.integer({ min: 1, max: 80 }) }),
);

describe('MemoryEngine: the read that finds nothing', () => {
  afterEach(() => vi.useRealTimers());

  it('carries the latest position of its own channel, frozen, and a read from it misses nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), fc.integer({ min: 1, max: 4 }), async (steps, capacity) => {
        vi.useFakeTimers({ toFake: ['Date'] });
        const engine = new MemoryEngine({ capacity, maxAge: 100, maxBytes: 20_000 });
        let sequence = 0;
        /** The positions each channel holds, oldest first, as the engine's evictions say. */
        const held = new Map<string, number[]>();
        engine.attach({
          appended: () => {},
          resync: () => {},
          evicted: (channel, count) => void held.get(channel)!.splice(0, count),
        });
        /** A read from `head` of `channel`: exactly the messages held after it, or cursor_expired. */
        const readFrom = (channel: string, head: { cursor: string; position: number }) => {
          const after = (held.get(channel) ?? []).filter((position) => position > head.position);
          let batch;
          try {
            batch = engine.readNow(channel, head.cursor, 100);
          } catch (error) {
            if (!(error instanceof LongPollError) || error.code !== 'cursor_expired') throw error;
            return;
          }
          expect(batch.messages.length).toBe(after.length);
          for (const message of batch.messages) expect(message.channel).toBe(channel);
          if (batch.messages.length === 0) expectNothing(channel, batch);
        };
        /** The cursor each channel's last read at its head gave, and the position it stands for. */
        const heads = new Map<string, { cursor: string; position: number }>();
        const expectNothing = (channel: string, batch: { messages: readonly unknown[]; cursor: string; json?: string; before?: string }) => {
          expect(batch.messages).toHaveLength(0);
          expect(Object.isFrozen(batch)).toBe(true);
          expect(Object.isFrozen(batch.messages)).toBe(true);
          expect(batch.before).toBeUndefined();
          expect(batch.cursor).toBe(`${engine.epoch}.${tagOf(channel)}.${sequence.toString(36)}`);
          heads.set(channel, { cursor: batch.cursor, position: sequence });
        };
        for (const s of steps) {
          if ('publish' in s) {
            try {
              // Counted before the append: its evictions of this channel come inside it.
              const positions = held.get(s.publish) ?? [];
              held.set(s.publish, positions);
              positions.push(sequence + 1);
              try {
                await engine.append(s.publish, JSON.stringify('x'.repeat(s.size)));
              } catch (error) {
                positions.pop();
                throw error;
              }
              sequence++;
            } catch (error) {
              if (!(error instanceof LongPollError) || error.code !== 'payload_too_large') throw error;
            }
            // A read from the channel's last head returns what came since, or cursor_expired.
            const head = heads.get(s.publish);
            if (head) readFrom(s.publish, head);
          } else if ('head' in s) {
            // Read to the end, then at the end: the second read finds nothing.
            let cursor: string | undefined;
            for (let batch = engine.readNow(s.head, cursor, 100); ; batch = engine.readNow(s.head, cursor, 100)) {
              if (batch.messages.length === 0) {
                expectNothing(s.head, batch);
                break;
              }
              cursor = batch.cursor;
            }
          } else if ('fresh' in s) {
            if (!engine.retains(s.fresh)) expectNothing(s.fresh, engine.readNow(s.fresh, undefined, 100));
          } else if ('old' in s) {
            // An older head of this channel: exactly what it holds since, or cursor_expired.
            const head = heads.get(s.old);
            if (head) readFrom(s.old, head);
          } else {
            vi.setSystemTime(Date.now() + s.wait);
          }
        }
        await engine.close();
        vi.useRealTimers();
      }),
      { numRuns: 1_500 },
    );
  });
});
