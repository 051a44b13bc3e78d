import type { Redis } from 'ioredis';
import pTimeout from 'p-timeout';
import { monotonicFactory, ulid } from 'ulid';
import type { Batch, Cursor, Engine, EngineListener, EngineStats, Message, PublishedMessage } from '../engine.js';
import { tagOf } from '../channel-tag.js';
import { LongPollError } from '../errors.js';
import { checkOption } from '../option-check.js';
import { parseFrozen } from '../json.js';
import { appendScript, checkScript, readScript, tailScript, type Script } from './scripts.js';

/** Options of {@link RedisEngine}. */
export interface RedisEngineOptions {
  /**
   * Your ioredis client (a single Redis server or Sentinel; Redis Cluster is not supported yet
   * and is refused with `invalid_option`). The engine runs its commands on it and never closes
   * it; it opens one more connection of its own, `redis.duplicate()`, to listen for other
   * instances' messages. That connection has its own `retryStrategy` (capped backoff, it never
   * gives up until `close()`), so wake-ups from other instances come back after any outage.
   *
   * So that a publish fails at once while Redis is down, instead of waiting in ioredis' offline
   * queue and perhaps succeeding later, create it with `enableOfflineQueue: false` and
   * `maxRetriesPerRequest: 0`.
   * @example
   * ```ts
   * new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
   * ```
   */
  redis: Redis;
  /**
   * Prepended to every key and to the notification channel. Instances that serve the same
   * channels must use the same prefix; unrelated applications on one Redis, different ones.
   * @default 'lp:'
   */
  prefix?: string;
  /**
   * Messages kept per channel; the oldest go first.
   * @default 1000
   */
  capacity?: number;
  /**
   * How long a message is kept, in milliseconds, by Redis' clock. A channel's keys expire
   * with its newest message (its small epoch hash a day later), so idle channels cost nothing.
   * `Infinity` keeps messages until `capacity` pushes them out, and keys forever.
   * @default 300_000
   */
  maxAge?: number;
  /**
   * How long one Redis command may take, in milliseconds, before the publish or poll fails with
   * `unavailable` (HTTP 503). Also how long, after the listening connection is back, the engine
   * waits for your client to be ready before it reads the channels with held polls again. A command that timed out may still run later if your client queues
   * it, which is one more reason for `enableOfflineQueue: false`.
   * @default 3_000
   */
  timeout?: number;
}

/**
 * `epoch.tag.position`: a channel's epoch and a stream entry id, or, for a channel that had no
 * history, the engine-wide epoch and `{Redis time in ms}-0` when it was read.
 */
const CURSOR = /^([0-9A-HJKMNP-TV-Z]{10})\.([0-9a-z]{1,7})\.(\d{1,15}-\d{1,15})$/;
/**
 * A channel's epoch hash outlives its newest message by this much, so cursors keep working. So
 * a channel's keys cannot have been created and expired within this time, and a cursor read
 * while the channel had no history is good for this long (each poll renews it).
 */
const META_GRACE = 86_400_000;

/** Two random epochs for a script: the engine's if it needs a new one, and a channel's. */
const newEpochs = (): string => ulid().slice(10, 20) + ulid().slice(10, 20);


/** A cursor's epoch and stream entry id, once its syntax and channel are checked. */
function parseCursor(channel: string, cursor: Cursor): { epoch: string; position: string } {
  const parts = CURSOR.exec(cursor);
  if (!parts) throw new LongPollError('invalid_cursor', 'The cursor is not one this server issued');
  if (parts[2] !== tagOf(channel)) throw new LongPollError('invalid_cursor', 'The cursor belongs to another channel');
  return { epoch: parts[1]!, position: parts[3]! };
}

function assertOption(valid: boolean, name: string, value: unknown, expected: string): void {
  checkOption(valid, 'RedisEngine', name, value, expected);
}

/** Errors Redis answered that pass by themselves: retrying later may succeed (503, not 500). */
const TRANSIENT = new Set(['OOM', 'LOADING', 'BUSY', 'READONLY', 'MASTERDOWN', 'TRYAGAIN', 'CLUSTERDOWN']);
/** The listening connection retries forever, 50 ms after the first failure, at most 2 s apart. */
const subscriberRetry = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt - 1, 6), 2_000);

type StreamEntry = [id: string, fields: string[]];
type AppendReply = [epoch: string, id: string, trimmed: number, expired: number, seq: number];
type TailReply = [epoch: string, position: string, expired: number, seq: number];
type ReadReply =
  | [status: 'expired', epoch: string, position: string, expired: number, seq: number]
  | [status: 'ok', epoch: string, position: string, expired: number, seq: number, entries: StreamEntry[], from?: string];

