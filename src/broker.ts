import { EventEmitter } from 'node:events';
import pTimeout from 'p-timeout';
import type * as TypedEmitter from 'typed-emitter';
import type { Batch, Cursor, Engine, EvictReason, JsonValue, Message, PublishedMessage } from './engine.js';
import { LongPollError } from './errors.js';
import { frozenCopy, parseFrozen, rememberJson } from './json.js';
import { MemoryEngine } from './memory-engine.js';

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

/** Options of {@link Broker.read}. */
export interface ReadOptions {
  /** Read after this cursor; without one, read everything retained. */
  cursor?: Cursor;
  /**
   * The most messages to return; values above 1000 are clamped to 1000.
   * @default 100
   */
  limit?: number;
}

/** Options of {@link Broker.poll}. */
export interface PollOptions extends ReadOptions {
  /**
   * How long to hold the poll when nothing is new, in milliseconds. `0` answers at once;
   * `Infinity` waits until a message, an abort or `close()`. The core has no maximum; the HTTP
   * adapters clamp.
   * @default 25_000
   */
  wait?: number;
  /** Aborting it rejects the poll with `signal.reason` and forgets the waiter at once. */
  signal?: AbortSignal;
}

/**
 * What {@link Broker.poll} and {@link Broker.read} resolve to. Polls woken by one publish with
 * equal cursors receive the very same frozen object, so it can be serialised once for all.
 */
export interface PollResult<T = JsonValue> {
  /** Messages after the cursor, oldest first, at most `limit`. */
  readonly messages: readonly Message<T>[];
  /** Pass it to the next poll: it continues just after the last message returned. */
  readonly cursor: Cursor;
  /** `true` when the wait ran out with nothing new; always `false` from `read`. */
  readonly timedOut: boolean;
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

/** The payload of the `deliver` event: one batch answered to one or more polls. */
export interface Delivery {
  /** The channel. */
  readonly channel: string;
  /** Messages in the batch. */
  readonly messages: number;
  /** Polls answered with it. */
  readonly polls: number;
}

/** The payload of the `evict` event. */
export interface Eviction {
  /** The channel. */
  readonly channel: string;
  /** Messages that left its history. */
  readonly count: number;
  /** Pushed out by `capacity`, or older than `maxAge`. */
  readonly reason: EvictReason;
}

/**
 * The events of a {@link Broker}, for metrics and logs. `error` is emitted only when someone
 * listens: an engine failure while waking held polls also rejects those polls, so an unheard
 * `error` loses nothing and never crashes the process.
 *
 * A listener that throws cannot break the broker: the poll or publish concerned completes as if
 * nobody listened, and the listener's error is emitted as `error` (or, when nobody listens for
 * `error`, as a process warning with code `LONGPOLL_LISTENER_ERROR`).
 */
export type BrokerEvents<T = JsonValue> = {
  /** A message was published through this broker. */
  publish: (message: PublishedMessage<T>) => void;
  /** A batch of messages answered `polls` polls. */
  deliver: (delivery: Delivery) => void;
  /** A held poll ran out of time with nothing new. */
  timeout: (channel: string) => void;
  /** Messages left a channel's history. */
  evict: (eviction: Eviction) => void;
  /** `close()` was called. */
  close: () => void;
  /**
   * The engine failed while held polls were being woken (those polls are rejected with it), a
   * listener of another event threw, or the engine reported an outage of its own (once per
   * outage: RedisEngine's connection that brings other instances' wake-ups dropped).
   */
  error: (error: Error) => void;
};

/** The channels of one broker and the number of polls it holds, shared with its waiters. */
interface Registry<T> {
  readonly channels: Map<string, ChannelState<T>>;
  held: number;
}

function isIdle<T>(state: ChannelState<T>): boolean {
  return state.waiters.size === 0 && state.reading === 0 && !state.draining;
}

/**
 * Who gets a poll's answer: the promise of {@link Broker.poll}, or (through {@link pollInto}) an
 * HTTP adapter's response, which then keeps no promise and no closure while it is held. Exactly
 * one of the two is called, once; neither may throw.
 *
 * @internal
 */
export interface PollReceiver<T> {
  /** The poll's result. */
  resolve(result: PollResult<T>): void;
  /** Why the poll failed. */
  reject(error: unknown): void;
}

/** A held poll. It is its own abort listener, so holding one costs no closures. */
class Waiter<T> implements EventListenerObject {
  timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly cursor: Cursor,
    readonly limit: number,
    readonly state: ChannelState<T>,
    readonly signal: AbortSignal | undefined,
    readonly registry: Registry<T>,
    readonly receiver: PollReceiver<T>,
  ) {}

  /** Forgets the waiter and its timer and listener; false if it was already answered. */
  detach(): boolean {
    if (!this.take()) return false;
    this.release();
    return true;
  }

