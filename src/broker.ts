import { EventEmitter } from 'node:events';
import pTimeout from 'p-timeout';
import type * as TypedEmitter from 'typed-emitter';
import type { BrokerEvents, Delivery } from './broker-events.js';
import type { Batch, Cursor, Engine, JsonValue, PublishedMessage } from './engine.js';
import { LongPollError } from './errors.js';
import { emitGuarded } from './guarded-emit.js';
import { payloadOf } from './json.js';
import { DEFAULT_LIMIT, DEFAULT_WAIT, MAX_LIMIT } from './limits.js';
import { MemoryEngine } from './memory-engine.js';
import { Answer, PollTicket, startPoll, timedOut, type PollOptions, type PollResult, type ReadOptions } from './poll.js';
import { groupWaiters, isIdle, Waiter, type ChannelState, type Registry } from './waiter.js';

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
  /** Polls being held. */
  readonly waiters: number;
  /** Messages held in history, over all channels. */
  readonly messages: number;
}

/** Longer waits overflow `setTimeout`, so they are held without a timer. */
const MAX_TIMER = 2_147_483_647;

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
  return new Answer(result, batch.json);
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
  readonly #registry: Registry<T> = { channels: new Map(), held: 0 };
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
    const cursor = cursorOf(options ?? {});
    const limit = limitOf(options ?? {});
    if (this.#closed) throw shuttingDown();
    if (this.#ready) await this.#ready;
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
   * Starts a poll whose answer goes to `ticket`: what {@link poll} does, and what the HTTP layer
   * calls so that a held request keeps no promise. `options.signal` is ignored here: the ticket
   * is cancelled by its owner.
   *
   * @internal
   */
  [startPoll](channel: string, options: PollOptions, ticket: PollTicket<T>): void {
    this.#poll(channel, options, ticket).catch((error: unknown) => ticket.reject(error));
  }

  async #poll(channel: string, options: PollOptions, ticket: PollTicket<T>): Promise<void> {
    assertChannel(channel);
    let cursor = cursorOf(options);
    const limit = limitOf(options);
    const wait = waitOf(options);
    ticket.throwIfCancelled();
    if (this.#closed) throw shuttingDown();

    const state = this.#enter(channel);
    try {
      if (this.#ready) await this.#ready;
      for (;;) {
        const version = state.version;
        // The synchronous read, where the engine has one, suspends nothing.
        const batch = this.#engine.readNow?.(channel, cursor, limit) ?? (await this.#engine.read(channel, cursor, limit));
        ticket.throwIfCancelled();
        if (batch.messages.length > 0) {
          ticket.resolve(answerOf(batch));
          this.#report('deliver', { channel, messages: batch.messages.length, polls: 1 });
          return;
        }
        if (wait === 0) {
          ticket.resolve(timedOut(batch.cursor));
          return;
        }
        if (this.#closed) throw shuttingDown();
        cursor = batch.cursor;
        // A publish that landed during the read bumped the version: read again, or it is lost.
        if (state.version === version) {
          // Registered, not awaited: a held poll keeps no suspended frame alive.
          this.#hold(state, cursor, limit, wait, ticket);
          return;
        }
      }
    } finally {
      state.reading--;
      this.#leave(state);
    }
  }

  /**
   * Checks, synchronously and without I/O, that `cursor` can be one of `channel`'s cursors, so
   * that a caller can refuse a bad one before it reserves anything (the HTTP adapters check it
   * before taking a lease). Whether the messages after it are still retained is for `poll` and
   * `read` to tell (`cursor_expired`).
   *
   * @throws {@link LongPollError} `invalid_channel` or `invalid_cursor`
   */
  checkCursor(channel: string, cursor: Cursor): void {
    assertChannel(channel);
    cursorOf({ cursor });
    this.#engine.checkCursor?.(channel, cursor);
  }

  /** What the broker holds right now. */
  stats(): BrokerStats {
    const engine = this.#engine.stats();
    let channels = engine.channels;
    for (const [channel, state] of this.#channels) {
      if (state.waiters.size > 0 && !this.#engine.retains(channel)) channels++;
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
      for (const waiter of state.waiters) waiter.fail(shuttingDown());
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
      state = { channel, waiters: new Set(), version: 0, reading: 0, draining: false, dirty: false };
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
    // Cleared when the poll is answered or forgotten; ref'd on purpose, so a script that awaits a
    // poll does not exit while the poll is pending.
    if (wait !== Number.POSITIVE_INFINITY) waiter.timer = setTimeout(this.#expire, wait, waiter);
  }

  readonly #expire = (waiter: Waiter<T>): void => {
    if (!waiter.detach()) return;
    waiter.ticket.resolve(timedOut(waiter.cursor));
    this.#report('timeout', waiter.state.channel);
  };

  #appended(channel: string, state = this.#channels.get(channel)): void {
    if (!state) return;
    state.version++;
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
          let answered = 0;
          for (const waiter of group) {
            if (!waiter.detach()) continue; // timed out or cancelled meanwhile
            answered++;
            waiter.ticket.resolve(answer);
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