/**
 * History in Redis Streams, shared by every instance on the same Redis and prefix: any instance
 * can answer any client from its cursor, so a load balancer needs no sticky sessions.
 *
 * Each channel is one stream, `{prefix}{channel}:history`, plus a small hash with its epoch,
 * `{prefix}{channel}:meta`; one more hash per prefix, `{prefix}epoch`, holds the engine-wide
 * epoch and counts appends. One Lua script appends, trims by `capacity` and `maxAge` and
 * publishes a notification on `{prefix}appended`, atomically; each instance listens there on
 * one connection of its own (`redis.duplicate()`) and, after every reconnect, reads every
 * channel with held polls again, so a notification lost in an outage costs latency, never a
 * message.
 *
 * A cursor names the channel's epoch and a stream entry id. Reading a channel that has no
 * history writes nothing for it: its cursor names the engine-wide epoch and the time it was
 * read, and is good for the channel's first messages published since. When Redis lost a
 * channel's history (a flush, a restart without persistence) or trimmed past the cursor, reads
 * fail with `cursor_expired` and `earliestCursor`, never with a silent gap. After a restart
 * from an older snapshot or a failover to a replica that lagged, the engine notices only part
 * of what was lost (the README's section on Redis says exactly what); for the guarantee across
 * a Redis crash, run Redis with `appendonly yes` and `appendfsync always` and no asynchronous
 * failover, and with `maxmemory-policy noeviction`.
 *
 * Needs Redis >= 6.2 (a single server or Sentinel); Redis Cluster is not supported yet.
 *
 * While Redis is unreachable, `append` and `read` fail with `unavailable` (HTTP 503 with
 * `Retry-After`) within `timeout`; nothing is reported as published that Redis did not store.
 *
 * Keys expire: a stream with its newest message, the channel's epoch hash a day later.
 *
 * `stats()` and `retains()` describe nothing: the history lives in Redis, shared by all
 * instances (ask Redis, e.g. `XLEN`).
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { Broker } from 'longpoll-kit';
 * import { RedisEngine } from 'longpoll-kit/redis';
 *
 * const redis = new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
 * const broker = new Broker({ engine: new RedisEngine({ redis, capacity: 1000, maxAge: 300_000 }) });
 * ```
 */
export class RedisEngine implements Engine {
  /** Messages kept per channel. */
  readonly capacity: number;
  /** How long a message is kept, in milliseconds. */
  readonly maxAge: number;
  /** The prefix of every key and of the notification channel. */
  readonly prefix: string;

  readonly #redis: Redis;
  readonly #timeout: number;
  readonly #notifications: string;
  /** The engine-wide hash: the epoch of cursors of channels without history, and the append count. */
  readonly #global: string;
  /** The highest append count Redis has reported to this instance. */
  #seen = 0;
  /** Tells this instance's notifications from the others'. */
  readonly #instance = ulid();
  readonly #nextId = monotonicFactory();
  #listener: EngineListener | undefined;
  #subscriber: Redis | undefined;
  /** Whether the subscriber listens now (subscribed since its last connect). */
  #subscribed = false;
  /** Whether the subscriber's current outage was reported already. */
  #outage = false;
  #resyncTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @example
   * ```ts
   * const engine = new RedisEngine({ redis, prefix: 'chat:', capacity: 100, maxAge: 60_000 });
   * ```
   */
  constructor(options: RedisEngineOptions) {
    const { redis, prefix = 'lp:', capacity = 1000, maxAge = 300_000, timeout = 3_000 } = options ?? {};
    assertOption(typeof redis?.duplicate === 'function', 'redis', redis, 'an ioredis client');
    // Cluster.duplicate() takes other arguments and multi-key scripts need one slot per call.
    assertOption(redis.isCluster !== true, 'redis', 'a Cluster', 'a Redis client (Redis Cluster is not supported yet)');
    assertOption(typeof prefix === 'string', 'prefix', prefix, 'a string');
    assertOption(Number.isSafeInteger(capacity) && capacity > 0, 'capacity', capacity, 'a positive integer');
    assertOption(typeof maxAge === 'number' && maxAge > 0, 'maxAge', maxAge, 'a positive number of milliseconds');
    assertOption(typeof timeout === 'number' && timeout > 0, 'timeout', timeout, 'a positive number of milliseconds');
    this.#redis = redis;
    this.prefix = prefix;
    this.capacity = capacity;
    this.maxAge = maxAge;
    this.#timeout = timeout;
    this.#notifications = `${prefix}appended`;
    this.#global = `${prefix}epoch`;
  }

