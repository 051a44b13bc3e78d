import type { Batch, Cursor, Engine, Message } from './engine.js';
import { LongPollError } from './errors.js';
import { encodeComposite } from './composite-cursor.js';
import { MAX_LIMIT } from './limits.js';
import { hashOf } from './channel-tag.js';

/*
 * Reading many channels at once, for `Broker.readMany` and `Broker.pollMany`: the list of
 * channels, and one read of all of them that shares the limit fairly; and where a channel ends
 * (`firstMessage: 'newest'`).
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
 * have any left, so that a backlog on one channel never keeps another's messages out. When the
 * limit is smaller than the number of channels with messages, some get none: the round then
 * starts at the channel `start` picks, or the first listed would always win and a backlog on it
 * keep every later channel out for as long as it lasts.
 */
function shareRoundRobin(available: readonly number[], limit: number, start: () => number): number[] {
  const shares = available.map(() => 0);
  const count = available.length;
  const first = limit < available.filter((n) => n > 0).length ? start() % count : 0;
  let left = limit;
  while (left > 0) {
    let gave = false;
    for (let j = 0; j < count && left > 0; j++) {
      const i = (first + j) % count;
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
 * Where a short round starts: a hash of the positions, which move with every answer, so that
 * each channel comes first in turn as a client reads on (and the same read answers the same).
 * Read from nothing, the first listed channel.
 */
function startOf(positions: ReadonlyMap<string, Cursor | undefined>): number {
  let hash = 0;
  for (const cursor of positions.values()) if (cursor !== undefined) hash = (Math.imul(hash, 31) + hashOf(cursor)) >>> 0;
  return hash;
}

/** `read()` as `Promise.allSettled` reports it. */
function settle(read: () => Batch): PromiseSettledResult<Batch> {
  try {
    return { status: 'fulfilled', value: read() };
  } catch (reason) {
    return { status: 'rejected', reason };
  }
}

/** One channel's part of a many-channel answer. */
interface Part {
  readonly messages: readonly Message[];
  /** The channel's cursor just after each message, where the engine gave them. */
  readonly cursors?: readonly (Cursor | undefined)[];
  /** Where the channel's next read starts. */
  readonly cursor: Cursor;
}

/** The first `share` messages of `batch`, when the engine said where each one ends. */
function partOf(batch: Batch, share: number): Part | undefined {
  if (share === batch.messages.length) return batch;
  const cursor = batch.cursors?.[share - 1];
  return cursor === undefined ? undefined : { messages: batch.messages.slice(0, share), cursors: batch.cursors!.slice(0, share), cursor };
}

/**
 * Reads each of `channels` after its position, up to its count. A `cursor_expired` on any of
 * them becomes one `cursor_expired` whose `earliestCursor` is the composite cursor with every
 * expired channel moved to its earliest retained position and the others untouched.
 */
async function readEach(engine: Engine, channels: readonly string[], positions: ReadonlyMap<string, Cursor | undefined>, counts: readonly number[]): Promise<Batch[]> {
  // The synchronous read, where the engine has one, makes no promise per channel
  // (bench/micro/many-wake.js measures it with the broker's grouped wake-up).
  const settled = engine.readNow
    ? channels.map((channel, i) => settle(() => engine.readNow!(channel, positions.get(channel), counts[i]!)))
    : await Promise.allSettled(channels.map((channel, i) => engine.read(channel, positions.get(channel), counts[i]!)));
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
 * `positions` past what it returns. A channel read from everything retained (no position) that
 * got none of the limit moves to just before its oldest message, where the engine gives it
 * (`Batch.before`); otherwise it stays unnamed, and a message that leaves its history before
 * the next read is skipped without `cursor_expired`. `cursors[i]` is the cursor of
 * `messages[i]`'s channel just after it, where the engine gave one (`Batch.cursors`); the last
 * message of each channel always has one.
 */
export async function readMany<T>(
  engine: Engine,
  list: readonly string[],
  positions: Map<string, Cursor | undefined>,
  limit: number,
): Promise<{ messages: readonly Message<T>[]; cursors: (Cursor | undefined)[]; counts: Map<string, number> }> {
  const batches = await readEach(engine, list, positions, list.map(() => limit));
  const shares = shareRoundRobin(
    batches.map((batch) => batch.messages.length),
    limit,
    () => startOf(positions),
  );
  // A channel that got less than it had needs the cursor just after the last message it returns:
  // the engine's per-message cursor, or else a second read up to its share. A publish may evict
  // in between: that read's cursor_expired is the composite one too.
  const parts: (Part | undefined)[] = shares.map((share, i) => (share === 0 ? batches[i]! : partOf(batches[i]!, share)));
  const again = [...parts.keys()].filter((i) => parts[i] === undefined);
  if (again.length > 0) {
    const reread = await readEach(
      engine,
      again.map((i) => list[i]!),
      positions,
      again.map((i) => shares[i]!),
    );
    for (const [j, i] of again.entries()) parts[i] = reread[j]!;
  }
  const messages: Message<T>[] = [];
  const cursors: (Cursor | undefined)[] = [];
  const counts = new Map<string, number>();
  for (let round = 0; messages.length < limit; round++) {
    let taken = false;
    for (const [i, part] of (parts as Part[]).entries()) {
      const share = shares[i]!;
      if (round >= share) continue;
      messages.push(part.messages[round] as Message<T>);
      cursors.push(round === share - 1 ? part.cursor : part.cursors?.[round]);
      taken = true;
    }
    if (!taken) break;
  }
  for (const [i, part] of (parts as Part[]).entries()) {
    const channel = list[i]!;
    // A channel that returned nothing keeps its position, or, read from everything retained,
    // moves to the head of an empty history.
    if (shares[i]! > 0 || part.messages.length === 0) positions.set(channel, part.cursor);
    // Read from everything retained and left out by the limit: named just before its oldest
    // message, which the next read then returns, or, once it has left, gives cursor_expired.
    // An engine without Batch.before leaves the channel unnamed, read from everything retained
    // again next time: if its oldest message leaves in between, nobody is told.
    else if (positions.get(channel) === undefined && batches[i]!.before !== undefined) positions.set(channel, batches[i]!.before);
    if (shares[i]! > 0) counts.set(channel, shares[i]!);
  }
  return { messages: Object.freeze(messages), cursors, counts };
}

/**
 * The cursor just after `channel`'s newest message, from which a read returns only what comes
 * next (`firstMessage: 'newest'`): the engine's `tail`, or else the channel read to its end.
 */
export async function tailOf(engine: Engine, channel: string): Promise<Cursor> {
  if (engine.tail) return engine.tail(channel);
  let cursor: Cursor | undefined;
  for (;;) {
    let batch: Batch;
    try {
      batch = await engine.read(channel, cursor, MAX_LIMIT);
    } catch (error) {
      // The history moved while it was read: go on from what is retained now.
      if (!(error instanceof LongPollError) || error.code !== 'cursor_expired') throw error;
      cursor = error.earliestCursor;
      continue;
    }
    if (batch.messages.length < MAX_LIMIT) return batch.cursor;
    cursor = batch.cursor;
  }
}
