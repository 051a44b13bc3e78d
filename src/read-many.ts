import type { Batch, Cursor, Engine, Message } from './engine.js';
import { LongPollError } from './errors.js';
import { decodeCursors, encodeCursors } from './composite-cursor.js';
import { Selection } from './poll.js';
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
 * The {@link Selection} of a many-channel poll or read: the list checked, and the positions its
 * composite cursor names.
 *
 * @throws {@link LongPollError} `invalid_channel`, or `invalid_cursor` for a composite cursor
 *   this library did not make
 */
export function selectionOf(channels: unknown, cursor: Cursor | undefined): Selection {
  const list = channelsOf(channels);
  return new Selection(list, decodeCursors(cursor, list));
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
function startOf(cursors: readonly (Cursor | undefined)[]): number {
  let hash = 0;
  for (const cursor of cursors) if (cursor !== undefined) hash = (Math.imul(hash, 31) + hashOf(cursor)) >>> 0;
  return hash;
}

/** `next(value)`, at once when `value` is not a promise: a synchronous engine's reads stay so. */
function then<A, B>(value: A | Promise<A>, next: (value: A) => B | Promise<B>): B | Promise<B> {
  return value instanceof Promise ? value.then(next) : next(value);
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
 * Reads each of `channels` (or those at the indices `only` lists) after its cursor, up to its
 * count (one for all, or one per channel): synchronously where the engine can (`readNow`), which
 * makes no promise per channel (bench/micro/many-wake.js measures it with the broker's grouped
 * wake-up). A `cursor_expired` on any of them becomes one `cursor_expired` whose `earliestCursor`
 * is the composite cursor of all of `channels` with every expired channel moved to its earliest
 * retained position and the others untouched.
 */
function readEach(
  engine: Engine,
  channels: readonly string[],
  cursors: readonly (Cursor | undefined)[],
  counts: number | readonly number[],
  only?: readonly number[],
): Batch[] | Promise<Batch[]> {
  const length = only ? only.length : channels.length;
  if (!engine.readNow) {
    const reads: Promise<Batch>[] = [];
    for (let k = 0; k < length; k++) {
      const i = only ? only[k]! : k;
      reads.push(engine.read(channels[i]!, cursors[i], typeof counts === 'number' ? counts : counts[i]!));
    }
    return Promise.allSettled(reads).then((settled) => {
      const failures = new Map<number, unknown>();
      for (const [k, outcome] of settled.entries()) if (outcome.status === 'rejected') failures.set(only ? only[k]! : k, outcome.reason);
      if (failures.size > 0) throw failure(channels, cursors, failures);
      return settled.map((outcome) => (outcome as PromiseFulfilledResult<Batch>).value);
    });
  }
  const batches = new Array<Batch>(length);
  let failures: Map<number, unknown> | undefined;
  for (let k = 0; k < length; k++) {
    const i = only ? only[k]! : k;
    try {
      batches[k] = engine.readNow(channels[i]!, cursors[i], typeof counts === 'number' ? counts : counts[i]!);
    } catch (error) {
      (failures ??= new Map()).set(i, error);
    }
  }
  if (failures) throw failure(channels, cursors, failures);
  return batches;
}

/**
 * What failed reads of {@link readEach} (by index) throw: the first error that is not a
 * `cursor_expired`, or else one `cursor_expired` for all of them.
 */
function failure(channels: readonly string[], cursors: readonly (Cursor | undefined)[], failures: ReadonlyMap<number, unknown>): unknown {
  const earliest = [...cursors];
  const expired: string[] = [];
  for (const [i, error] of failures) {
    if (!(error instanceof LongPollError) || error.code !== 'cursor_expired') return error;
    earliest[i] = error.earliestCursor;
    expired.push(channels[i]!);
  }
  return new LongPollError('cursor_expired', `Messages after the cursor have expired on ${expired.join(', ')}; resume from earliestCursor`, {
    earliestCursor: encodeCursors(channels, earliest),
  });
}

/** What {@link readMany} returns. */
export interface ManyRead<T> {
  readonly messages: readonly Message<T>[];
  /** The cursor of each message's channel just after it, where known. */
  readonly cursors: readonly (Cursor | undefined)[];
  /** How many messages each channel gave, by the channel's index. */
  readonly counts: ReadonlyMap<number, number>;
}

/** The read that found nothing: shared, as it holds nothing. */
const NOTHING: ManyRead<never> = Object.freeze({ messages: Object.freeze([]), cursors: Object.freeze([]), counts: new Map() });

/**
 * Reads `list` after `cursors` (each channel's, by index) and shares `limit` among the channels
 * round-robin; moves `cursors` past what it returns. Synchronous where the engine reads
 * synchronously (`readNow`), so that a poll over many channels suspends nothing there, as one
 * over one channel does.
 *
 * A channel read from everything retained (no cursor) that got none of the limit moves to just
 * before its oldest message, where the engine gives it (`Batch.before`); otherwise it stays
 * unnamed, and a message that leaves its history before the next read is skipped without
 * `cursor_expired`. `cursors[i]` of the result is the cursor of `messages[i]`'s channel just
 * after it, where the engine gave one (`Batch.cursors`); the last message of each channel always
 * has one.
 */
export function readMany<T>(engine: Engine, list: readonly string[], cursors: (Cursor | undefined)[], limit: number): ManyRead<T> | Promise<ManyRead<T>> {
  const batches = readEach(engine, list, cursors, limit);
  return batches instanceof Promise ? batches.then((read) => share(engine, list, cursors, limit, read)) : share(engine, list, cursors, limit, batches);
}

/** What {@link readMany} makes of the first read of each channel. */
function share<T>(engine: Engine, list: readonly string[], cursors: (Cursor | undefined)[], limit: number, batches: readonly Batch[]): ManyRead<T> | Promise<ManyRead<T>> {
  // Nothing new, the common case of a poll about to be held: every channel moves to the head,
  // no sharing to do.
  if (batches.every((batch) => batch.messages.length === 0)) {
    for (let i = 0; i < list.length; i++) cursors[i] = batches[i]!.cursor;
    return NOTHING;
  }
  const shares = shareRoundRobin(
    batches.map((batch) => batch.messages.length),
    limit,
    () => startOf(cursors),
  );
  // A channel that got less than it had needs the cursor just after the last message it
  // returns: the engine's per-message cursor, or else a second read up to its share. A publish
  // may evict in between: that read's cursor_expired is the composite one too.
  const parts: (Part | undefined)[] = shares.map((share, i) => (share === 0 ? batches[i]! : partOf(batches[i]!, share)));
  const again = [...parts.keys()].filter((i) => parts[i] === undefined);
  if (again.length === 0) return assemble<T>(cursors, limit, batches, shares, parts as Part[]);
  return then(readEach(engine, list, cursors, shares, again), (rereads) => {
    for (const [k, i] of again.entries()) parts[i] = rereads[k]!;
    return assemble<T>(cursors, limit, batches, shares, parts as Part[]);
  });
}

/** The answer of {@link readMany} from each channel's part, and the positions moved past it. */
function assemble<T>(
  positions: (Cursor | undefined)[],
  limit: number,
  batches: readonly Batch[],
  shares: readonly number[],
  parts: readonly Part[],
): ManyRead<T> {
  const messages: Message<T>[] = [];
  const cursors: (Cursor | undefined)[] = [];
  const counts = new Map<number, number>();
  for (let round = 0; messages.length < limit; round++) {
    let taken = false;
    for (const [i, part] of parts.entries()) {
      const share = shares[i]!;
      if (round >= share) continue;
      messages.push(part.messages[round] as Message<T>);
      cursors.push(round === share - 1 ? part.cursor : part.cursors?.[round]);
      taken = true;
    }
    if (!taken) break;
  }
  for (const [i, part] of parts.entries()) {
    // A channel that returned nothing keeps its position, or, read from everything retained,
    // moves to the head of an empty history.
    if (shares[i]! > 0 || part.messages.length === 0) positions[i] = part.cursor;
    // Read from everything retained and left out by the limit: named just before its oldest
    // message, which the next read then returns, or, once it has left, gives cursor_expired.
    // An engine without Batch.before leaves the channel unnamed, read from everything retained
    // again next time: if its oldest message leaves in between, nobody is told.
    else if (positions[i] === undefined && batches[i]!.before !== undefined) positions[i] = batches[i]!.before;
    if (shares[i]! > 0) counts.set(i, shares[i]!);
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