  /** Starts listening for other instances' appends; polls work at once, wake-ups once it listens. */
  attach(listener: EngineListener): void {
    if (this.#listener) throw new LongPollError('invalid_option', 'This engine already serves a broker');
    this.#listener = listener;
    // Resubscribing is ours to do, so that the channels with waiters are read again only once
    // the subscription is back: a message in between would otherwise wake nobody. Its own
    // retryStrategy: if it inherited one that gives up, wake-ups would stop without a word.
    const subscriber = this.#redis.duplicate({
      autoResubscribe: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      retryStrategy: subscriberRetry,
    });
    this.#subscriber = subscriber;
    // Outages reach callers through their own commands; the broker hears of each one once.
    subscriber.on('error', (error: Error) => {
      if (this.#outage) return;
      this.#outage = true;
      listener.error?.(new LongPollError('unavailable', `Lost the connection that listens for other instances' messages: ${error.message}`, { cause: error }));
    });
    subscriber.on('close', () => {
      this.#subscribed = false;
    });
    subscriber.on('ready', () => void this.#listen(subscriber));
    subscriber.on('message', (_channel: string, payload: string) => {
      const colon = payload.indexOf(':');
      if (payload.slice(0, colon) !== this.#instance) listener.appended(payload.slice(colon + 1));
    });
    this.#redis.on('ready', this.#clientReady);
    if (subscriber.status === 'wait') subscriber.connect().catch(() => {});
  }

  /**
   * Subscribes again after every (re)connect, then has the broker read every channel with held
   * polls. Those reads run on your client, which may still be reconnecting (with
   * `enableOfflineQueue: false` its commands fail at once): then the re-read waits for its
   * 'ready' (see #clientReady), at most `timeout`, rather than answering held polls with 503.
   */
  async #listen(subscriber: Redis): Promise<void> {
    try {
      await subscriber.subscribe(this.#notifications);
    } catch {
      return; // the connection dropped again; its next 'ready' retries
    }
    if (subscriber !== this.#subscriber || subscriber.status !== 'ready') return;
    this.#outage = false;
    this.#subscribed = true;
    clearTimeout(this.#resyncTimer);
    if (this.#redis.status === 'ready') {
      this.#check();
      this.#listener?.resync();
      return;
    }
    this.#resyncTimer = setTimeout(() => {
      if (this.#subscribed) this.#listener?.resync(); // your client is still down: the reads fail with 503
    }, this.#timeout);
    this.#resyncTimer.unref?.();
  }

  /** Your client is back: read again what its outage may have failed or the subscriber missed. */
  readonly #clientReady = (): void => {
    this.#check();
    if (!this.#subscribed) return; // #listen resyncs once the subscription is back
    clearTimeout(this.#resyncTimer);
    this.#listener?.resync();
  };

  /** Appends `json` to `channel`'s stream, trims it and notifies every instance, in one script. */
  async append(channel: string, json: string): Promise<PublishedMessage> {
    const id = this.#nextId();
    const keep = Number.isFinite(this.maxAge) ? Math.ceil(this.maxAge) + META_GRACE : -1;
    let reply: AppendReply;
    try {
      reply = (await this.#run(appendScript, channel, [keep, this.capacity, id, json, this.#notifications, `${this.#instance}:${channel}`])) as AppendReply;
    } catch (error) {
      // A script that timed out may still be stored, and this instance ignores its own
      // notifications: a spurious wake-up costs one read, a missed one a whole wait.
      this.#listener?.appended(channel);
      throw error;
    }
    const [epoch, entry, trimmed, expired, seq] = reply;
    this.#saw(seq);
    if (expired > 0) this.#listener?.evicted(channel, expired, 'maxAge');
    if (trimmed > 0) this.#listener?.evicted(channel, trimmed, 'capacity');
    this.#listener?.appended(channel);
    const message = this.#message(channel, entry, id, json);
    return { ...message, cursor: this.#cursor(epoch, channel, entry) };
  }

  /**
   * Throws `invalid_cursor` when `cursor` cannot be one of `channel`'s cursors (its syntax, or
   * another channel's), without asking Redis; whether it is still retained is `read`'s question.
   */
  checkCursor(channel: string, cursor: Cursor): void {
    parseCursor(channel, cursor);
  }

  /**
   * Reads up to `limit` messages after `cursor`, or everything retained when it is undefined
   * (then with `Batch.before`, the channel's floor the script read after). Reading a channel
   * that has no history writes nothing for it in Redis.
   */
  async read(channel: string, cursor: Cursor | undefined, limit: number): Promise<Batch> {
    const { epoch, position } = cursor === undefined ? { epoch: '', position: '' } : parseCursor(channel, cursor);
    const reply = (await this.#run(readScript, channel, [epoch, position, limit, META_GRACE])) as ReadReply;
    this.#saw(reply[4]);
    if (reply[3] > 0) this.#listener?.evicted(channel, reply[3], 'maxAge');
    if (reply[0] === 'expired') {
      throw new LongPollError('cursor_expired', 'Messages after the cursor are gone; resume from earliestCursor', {
        earliestCursor: this.#cursor(reply[1], channel, reply[2]),
      });
    }
    const [, current, last, , , entries, from] = reply;
    // Frozen: every poll woken by this read shares the arrays.
    const messages = Object.freeze(entries.map(([entry, fields]) => this.#message(channel, entry, fields[1]!, fields[3]!)));
    const prefix = `${current}.${tagOf(channel)}.`;
    const cursors = Object.freeze(entries.map(([entry]) => prefix + entry));
    const next = entries.length > 0 ? entries[entries.length - 1]![0] : last;
    // Read from everything retained, the script read after the channel's floor (Batch.before).
    const before = cursor === undefined && entries.length > 0 && typeof from === 'string' ? prefix + from : undefined;
    return { messages, cursor: prefix + next, cursors, before };
  }

  /**
   * The cursor just after `channel`'s newest message, in one script, without reading the
   * messages. Like `read`, it writes nothing in Redis for a channel that has no history.
   */
  async tail(channel: string): Promise<Cursor> {
    const [epoch, position, expired, seq] = (await this.#run(tailScript, channel, [])) as TailReply;
    this.#saw(seq);
    if (expired > 0) this.#listener?.evicted(channel, expired, 'maxAge');
    return this.#cursor(epoch, channel, position);
  }

  /** Always `false`: the history lives in Redis, shared by every instance. */
  retains(_channel: string): boolean {
    return false;
  }

  /** Always zero: the history lives in Redis, shared by every instance. */
  stats(): EngineStats {
    return { channels: 0, messages: 0 };
  }

  /** Closes the connection the engine opened; your client stays open. */
  async close(): Promise<void> {
    clearTimeout(this.#resyncTimer);
    this.#redis.off('ready', this.#clientReady);
    this.#subscribed = false;
    this.#subscriber?.disconnect();
    this.#subscriber = undefined;
  }

  /** Remembers the highest append count Redis reported, which Redis must never report lower. */
  #saw(seq: number): void {
    if (seq > this.#seen) this.#seen = seq;
  }

  /**
   * After a reconnect, tells Redis the highest append count this instance has seen, so that a
   * data set that went back (an older snapshot, a replica that lagged) starts a new epoch even
   * when this instance holds no poll that would read.
   */
  #check(): void {
    if (this.#seen === 0 || this.#redis.status !== 'ready') return;
    this.#withTimeout(checkScript.run(this.#redis, [this.#global], [newEpochs(), this.#seen])).then(
      (reply) => this.#saw((reply as [string, number])[1]),
      () => {}, // the next read or append carries the same check
    );
  }

  /** Runs a channel script with the prologue's arguments, bounded by `timeout`. */
  async #run(script: Script, channel: string, args: readonly (string | number)[]): Promise<unknown> {
    const base = `${this.prefix}{${channel}}:`;
    const maxAge = Number.isFinite(this.maxAge) ? Math.ceil(this.maxAge) : 0;
    try {
      return await this.#withTimeout(script.run(this.#redis, [this.#global, `${base}history`, `${base}meta`], [newEpochs(), this.#seen, maxAge, ...args]));
    } catch (error) {
      // Redis' own answer to a command is a bug or a misconfiguration (500), unless it names a
      // condition that passes; timeouts and connection errors are outages (503).
      if (error instanceof Error && error.name === 'ReplyError' && !TRANSIENT.has(error.message.split(' ', 1)[0]!)) {
        throw new LongPollError('internal', 'The message store refused the command', { cause: error });
      }
      throw new LongPollError('unavailable', 'The message store is unavailable; try again shortly', { cause: error, retryAfter: 1 });
    }
  }

  #withTimeout<T>(promise: Promise<T>): Promise<T> {
    return pTimeout(promise, { milliseconds: this.#timeout, message: `Redis did not answer within ${this.#timeout} ms` });
  }

  #message(channel: string, entry: string, id: string, json: string): Message {
    return Object.freeze({
      id,
      channel,
      data: parseFrozen(json),
      publishedAt: new Date(Number(entry.slice(0, entry.indexOf('-')))).toISOString(),
    });
  }

  #cursor(epoch: string, channel: string, entry: string): Cursor {
    return `${epoch}.${tagOf(channel)}.${entry}`;
  }
}
