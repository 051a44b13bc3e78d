import type { Batch, Cursor, Engine, Message } from './engine.js';
import { LongPollError } from './errors.js';
import { encodeComposite } from './composite-cursor.js';

/*
 * Reading many channels at once, for `Broker.readMany` and `Broker.pollMany`: the list of
 * channels, and one read of all of them that shares the limit fairly.
 */

/** The channels of a many-channel poll: a non-empty list of distinct, non-empty names. */
export function channelsOf(channels: unknown): readonly string[] {
  if (!Array.isArray(channels) || channels.length === 0) {
    throw new LongPollError('invalid_channel', 'The channels must be a non-empty array of channel names');
  }
  const seen = new Set<string>();
  for (const channel of channels as unknown[]) {
    if (typeof channel !== 'string' || channel.length === 0) {
      throw new LongPollError('invalid_channel', 'Every channel must be a non-empty string');
    }
    if (seen.has(channel)) throw new LongPollError('invalid_channel', `The channel ${channel} is listed twice`);
    seen.add(channel);
  }
  return [...seen];
}

/**
 * How many messages each channel gets out of `limit`, one at a time round-robin among those that
 * have any left, so that a backlog on one channel never keeps another's messages out.
 */
function shareRoundRobin(available: readonly number[], limit: number): number[] {
  const shares = available.map(() => 0);
  let left = limit;
  while (left > 0) {
    let gave = false;
    for (let i = 0; i < available.length && left > 0; i++) {
      if (shares[i]! < available[i]!) {
        shares[i]!++;
        left--;
        gave = true;
      }
    }
    if (!gave) break;
  }
  return shares;
}

/**
 * Reads each of `channels` after its position, up to its count. A `cursor_expired` on any of
 * them becomes one `cursor_expired` whose `earliestCursor` is the composite cursor with every
 * expired channel moved to its earliest retained position and the others untouched.
 */
async function readEach(engine: Engine, channels: readonly string[], positions: ReadonlyMap<string, Cursor | undefined>, counts: readonly number[]): Promise<Batch[]> {
  const settled = await Promise.allSettled(channels.map((channel, i) => engine.read(channel, positions.get(channel), counts[i]!)));
  const expired = new Map<string, Cursor | undefined>();
  for (const [i, outcome] of settled.entries()) {
    if (outcome.status === 'fulfilled') continue;
    const error: unknown = outcome.reason;
    if (!(error instanceof LongPollError) || error.code !== 'cursor_expired') throw error;
    expired.set(channels[i]!, error.earliestCursor);
  }
  if (expired.size > 0) {
    const earliest = new Map(positions);
    for (const [channel, cursor] of expired) earliest.set(channel, cursor);
    throw new LongPollError('cursor_expired', `Messages after the cursor have expired on ${[...expired.keys()].join(', ')}; resume from earliestCursor`, {
      earliestCursor: encodeComposite(earliest),
    });
  }
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<Batch>).value);
}

/**
 * Reads `list` after `positions` and shares `limit` among the channels round-robin; moves
 * `positions` past what it returns.
 */
export async function readMany<T>(
engine: Engine,
list: readonly string[],
positions: Map<string, Cursor | undefined>,
limit: number,
): Promise<{ messages: readonly Message<T>[]; counts: Map<string, number> }> {
  const batches = await readEach(engine, list, positions, list.map(() => limit));
  const shares = shareRoundRobin(
    batches.map((batch) => batch.messages.length),
    limit,
  );
  // A channel that got less than it had is read again up to its share, for the cursor just
  // after the last message it returns. A publish may evict in between: that read's
  // cursor_expired is the composite one too.
  const again = [...shares.keys()].filter((i) => shares[i]! > 0 && shares[i]! < batches[i]!.messages.length);
  if (again.length > 0) {
    const reread = await readEach(
      engine,
      again.map((i) => list[i]!),
      positions,
      again.map((i) => shares[i]!),
    );
    for (const [j, i] of again.entries()) batches[i] = reread[j]!;
  }
  const messages: Message<T>[] = [];
  const counts = new Map<string, number>();
  for (let round = 0; messages.length < limit; round++) {
    let taken = false;
    for (const [i, batch] of batches.entries()) {
      if (round >= shares[i]!) continue;
      messages.push(batch.messages[round] as Message<T>);
      taken = true;
    }
    if (!taken) break;
  }
  for (const [i, batch] of batches.entries()) {
    const channel = list[i]!;
    // A channel that returned nothing keeps its position, or, read from everything retained,
    // moves to the head of an empty history.
    if (shares[i]! > 0 || batch.messages.length === 0) positions.set(channel, batch.cursor);
    if (shares[i]! > 0) counts.set(channel, shares[i]!);
  }
  return { messages: Object.freeze(messages), counts };
}
