import { EventEmitter } from 'node:events';
import pTimeout from 'p-timeout';
import type * as TypedEmitter from 'typed-emitter';
import type { BrokerEvents, Delivery } from './broker-events.js';
import { decodeCursors, encodeCursors } from './composite-cursor.js';
import { channelsOf, readMany, selectionOf, tailOf } from './read-many.js';
import type { Batch, Cursor, Engine, JsonValue, PublishedMessage } from './engine.js';
import { LongPollError } from './errors.js';
import { Expiries } from './expiry.js';
import { emitGuarded } from './guarded-emit.js';
import { payloadOf } from './json.js';
import { DEFAULT_LIMIT, DEFAULT_WAIT, MAX_LIMIT } from './limits.js';
import { MemoryEngine } from './memory-engine.js';
import { Answer, PollTicket, selectMany, Selection, startPoll, timedOut, type PollOptions, type PollResult, type ReadOptions } from './poll.js';
import { groupWaiters, HeldOnChannel, isIdle, ManyWaiter, Waiter, WaiterList, type ChannelState, type Registry } from './waiter.js';

/** Options of {@link Broker}. */
export interface BrokerOptions {
  /**
   * Where history lives. Give `capacity` and `maxAge` to the engine itself when you pass one.
   * @default new MemoryEngine({ capacity, maxAge })
   */
  engine?: Engine;
  /**
   * Messages kept per channel by the default {@link MemoryEngine}.
   * @default 1000
   */
  capacity?: number;
  /**
   * How long the default {@link MemoryEngine} keeps a message, in milliseconds.
   * @default 300_000
   */
  maxAge?: number;
  /**
   * How long `close()` waits for polls that are still reading from the engine, in
   * milliseconds, before it closes the engine anyway.
   * @default 10_000
   */
  closeTimeout?: number;
}

/** What {@link Broker.stats} reports. */
export interface BrokerStats {
  /** Channels holding messages or waiters. */
  readonly channels: number;
  /** Polls being held (not counting answered many-channel polls kept for their re-poll). */
  readonly waiters: number;
  /** Messages held in history, over all channels. */
  readonly messages: number;
}

/** Longer waits overflow `setTimeout`, so they are held without a timer. */
const MAX_TIMER = 2_147_483_647;

/**
 * How long an answered many-channel poll stays parked for its re-poll, in milliseconds: a client
 * polls again as soon as it has its answer, and one that has not after this reads as any other.
 */
const PARK_GRACE = 1_000;
/** At most this many answered many-channel polls are parked at once; the others are forgotten. */
const MAX_PARKED = 10_000;

const BrokerEmitter = EventEmitter as unknown as new <T>() => TypedEmitter.default<BrokerEvents<T>>;

function assertChannel(channel: unknown): asserts channel is string {
  if (typeof channel !== 'string' || channel.length === 0) {
    throw new LongPollError('invalid_channel', 'The channel must be a non-empty string');
  }
}

function cursorOf(options: ReadOptions): Cursor | undefined {
  const { cursor } = options;
  if (cursor === undefined || (typeof cursor === 'string' && cursor.length > 0)) return cursor;
  throw new LongPollError('invalid_cursor', 'The cursor must be a non-empty string or undefined');
}

function limitOf(options: ReadOptions): number {
  const { limit = DEFAULT_LIMIT } = options;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new LongPollError('invalid_limit', `The limit must be a positive integer, got ${String(limit)}`);
  }
  return Math.min(limit, MAX_LIMIT);
}

/** Whether a read without a cursor starts after the newest message. */
function fromNewest(options: ReadOptions): boolean {
  const { firstMessage = 'oldest' } = options;
  if (firstMessage !== 'oldest' && firstMessage !== 'newest') {
    throw new LongPollError('invalid_option', `firstMessage must be 'oldest' or 'newest', got ${String(firstMessage)}`);
  }
  return firstMessage === 'newest';
}

function waitOf(options: PollOptions): number {
  const { wait = DEFAULT_WAIT } = options;
  if (typeof wait !== 'number' || Number.isNaN(wait) || wait < 0) {
    throw new LongPollError('invalid_wait', `The wait must be a number of milliseconds >= 0, got ${String(wait)}`);
  }
  return wait > MAX_TIMER ? Number.POSITIVE_INFINITY : wait;
}