  /**
   * Takes the waiter off its channel, so that nothing else answers it; false if something already
   * did. Its timer and abort listener stay until {@link release}: when they fire meanwhile, they
   * find it taken and do nothing.
   */
  take(): boolean {
    const { state, registry } = this;
    if (!state.waiters.delete(this)) return false;
    registry.held--;
    if (isIdle(state)) registry.channels.delete(state.channel);
    return true;
  }

  /** Clears the timer and removes the abort listener of a taken waiter. */
  release(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this);
  }

  fail(error: unknown): void {
    if (this.detach()) this.receiver.reject(error);
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.fail(this.signal!.reason);
  }
}

interface ChannelState<T> {
  readonly channel: string;
  readonly waiters: Set<Waiter<T>>;
  /** Bumped by every notification: a poll that read before a bump reads again. */
  version: number;
  /** Polls between their first read and their registration as waiters. */
  reading: number;
  draining: boolean;
  dirty: boolean;
}

const DEFAULT_WAIT = 25_000;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
/** Longer waits overflow `setTimeout`, so they are held without a timer. */
const MAX_TIMER = 2_147_483_647;


/**
 * Starts a poll whose answer goes to `receiver` instead of a promise: what `broker.poll` does,
 * minus the promise, for the HTTP adapters.
 *
 * @internal
 */
// Assigned once, by the static block of Broker, which can reach its private #start.
export let pollInto: <T>(broker: Broker<T>, channel: string, options: PollOptions, receiver: PollReceiver<T>) => void;

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

/**
 * The payload every subscriber receives, deeply frozen, and its JSON text, which always is the
 * serialisation of that frozen value. Plain data is copied by a walk and the copy serialised;
 * anything else (a Date, a `toJSON`…) is serialised and parsed back.
 */
function payloadOf(data: unknown): { json: string; value: JsonValue } {
  let value: JsonValue | undefined;
  try {
    value = frozenCopy(data);
  } catch (error) {
    // A getter that throws, a revoked Proxy: JSON.stringify would have thrown too.
    throw new LongPollError('invalid_payload', `The payload is not JSON-serialisable: ${(error as Error).message}`, { cause: error });
  }
  // On the slow path the text is made again from the parsed value, so that its keys come in the
  // value's order (a Proxy may list them otherwise).
  if (value === undefined) value = parseFrozen(serialise(data));
  return { json: JSON.stringify(value), value };
}

/** Runs `task` after the current I/O: `setImmediate` where the runtime has it. */
const later: <A>(task: (arg: A) => void, arg: A) => void =
  typeof globalThis.setImmediate === 'function'
    ? (task, arg) => void globalThis.setImmediate(task, arg)
    : (task, arg) => void setTimeout(task, 0, arg);