function shuttingDown(): LongPollError {
  return new LongPollError('shutting_down', 'The broker is shutting down', { retryAfter: 1 });
}

function answerOf<T>(batch: Batch): Answer<T> {
  const result: PollResult<T> = Object.freeze({ messages: batch.messages as PollResult<T>['messages'], cursor: batch.cursor, timedOut: false });
  return new Answer(result, batch.json, batch.cursors);
}

/** The ticket of {@link Broker.poll}: settles its promise, and cancels on its signal. */
class PromiseTicket<T> extends PollTicket<T> implements EventListenerObject {
  constructor(
    readonly settle: { resolve(result: PollResult<T>): void; reject(error: unknown): void },
    readonly signal: AbortSignal | undefined,
  ) {
    super();
    if (!signal) return;
    if (signal.aborted) this.cancel(signal.reason);
    else signal.addEventListener('abort', this);
  }

  resolve(answer: Answer<T>): void {
    this.signal?.removeEventListener('abort', this);
    this.settle.resolve(answer.result);
  }

  reject(error: unknown): void {
    this.signal?.removeEventListener('abort', this);
    this.settle.reject(error);
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.cancel(this.signal!.reason);
  }
}

/**
 * Channels, publishing, held polls and resumable history.
 *
 * A poll returns at once when messages exist after its cursor, and otherwise waits until a
 * publish, its `wait`, or its signal. It never skips a message: when the history cannot prove
 * that nothing after the cursor was lost, the poll fails with `cursor_expired` and the caller
 * resumes from `earliestCursor`.
 *
 * @typeParam T - the payload type; payloads must be JSON-serialisable, which is checked at
 *   publish time
 *
 * @example
 * ```ts
 * const broker = new Broker<{ text: string }>({ capacity: 1000, maxAge: 300_000 });
 * const sent = await broker.publish('room:1', { text: 'hi' });
 * const { messages, cursor } = await broker.poll('room:1', { wait: 25_000 });
 * ```
 */
export class Broker<T = JsonValue> extends BrokerEmitter<T> {
  readonly #engine: Engine;
  readonly #ready: Promise<void> | undefined;
  readonly #registry: Registry<T> = {
    channels: new Map(),
    held: 0,
    expire: (waiter) => this.#expire(waiter),
    expireMany: (waiter) => this.#expireMany(waiter),
    parked: new Map(),
  };
  readonly #expiries = new Expiries();
  /** The grace periods of parked many-channel polls: they keep no process alive. */
  readonly #parkings = new Expiries(false);
  readonly #channels = this.#registry.channels;
  #active = 0;
  /** Deliveries made inside a publish's `append`, reported after its `publish` event. */
  #deferred: Delivery[] | undefined;
  readonly #closeTimeout: number;
  #closed = false;
  #closing: Promise<void> | undefined;
  #idle: (() => void) | undefined;

  /** @param options - the engine, or the default engine's bounds */
  constructor(options: BrokerOptions = {}) {
    super();
    const { engine, capacity, maxAge, closeTimeout = 10_000 } = options ?? {};
    if (typeof closeTimeout !== 'number' || !(closeTimeout > 0)) {
      throw new LongPollError('invalid_option', `closeTimeout must be a positive number of milliseconds, got ${String(closeTimeout)}`);
    }
    this.#closeTimeout = closeTimeout;
    if (engine && (capacity !== undefined || maxAge !== undefined)) {
      throw new LongPollError('invalid_option', 'capacity and maxAge configure the default engine; pass them to your engine');
    }
    this.#engine = engine ?? new MemoryEngine({ capacity, maxAge });
    const attached = this.#engine.attach({
      appended: (channel) => this.#appended(channel),
      resync: () => {
        for (const [channel, state] of this.#channels) this.#appended(channel, state);
      },
      evicted: (channel, count, reason) => this.#report('evict', { channel, count, reason }),
      // An engine's own outage (RedisEngine's listening connection): news for whoever listens.
      error: (error) => {
        if (this.listenerCount('error') > 0) this.emit('error', LongPollError.from(error));
      },
    });
    if (attached instanceof Promise) {
      this.#ready = attached;
      attached.catch(() => {}); // surfaced by the first operation that awaits it
    }
  }

  /**
   * Appends `data` to `channel`'s history and wakes the polls waiting on it.
   *
   * @returns the stored message and the cursor just after it
   * @throws {@link LongPollError} `invalid_channel`, `invalid_payload` (`undefined`, a BigInt,
   *   a cycle…), `shutting_down`, or the engine's error
   */
  async publish(channel: string, data: T): Promise<PublishedMessage<T>> {
    assertChannel(channel);
    const { json, value } = payloadOf(data);
    if (this.#closed) throw shuttingDown();
    if (this.#ready) await this.#ready;
    // An engine that reads synchronously notifies inside `append` (its contract says so), and the
    // held polls are answered there: their `deliver` events wait until this publish has reported
    // `publish`, so that listeners see the two in that order.
    const deliveries: Delivery[] = [];
    const outer = this.#deferred;
    this.#deferred = deliveries;
    let appending: Promise<PublishedMessage>;
    try {
      appending = this.#engine.append(channel, json, value);
    } finally {
      this.#deferred = outer;
    }
    try {
      const message = (await appending) as PublishedMessage<T>;
      this.#report('publish', message);
      return message;
    } finally {
      for (const delivery of deliveries) this.#report('deliver', delivery);
    }
  }

  /**
   * Reads what is retained after a cursor, without waiting. On a channel that never existed it
   * returns no messages and a cursor after which the channel's first message is delivered.
   *
   * @throws {@link LongPollError} `invalid_channel`, `invalid_cursor`, `invalid_limit`,
   *   `cursor_expired`, `shutting_down`
   */
  async read(channel: string, options: ReadOptions = {}): Promise<PollResult<T>> {
    assertChannel(channel);
    let cursor = cursorOf(options ?? {});
    const limit = limitOf(options ?? {});
    const newest = fromNewest(options ?? {});
    if (this.#closed) throw shuttingDown();
    if (this.#ready) await this.#ready;
    if (cursor === undefined && newest) cursor = await tailOf(this.#engine, channel);
    return answerOf<T>(await this.#engine.read(channel, cursor, limit)).result;
  }

  /**
   * Returns messages after the cursor at once if there are any, else holds until a publish on
   * the channel, the `wait`, or the signal. A timeout is a normal result with `timedOut: true`
   * and a cursor that resumes exactly.
   *
   * @throws {@link LongPollError} `invalid_channel`, `invalid_cursor`, `invalid_wait`,
   *   `invalid_limit`, `cursor_expired` (with `earliestCursor`), `shutting_down`; or
   *   `signal.reason` when the signal aborts
   */
  poll(channel: string, options: PollOptions = {}): Promise<PollResult<T>> {
    return new Promise<PollResult<T>>((resolve, reject) => {
      this[startPoll](channel, options ?? {}, new PromiseTicket({ resolve, reject }, options?.signal));
    });
  }

  /**
   * Reads what is retained after a composite cursor on each of `channels`, without waiting: the
   * many-channel {@link read}. Every message names its channel; each channel's messages come in
   * publish order, and across channels no order is promised. `limit` bounds the whole result and
   * is shared round-robin among the channels that have messages, so a backlog on one channel
   * never keeps the others out. The returned cursor moves each channel only past what was
   * returned.
   *
   * The cursor is composite and opaque. A channel it does not name is read from everything
   * retained; a channel it names that is not in `channels` is dropped from the next cursor. So
   * a caller adds or removes a channel by changing the list and keeping the cursor.
   *
   * @throws {@link LongPollError} `invalid_channel` (an empty list, a duplicate or an empty
   *   name), `invalid_cursor`, `invalid_limit`, `shutting_down`; `cursor_expired` when any
   *   channel's position expired, with `earliestCursor` the composite cursor in which only the
   *   expired channels moved (to their earliest retained position): the others lose nothing
   */
  async readMany(channels: readonly string[], options: ReadOptions = {}): Promise<PollResult<T>> {
    const { channels: list, cursors } = selectionOf(channels, cursorOf(options ?? {}));
    const limit = limitOf(options ?? {});
    const newest = fromNewest(options ?? {});
    if (this.#closed) throw shuttingDown();
    if (this.#ready) await this.#ready;
    if (newest) await this.#fromTail(list, cursors);
    const { messages } = await readMany<T>(this.#engine, list, cursors, limit);
    return Object.freeze({ messages, cursor: encodeCursors(list, cursors), timedOut: false });
  }

  /**
   * The many-channel {@link poll}: returns at once when any of `channels` has messages after the
   * composite cursor (as {@link readMany} reads them), else holds until a publish on any of them,
   * the `wait`, or the signal. One poll, however many channels.
   *
   * @throws as {@link readMany}, and `invalid_wait`; or `signal.reason` when the signal aborts
   */
  pollMany(channels: readonly string[], options: PollOptions = {}): Promise<PollResult<T>> {
    return new Promise<PollResult<T>>((resolve, reject) => {
      const ticket = new PromiseTicket<T>({ resolve, reject }, options?.signal);
      let selection: Selection;
      try {
        const list = channelsOf(channels);
        const cursor = cursorOf(options ?? {});
        selection = this.#parkedSelection(list, cursor) ?? new Selection(list, decodeCursors(cursor, list));
      } catch (error) {
        ticket.reject(error);
        return;
      }
      this[startPoll](selection, options ?? {}, ticket);
    });
  }

  /**
   * Starts a poll, on one channel or the channels of a {@link Selection}, whose answer goes to
   * `ticket`: what {@link poll} and {@link pollMany} do, and what the HTTP layer calls so that a
   * held request keeps no promise. `options.signal` is ignored here: the ticket is cancelled by
   * its owner; so is `options.cursor` for a selection, which holds its positions.
   *
   * @internal
   */
  [startPoll](target: string | Selection, options: PollOptions, ticket: PollTicket<T>): void {
    let polled: Promise<void> | undefined;
    try {
      polled = target instanceof Selection ? this.#startMany(target, options, ticket) : this.#poll(target, options, ticket);
    } catch (error) {
      ticket.reject(error);
      return;
    }
    polled?.catch((error: unknown) => ticket.reject(error));
  }

  /**
   * Checks the composite `cursor` of `channels` as {@link checkCursor} does, and returns both
   * decoded, to poll with. The list is taken as it is: the HTTP layer, which calls this, has
   * checked it (distinct, non-empty names), and so has {@link checkCursor}.
   *
   * @internal
   */
  [selectMany](channels: readonly string[], cursor: Cursor | undefined): Selection {
    const parked = this.#parkedSelection(channels, cursor);
    if (parked) return parked;
    const cursors = decodeCursors(cursorOf({ cursor }), channels);
    for (let i = 0; i < channels.length; i++) {
      if (cursors[i] !== undefined) this.#engine.checkCursor?.(channels[i]!, cursors[i]!);
    }
    return new Selection(channels, cursors);
  }

  /**
   * The {@link Selection} of the poll parked under `cursor` when it was answered, if that poll
   * covered exactly `channels`: the positions it holds are the ones `cursor` names, and it may
   * be held again as it is (see {@link #startMany}). Nothing is parked under anything but a
   * string (`cursor` is unchecked here).
   */
  #parkedSelection(channels: readonly string[], cursor: unknown): Selection | undefined {
    const parked = typeof cursor === 'string' ? this.#registry.parked.get(cursor) : undefined;
    if (!parked || parked.channels.length !== channels.length) return undefined;
    for (let i = 0; i < channels.length; i++) if (parked.channels[i] !== channels[i]) return undefined;
    return new Selection(parked.channels, [...parked.cursors], parked);
  }

  /** Throws synchronously for bad options: `[startPoll]` rejects the ticket with it. */
  #startMany({ channels: list, cursors, parked }: Selection, options: PollOptions, ticket: PollTicket<T>): Promise<void> | undefined {
    const limit = limitOf(options);
    const wait = waitOf(options);
    const deadline = wait === 0 ? 0 : Date.now() + wait;
    // The poll answered with this cursor is still parked: nothing was published on any of its
    // channels since, so reading them would find nothing; it is held again as it is (a publish
    // and the 10-channel re-polls it causes: 1.8-2.8x less CPU, bench/micro/many-park.js).
    if (parked?.parkedAt !== undefined && parked.limit === limit && deadline > Date.now() && !ticket.expired && !this.#closed) {
      ticket.throwIfCancelled();
      const waiter = parked as ManyWaiter<T>;
      waiter.resume(ticket, deadline);
      if (deadline !== Number.POSITIVE_INFINITY) this.#expiries.add(waiter, deadline - Date.now());
      return undefined;
    }
    if (!fromNewest(options)) return this.#pollMany(list, cursors, limit, deadline, ticket);
    return (async () => {
      if (this.#ready) await this.#ready;
      await this.#fromTail(list, cursors);
      await this.#pollMany(list, cursors, limit, deadline, ticket);
    })();
  }

  /** Moves every channel without a position to just after its newest message. */
  async #fromTail(list: readonly string[], cursors: (Cursor | undefined)[]): Promise<void> {
    const unnamed = [...cursors.keys()].filter((i) => cursors[i] === undefined);
    const tails = await Promise.all(unnamed.map((i) => tailOf(this.#engine, list[i]!)));
    for (const [k, i] of unnamed.entries()) cursors[i] = tails[k];
  }

  /**
   * Reads every channel and answers, or holds one {@link ManyWaiter} on all of them. A publish
   * on any of them takes it off all and calls this again with what is left of the wait.
   */
  async #pollMany(
    list: readonly string[],
    positions: (Cursor | undefined)[],
    limit: number,
    deadline: number,
    ticket: PollTicket<T>,
  ): Promise<void> {
    ticket.throwIfCancelled();
    if (this.#closed) throw shuttingDown();
    const states = list.map((channel) => this.#enter(channel));
    try {
      if (this.#ready) await this.#ready;
      for (;;) {
        // Synchronous with a synchronous engine: nothing suspends, and no publish can land
        // during the read. Otherwise one that does bumps a version.
        const read = readMany<T>(this.#engine, list, positions, limit);
        const versions = read instanceof Promise ? states.map((state) => state.version) : undefined;
        const { messages, cursors, counts } = read instanceof Promise ? await read : read;
        ticket.throwIfCancelled();
        if (messages.length > 0) {
          ticket.resolve(new Answer(Object.freeze({ messages, cursor: encodeCursors(list, positions), timedOut: false }), undefined, cursors));
          for (const [i, count] of counts) this.#report('deliver', { channel: list[i]!, messages: count, polls: 1 });
          return;
        }
        if (deadline <= Date.now() || ticket.expired) {
          ticket.resolve(timedOut(encodeCursors(list, positions)));
          return;
        }
        if (this.#closed) throw shuttingDown();
        // A publish during the reads bumped a version: read again, or it is lost.
        if (!versions || states.every((state, i) => state.version === versions[i])) {
          const waiter = new ManyWaiter(list, positions, limit, deadline, states, this.#registry, ticket);
          // Taken off its list when the poll is answered or forgotten.
          if (deadline !== Number.POSITIVE_INFINITY) this.#expiries.add(waiter, deadline - Date.now());
          return;
        }
      }
    } finally {
      for (const state of states) {
        state.reading--;
        this.#leave(state);
      }
    }
  }

  #expireMany(waiter: ManyWaiter<T>): void {
    // Parked, its grace period is over: its poll did not come back.
    if (waiter.parkedAt !== undefined) {
      waiter.detach();
      return;
    }
    // The lists keep time by another clock: a millisecond early by this one.
    if (Date.now() < waiter.deadline) {
      this.#expiries.add(waiter, waiter.deadline - Date.now());
      return;
    }
    if (!waiter.detach()) return;
    waiter.ticket.resolve(timedOut(encodeCursors(waiter.channels, waiter.cursors)));
    for (const channel of waiter.channels) this.#report('timeout', channel);
  }

  /**
   * A publish on `channel`, one of the channels of the many-channel polls held on it. With an
   * engine that reads synchronously, the wake-up comes inside the append, so `channel` is the
   * only one of their channels with news (a publish on another would have woken them first):
   * one read of `channel` per position and limit answers every such poll, as `#drain` does for
   * polls of one channel (1.8× less CPU than each poll reading all its channels again:
   * bench/micro/many-wake.js). Otherwise, or when that read fails, each poll reads all its
   * channels again.
   */
  #wakeMany(channel: string, state: ChannelState<T>): void {
    const readNow = this.#engine.readNow?.bind(this.#engine);
    // Each poll held here, with the index of `channel` among its channels.
    type Held = readonly [ManyWaiter<T>, number];
    const groups = new Map<string | undefined, Held[]>();
    for (const held of state.many.entries()) {
      const [waiter, i] = held;
      if (!waiter.awaits()) continue;
      if (!readNow) {
        this.#repollMany(waiter);
        continue;
      }
      const position = waiter.cursors[i];
      const key = waiter.limit === DEFAULT_LIMIT ? position : `${position} ${waiter.limit}`;
      const group = groups.get(key);
      if (group) group.push(held);
      else groups.set(key, [held]);
    }
    for (const group of groups.values()) {
      const [first, i] = group[0]!;
      let batch: Batch;
      try {
        batch = readNow!(channel, first.cursors[i], first.limit);
      } catch {
        // `cursor_expired` names a composite cursor of each poll's own.
        for (const [waiter] of group) this.#repollMany(waiter);
        continue;
      }
      if (batch.messages.length === 0) continue;
      let answered = 0;
      // Each poll's answer has its own cursor; the messages, and their text, are the read's.
      const texts = {};
      // Read to its end (fewer than the limit), the channel has nothing more for these polls.
      const parkable = batch.messages.length < first.limit;
      for (const [waiter, index] of group) {
        if (!waiter.awaits()) continue;
        answered++;
        waiter.cursors[index] = batch.cursor;
        const cursor = encodeCursors(waiter.channels, waiter.cursors);
        const { ticket } = waiter;
        this.#park(waiter, cursor, parkable);
        ticket.resolve(new Answer(Object.freeze({ messages: batch.messages as PollResult<T>['messages'], cursor, timedOut: false }), batch.json, batch.cursors, texts));
      }
      if (answered === 0) continue;
      const delivery = { channel, messages: batch.messages.length, polls: answered };
      if (this.#deferred) this.#deferred.push(delivery);
      else this.#report('deliver', delivery);
    }
  }

  /**
   * Takes an answered many-channel poll off its channels, or parks it there under `cursor`, the
   * cursor of its answer, for {@link PARK_GRACE} ms: its client polls again with that cursor at
   * once, and is held again without a read (see {@link #startMany}). Parks at most
   * {@link MAX_PARKED} polls, and one per cursor.
   */
  #park(waiter: ManyWaiter<T>, cursor: Cursor, parkable: boolean): void {
    const { parked } = this.#registry;
    if (!parkable || this.#closed || parked.size >= MAX_PARKED || parked.has(cursor)) {
      waiter.detach();
      return;
    }
    waiter.list?.remove(waiter);
    waiter.park(cursor);
    this.#parkings.add(waiter, PARK_GRACE);
  }

  /** Takes a many-channel poll off its channels and reads them all again. */
  #repollMany(waiter: ManyWaiter<T>): void {
    if (!waiter.awaits() || !waiter.detach()) return;
    this.#pollMany(waiter.channels, waiter.cursors, waiter.limit, waiter.deadline, waiter.ticket).catch((error: unknown) =>
      waiter.ticket.reject(error),
    );
  }

  /**
   * A poll of one channel: reads, then answers or holds. With a synchronous engine and nothing to
   * wait for first, that is all done before it returns, and it returns no promise: an event
   * stream polls again after every event, and a promise and a suspended frame per poll were half
   * of what that allocated (bench/micro/sync-poll.js). Otherwise it goes on in {@link #pollLater}.
   * Throws synchronously for bad options and on a closed broker.
   */
  #poll(channel: string, options: PollOptions, ticket: PollTicket<T>): Promise<void> | undefined {
    assertChannel(channel);
    const cursor = cursorOf(options);
    const limit = limitOf(options);
    const wait = waitOf(options);
    const newest = fromNewest(options) && cursor === undefined;
    ticket.throwIfCancelled();
    if (this.#closed) throw shuttingDown();

    // Decided before the poll counts as reading (`#enter`): an engine whose `readNow` getter
    // throws then fails this poll, instead of leaving it counted for ever, which `close()` waits for.
    const later = this.#ready !== undefined || newest || !this.#engine.readNow;
    const state = this.#enter(channel);
    if (later) return this.#pollLater(state, cursor, limit, wait, newest, ticket);
    try {
      // No publish can land during a synchronous read: the version cannot have moved.
      this.#settle(state, this.#engine.readNow!(channel, cursor, limit), limit, wait, ticket, state.version);
    } finally {
      state.reading--;
      this.#leave(state);
    }
    return undefined;
  }

  /** {@link #poll} when it must wait: for the engine, for the channel's tail, or for its read. */
  async #pollLater(
    state: ChannelState<T>,
    from: Cursor | undefined,
    limit: number,
    wait: number,
    newest: boolean,
    ticket: PollTicket<T>,
  ): Promise<void> {
    const { channel } = state;
    let cursor = from;
    try {
      if (this.#ready) await this.#ready;
      if (newest) cursor = await tailOf(this.#engine, channel);
      for (;;) {
        const version = state.version;
        const batch = this.#engine.readNow?.(channel, cursor, limit) ?? (await this.#engine.read(channel, cursor, limit));
        if (this.#settle(state, batch, limit, wait, ticket, version)) return;
        cursor = batch.cursor;
      }
    } finally {
      state.reading--;
      this.#leave(state);
    }
  }

  /**
   * What a poll does with its read: answers it, or holds it (`true`); `false` when a publish
   * landed during the read (the channel's version is no longer `version`), so that the poll
   * reads again from the batch's cursor, or that publish is lost.
   */
  #settle(state: ChannelState<T>, batch: Batch, limit: number, wait: number, ticket: PollTicket<T>, version: number): boolean {
    ticket.throwIfCancelled();
    if (batch.messages.length > 0) {
      ticket.resolve(answerOf(batch));
      this.#report('deliver', { channel: state.channel, messages: batch.messages.length, polls: 1 });
      return true;
    }
    if (wait === 0 || ticket.expired) {
      ticket.resolve(timedOut(batch.cursor));
      return true;
    }
    if (this.#closed) throw shuttingDown();
    if (state.version !== version) return false;
    // Registered, not awaited: a held poll keeps no suspended frame alive.
    this.#hold(state, batch.cursor, limit, wait, ticket);
    return true;
  }

  /**
   * Checks, synchronously and without I/O, that `cursor` can be one of `channel`'s cursors (or,
   * given a list of channels, a composite cursor of {@link pollMany}), so
   * that a caller can refuse a bad one before it reserves anything (the HTTP adapters check it
   * before taking a lease). Whether the messages after it are still retained is for `poll` and
   * `read` to tell (`cursor_expired`).
   *
   * @throws {@link LongPollError} `invalid_channel` or `invalid_cursor`
   */
  checkCursor(channel: string | readonly string[], cursor: Cursor): void {
    if (typeof channel !== 'string') {
      this[selectMany](channelsOf(channel), cursor);
      return;
    }
    cursorOf({ cursor });
    assertChannel(channel);
    this.#engine.checkCursor?.(channel, cursor);
  }

  /** What the broker holds right now. */
  stats(): BrokerStats {
    const engine = this.#engine.stats();
    let channels = engine.channels;
    for (const [channel, state] of this.#channels) {
      if ((state.waiters.size === 0 && state.many.size === 0) || this.#engine.retains(channel)) continue;
      // A parked many-channel poll is not a waiter: a channel only such polls are on holds nothing.
      if (state.waiters.size > 0 || state.many.holdsAny()) channels++;
    }
    return { channels, waiters: this.#registry.held, messages: engine.messages };
  }

  /**
   * Answers every held poll with `shutting_down`, refuses new polls and publishes, waits until
   * no poll is left, then closes the engine. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    this.#closed = true;
    for (const state of this.#channels.values()) {
      // A copy: each failure takes its waiter off.
      for (const waiter of state.waiters.snapshot()) waiter.fail(shuttingDown());
      for (const [waiter] of state.many.entries()) waiter.fail(shuttingDown());
    }
    this.#report('close');
    if (this.#active > 0) {
      // Polls still reading answer when their read returns; a hung engine must not hang close().
      const idle = new Promise<void>((resolve) => (this.#idle = resolve));
      await pTimeout(idle, { milliseconds: this.#closeTimeout, message: false });
    }
    await this.#engine.close();
  }

  #enter(channel: string): ChannelState<T> {
    let state = this.#channels.get(channel);
    if (!state) {
      state = { channel, waiters: new WaiterList(), many: new HeldOnChannel(), version: 0, reading: 0, draining: false, dirty: false };
      this.#channels.set(channel, state);
    }
    state.reading++;
    this.#active++;
    return state;
  }

  /** Forgets an idle channel, and lets `close()` finish once no poll is reading. */
  #leave(state: ChannelState<T>): void {
    if (isIdle(state)) this.#channels.delete(state.channel);
    if (--this.#active === 0) this.#idle?.();
  }

  #hold(state: ChannelState<T>, cursor: Cursor, limit: number, wait: number, ticket: PollTicket<T>): void {
    const waiter = new Waiter(cursor, limit, state, this.#registry, ticket);
    // Taken off its list when the poll is answered or forgotten.
    if (wait !== Number.POSITIVE_INFINITY) this.#expiries.add(waiter, wait);
  }

  #expire(waiter: Waiter<T>): void {
    if (!waiter.detach()) return;
    waiter.ticket.resolve(timedOut(waiter.cursor));
    this.#report('timeout', waiter.state.channel);
  }

  #appended(channel: string, state = this.#channels.get(channel)): void {
    if (!state) return;
    state.version++;
    if (state.many.size > 0) this.#wakeMany(channel, state);
    if (state.waiters.size === 0) return;
    state.dirty = true;
    if (state.draining) return;
    state.draining = true;
    this.#active++;
    void this.#drain(channel, state);
  }

  /**
   * Answers the waiters of one channel: one engine read per distinct cursor and limit, one
   * {@link Answer} shared by every waiter it answers. Runs until no notification is pending.
   *
   * With an engine that reads synchronously (`readNow`), it all happens inside the publish that
   * notified, so the answers are on their way before `publish` resolves. Polls that a burst of
   * publishes finds re-polling get the rest of the burst as one batch.
   */
  async #drain(channel: string, state: ChannelState<T>): Promise<void> {
    try {
      // Other engines read asynchronously anyway: let a burst of synchronous publishes land first.
      if (!this.#engine.readNow) await Promise.resolve();
      while (state.dirty && state.waiters.size > 0) {
        state.dirty = false;
        for (const group of groupWaiters(state.waiters)) {
          const { cursor, limit } = group[0]!;
          let batch: Batch;
          try {
            batch = this.#engine.readNow?.(channel, cursor, limit) ?? (await this.#engine.read(channel, cursor, limit));
          } catch (error) {
            this.#fail(group, error);
            continue;
          }
          if (batch.messages.length === 0) continue;
          const answer = answerOf<T>(batch);
          // Read to its end (fewer than the limit): a poll whose ticket takes answer after answer
          // (an event stream) stays held at the batch's cursor, its wait started over, with no
          // poll to read and hold it again (a publish to 1,000 streams, until all are held again:
          // 2.9-3.7x less CPU, bench/micro/stream-keep.js). A publish during this drain makes the
          // channel dirty: the next round reads it from there.
          const keep = batch.messages.length < limit;
          let answered = 0;
          for (const waiter of group) {
            if (!waiter.held) continue; // timed out or cancelled meanwhile
            answered++;
            const { ticket } = waiter;
            if (keep && ticket.keeps) {
              waiter.cursor = batch.cursor;
              waiter.list?.renew(waiter);
            } else {
              waiter.detach();
            }
            ticket.resolve(answer);
          }
          if (answered === 0) continue;
          const delivery = { channel, messages: batch.messages.length, polls: answered };
          if (this.#deferred) this.#deferred.push(delivery);
          else this.#report('deliver', delivery);
        }
      }
    } finally {
      state.draining = false;
      this.#leave(state);
    }
  }

  /** Emits an event; a listener that throws is reported, never allowed to break the caller. */
  #report<E extends keyof BrokerEvents<T>>(event: E, ...args: Parameters<BrokerEvents<T>[E]>): void {
    emitGuarded(this, 'broker', event, ...args);
  }

  #fail(group: readonly Waiter<T>[], error: unknown): void {
    const failure = LongPollError.from(error);
    for (const waiter of group) waiter.fail(failure);
    // An evicted cursor is the normal way back to the history, not a failure.
    if (failure.code !== 'cursor_expired' && this.listenerCount('error') > 0) this.emit('error', failure);
  }
}