function serialise(data: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (error) {
    throw new LongPollError('invalid_payload', `The payload is not JSON-serialisable: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (json === undefined) {
    throw new LongPollError('invalid_payload', `The payload is not JSON-serialisable: ${typeof data}`);
  }
  return json;
}

function shuttingDown(): LongPollError {
  return new LongPollError('shutting_down', 'The broker is shutting down', { retryAfter: 1 });
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
  /** One result object per engine batch, so equal reads share one object. */
  readonly #results = new WeakMap<Batch, PollResult<T>>();
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
    // A synchronous engine answers the held polls inside `append`: their `deliver` events wait
    // until this publish has reported `publish`, so listeners see them in that order.
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
    return this.#result(await this.#engine.read(channel, cursor, limit));
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
    // One promise, settled by the first read or later by the waiter: a held poll keeps no
    // async function's promise adopting another one (fewer objects and microtasks per poll).
    return new Promise<PollResult<T>>((resolve, reject) => {
      this.#start(channel, options, { resolve, reject });
    });
  }

  static {
    pollInto = (broker, channel, options, receiver) => broker.#start(channel, options, receiver);
  }

  #start(channel: string, options: PollOptions | undefined, receiver: PollReceiver<T>): void {
    this.#poll(channel, options ?? {}, receiver).catch((error: unknown) => receiver.reject(error));
  }

  async #poll(channel: string, options: PollOptions, receiver: PollReceiver<T>): Promise<void> {
    assertChannel(channel);
    let cursor = cursorOf(options);
    const limit = limitOf(options);
    const wait = waitOf(options);
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.#closed) throw shuttingDown();

    const state = this.#enter(channel);
    try {
      if (this.#ready) await this.#ready;
      for (;;) {
        const version = state.version;
        // The synchronous read, where the engine has one, suspends nothing.
        const batch = this.#engine.readNow?.(channel, cursor, limit) ?? (await this.#engine.read(channel, cursor, limit));
        signal?.throwIfAborted();
        if (batch.messages.length > 0) {
          receiver.resolve(this.#result(batch));
          this.#report('deliver', { channel, messages: batch.messages.length, polls: 1 });
          return;
        }
        if (wait === 0) {
          receiver.resolve(Object.freeze({ messages: [], cursor: batch.cursor, timedOut: true }));
          return;
        }
        if (this.#closed) throw shuttingDown();
        cursor = batch.cursor;
        // A publish that landed during the read bumped the version: read again, or it is lost.
        if (state.version === version) {
          // Registered, not awaited: a held poll keeps no suspended frame alive.
          this.#hold(state, cursor, limit, wait, signal, receiver);
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
      for (const waiter of state.waiters) {
        waiter.fail(shuttingDown());
      }
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

  #hold(
    state: ChannelState<T>,
    cursor: Cursor,
    limit: number,
    wait: number,
    signal: AbortSignal | undefined,
    receiver: PollReceiver<T>,
  ): void {
    const waiter = new Waiter(cursor, limit, state, signal, this.#registry, receiver);
    state.waiters.add(waiter);
    this.#registry.held++;
    signal?.addEventListener('abort', waiter);
    // Cleared right after the answer is written (see #drain), so it never outlives the poll by
    // more than a turn of the event loop; ref'd on purpose, so a script
    // that awaits a poll does not exit while the poll is pending.
    if (wait !== Number.POSITIVE_INFINITY) waiter.timer = setTimeout(this.#expire, wait, waiter);
  }

  readonly #expire = (waiter: Waiter<T>): void => {
    if (!waiter.detach()) return;
    waiter.receiver.resolve(Object.freeze({ messages: [], cursor: waiter.cursor, timedOut: true }));
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
   * result object shared by every waiter it answers. Runs until no notification is pending.
   *
   * With an engine that reads synchronously (`readNow`), it all happens inside the publish that
   * notified, so the answers are on their way before `publish` resolves: nothing else runs between
   * a publish and its answers (`npm run bench`, latency). Polls that a burst of publishes finds
   * re-polling get the rest of the burst as one batch.
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
            // A synchronous read saves the promise hops between a publish and its answer.
            batch = this.#engine.readNow?.(channel, cursor, limit) ?? (await this.#engine.read(channel, cursor, limit));
          } catch (error) {
            this.#fail(group, error);
            continue;
          }
          if (batch.messages.length === 0) continue;
          const result = this.#result(batch);
          const answered: Waiter<T>[] = [];
          for (const waiter of group) {
            if (!waiter.take()) continue; // timed out or aborted meanwhile
            answered.push(waiter);
            waiter.receiver.resolve(result);
          }
          if (answered.length === 0) continue;
          // Timers and listeners are cleared once the answers are written, not before: clearing
          // is most of what a waiter costs to answer (`npm run bench`, latency and fanout).
          later(releaseAll, answered);
          const delivery = { channel, messages: batch.messages.length, polls: answered.length };
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
    try {
      this.emit(event, ...args);
    } catch (error) {
      if (this.listenerCount('error') > 0) {
        this.emit('error', error instanceof Error ? error : LongPollError.from(error));
      } else {
        process.emitWarning(`A listener of the broker's ${event} event threw: ${String(error)}`, {
          code: 'LONGPOLL_LISTENER_ERROR',
        });
      }
    }
  }

  #fail(group: readonly Waiter<T>[], error: unknown): void {
    const failure = LongPollError.from(error);
    for (const waiter of group) waiter.fail(failure);
    // An evicted cursor is the normal way back to the history, not a failure.
    if (failure.code !== 'cursor_expired' && this.listenerCount('error') > 0) this.emit('error', failure);
  }

  #result(batch: Batch): PollResult<T> {
    let result = this.#results.get(batch);
    if (!result) {
      result = Object.freeze({ messages: batch.messages as readonly Message<T>[], cursor: batch.cursor, timedOut: false });
      this.#results.set(batch, result);
      // The engine's text of the messages: the HTTP answer is made from it, not serialised again.
      if (batch.json !== undefined) rememberJson(result, batch.json);
    }
    return result;
  }
}

function releaseAll<T>(waiters: readonly Waiter<T>[]): void {
  for (const waiter of waiters) waiter.release();
}

/** Waiters with the same cursor and limit, which one read answers. */
function groupWaiters<T>(waiters: Set<Waiter<T>>): Iterable<Waiter<T>[]> {
  // Usually all of them wait at the head of the channel: one group, and no map to make.
  let first: Waiter<T> | undefined;
  let same = true;
  for (const waiter of waiters) {
    first ??= waiter;
    if (waiter.cursor !== first.cursor || waiter.limit !== first.limit) {
      same = false;
      break;
    }
  }
  if (same) return [[...waiters]];
  const groups = new Map<string, Waiter<T>[]>();
  for (const waiter of waiters) {
    const key = waiter.limit === DEFAULT_LIMIT ? waiter.cursor : `${waiter.cursor} ${waiter.limit}`;
    const group = groups.get(key);
    if (group) group.push(waiter);
    else groups.set(key, [waiter]);
  }
  return groups.values();
}
