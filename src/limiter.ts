import { EventEmitter } from 'node:events';
import type * as TypedEmitter from 'typed-emitter';
import { LongPollError, type LimitKind } from './errors.js';
import { emitGuarded } from './guarded-emit.js';

/** Options of {@link ConnectionLimiter}. Every cap is a positive integer or `Infinity`. */
export interface LimiterOptions {
  /**
   * Held requests per client key.
   * @default 6
   */
  perClient?: number;
  /**
   * Held requests per channel.
   * @default 10_000
   */
  perChannel?: number;
  /**
   * Held requests in total.
   * @default 100_000
   */
  total?: number;
  /**
   * The base of the suggested retry delay, in seconds. A refusal suggests a whole number of
   * seconds between `retryAfter` and twice that, so refused clients do not come back together.
   * @default 1
   */
  retryAfter?: number;
  /**
   * Requests per client key over time, counted by {@link ConnectionLimiter.charge}: a token
   * bucket per client key that holds `requests` tokens and refills them evenly over `per`
   * milliseconds. Off when absent.
   * @default undefined
   * @example
   * ```ts
   * // 20 requests at once, then one every 3 s: 20 per minute on average.
   * const limiter = new ConnectionLimiter({ rate: { requests: 20, per: 60_000 } });
   * ```
   */
  rate?: RateOptions;
}

/** The request rate of {@link LimiterOptions.rate}. */
export interface RateOptions {
  /** The bucket's size: requests a client may make at once, and per `per` on average. A positive integer. */
  requests: number;
  /** The time in which an empty bucket refills, in milliseconds. A positive, finite number. */
  per: number;
  /**
   * Client keys tracked at most. A bucket left alone for `per` is full again and is dropped, so
   * only clients seen in the last `per` milliseconds hold one; when more than `maxClients` do
   * (a flood of distinct addresses), the least recently charged bucket is dropped and its client
   * starts again with a full one. A bucket costs about 150 bytes with its key.
   * @default 100_000
   */
  maxClients?: number;
}

/** What a lease is for. */
export interface LeaseRequest {
  /**
   * Who holds it, e.g. the socket's remote address. Without one, only the per-channel and total
   * caps apply.
   */
  client?: string;
  /**
   * The channel being polled, or the channels of a poll over many: such a lease counts once
   * toward the client and total caps and once toward each channel's cap.
   */
  channel: string | readonly string[];
}

/** What {@link ConnectionLimiter.stats} reports. */
export interface LimiterStats {
  /** Leases held. */
  readonly total: number;
  /** Client keys holding at least one lease. */
  readonly clients: number;
  /** Channels with at least one lease. */
  readonly channels: number;
  /** Client keys with a rate bucket that is not full (0 without the `rate` option). */
  readonly buckets: number;
}

/** The payload of the `limit` event: a lease or a request was refused. */
export interface Refusal {
  /** The client key, if any. */
  readonly client?: string;
  /**
   * The channel of the refused lease (for a poll over many channels, the one whose cap was full,
   * or all of them); absent when `limit` is `'rate'` (requests are charged before their channel
   * is known).
   */
  readonly channel?: string | readonly string[];
  /** Which cap refused. */
  readonly limit: LimitKind;
  /** The delay suggested to the client, in seconds. */
  readonly retryAfter: number;
}

/** The events of a {@link ConnectionLimiter}. */
export type LimiterEvents = {
  /** A lease or a request was refused. */
  limit: (refusal: Refusal) => void;
  /**
   * A listener of `limit` threw. The refusal still reached its caller; without a listener of
   * `error`, the listener's error becomes a process warning with code `LONGPOLL_LISTENER_ERROR`.
   */
  error: (error: Error) => void;
};

/**
 * One held request's place under the caps of a {@link ConnectionLimiter}. Release it when the
 * answer is written; releasing twice is harmless, and `using` releases it at the end of a block.
 */
export class Lease implements Disposable {
  /** The client key, if any. */
  readonly client: string | undefined;
  /** The channel, or the channels of a poll over many. */
  readonly channel: string | readonly string[];
  #release: (() => void) | undefined;

  /** @internal Leases come from {@link ConnectionLimiter.acquire}. */
  constructor(request: LeaseRequest, release: () => void) {
    this.client = request.client;
    this.channel = request.channel;
    this.#release = release;
  }

  /** Whether the lease was released. */
  get released(): boolean {
    return this.#release === undefined;
  }

  /** Gives the place back. Idempotent. */
  release(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  /** Same as {@link Lease.release}, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

const LimiterEmitter = EventEmitter as unknown as new () => TypedEmitter.default<LimiterEvents>;

/** One client's tokens, as of `at` (a `Date.now()`). */
interface Bucket {
  tokens: number;
  at: number;
}

/** {@link RateOptions}, checked, with the refill per millisecond. */
interface Rate {
  readonly requests: number;
  readonly per: number;
  readonly maxClients: number;
  readonly perMs: number;
}

function rateOf(rate: RateOptions | undefined): Rate | undefined {
  if (rate === undefined) return undefined;
  const fail = (what: string, value: unknown): never => {
    throw new LongPollError('invalid_option', `ConnectionLimiter option rate${what} must be ${String(value)}`);
  };
  if (typeof rate !== 'object' || rate === null) fail('', `an object { requests, per }, got ${String(rate)}`);
  const { requests, per, maxClients = 100_000 } = rate;
  if (!(Number.isSafeInteger(requests) && requests > 0)) fail('.requests', `a positive integer, got ${String(requests)}`);
  if (!(typeof per === 'number' && Number.isFinite(per) && per > 0)) fail('.per', `a positive, finite number of milliseconds, got ${String(per)}`);
  if (!(Number.isSafeInteger(maxClients) && maxClients > 0)) fail('.maxClients', `a positive integer, got ${String(maxClients)}`);
  return { requests, per, maxClients, perMs: requests / per };
}

function capOf(options: LimiterOptions, name: 'perClient' | 'perChannel' | 'total', fallback: number): number {
  const value = options[name] ?? fallback;
  if (!(Number.isSafeInteger(value) && value > 0) && value !== Number.POSITIVE_INFINITY) {
    throw new LongPollError('invalid_option', `ConnectionLimiter option ${name} must be a positive integer or Infinity, got ${String(value)}`);
  }
  return value;
}

/**
 * Caps on held requests: per client, per channel and in total. Hold a lease for every accepted
 * poll until its answer is written.
 *
 * @example
 * ```ts
 * const limiter = new ConnectionLimiter({ perClient: 6, perChannel: 10_000, total: 100_000 });
 * const lease = limiter.acquire({ client: '203.0.113.7', channel: 'room:1' });
 * try {
 *   await broker.poll('room:1', { cursor });
 * } finally {
 *   lease.release();
 * }
 * ```
 */
export class ConnectionLimiter extends LimiterEmitter {
  /** Held requests allowed per client key. */
  readonly perClient: number;
  /** Held requests allowed per channel. */
  readonly perChannel: number;
  /** Held requests allowed in total. */
  readonly total: number;
  readonly #retryAfter: number;
  readonly #clients = new Map<string, number>();
  readonly #channels = new Map<string, number>();
  #held = 0;
  readonly #rate: Rate | undefined;
  /** Rate buckets, least recently charged first (a charge moves its bucket to the end). */
  readonly #buckets = new Map<string, Bucket>();

  /** @param options - the caps */
  constructor(options: LimiterOptions = {}) {
    super();
    options ??= {};
    this.perClient = capOf(options, 'perClient', 6);
    this.perChannel = capOf(options, 'perChannel', 10_000);
    this.total = capOf(options, 'total', 100_000);
    const { retryAfter = 1 } = options;
    if (!(Number.isSafeInteger(retryAfter) && retryAfter > 0)) {
      throw new LongPollError('invalid_option', `ConnectionLimiter option retryAfter must be a positive integer, got ${String(retryAfter)}`);
    }
    this.#retryAfter = retryAfter;
    this.#rate = rateOf(options.rate);
  }

  /**
   * Counts one request of `client` against the `rate` option: call it for every request, before
   * taking a lease. Does nothing without a client key or without the `rate` option.
   *
   * @throws {@link LongPollError} `limit_exceeded` with `limit: 'rate'` and `retryAfter`: the
   *   whole seconds (at least 1) until the client's bucket holds a token again
   */
  charge(client: string | undefined): void {
    const rate = this.#rate;
    if (rate === undefined || client === undefined) return;
    const now = Date.now();
    const buckets = this.#buckets;
    // Buckets untouched for `per` are full, the same as no bucket: the oldest go first, so
    // this stops at the first one still refilling.
    for (const [key, idle] of buckets) {
      if (now - idle.at < rate.per) break;
      buckets.delete(key);
    }
    let bucket = buckets.get(client);
    if (bucket === undefined) {
      if (buckets.size >= rate.maxClients) buckets.delete(buckets.keys().next().value!);
      bucket = { tokens: rate.requests, at: now };
    } else {
      // Re-inserted below, so the map stays in order of last charge. A clock that steps back
      // refills nothing.
      buckets.delete(client);
      bucket.tokens = Math.min(rate.requests, bucket.tokens + Math.max(0, now - bucket.at) * rate.perMs);
      bucket.at = now;
    }
    buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / rate.perMs / 1000));
    this.#report({ client, limit: 'rate', retryAfter });
    throw new LongPollError('limit_exceeded', 'Too many requests (rate limit)', { limit: 'rate', retryAfter });
  }

  /**
   * Takes a place for one held request.
   *
   * @throws {@link LongPollError} `limit_exceeded` with `limit` (the cap that refused, checked
   *   in the order client, channel, total) and `retryAfter` in seconds; `invalid_channel` for
   *   an empty or non-string channel; `invalid_option` for a client key that is not a string
   */
  acquire(request: LeaseRequest): Lease {
    const { client, channel } = request ?? {};
    const channels = typeof channel === 'string' ? [channel] : Array.isArray(channel) ? (channel as readonly unknown[]) : [];
    if (channels.length === 0 || !channels.every((name) => typeof name === 'string' && name.length > 0)) {
      throw new LongPollError('invalid_channel', 'A lease needs a non-empty string channel, or a non-empty list of them');
    }
    const names = channels as readonly string[];
    if (client !== undefined && typeof client !== 'string') {
      throw new LongPollError('invalid_option', `A lease's client key must be a string or undefined, got ${typeof client}`);
    }
    const full = names.find((name) => (this.#channels.get(name) ?? 0) >= this.perChannel);
    const refused: LimitKind | undefined =
      client !== undefined && (this.#clients.get(client) ?? 0) >= this.perClient
        ? 'client'
        : full !== undefined
          ? 'channel'
          : this.#held >= this.total
            ? 'total'
            : undefined;
    if (refused) {
      const retryAfter = this.#retryAfter + Math.floor(Math.random() * (this.#retryAfter + 1));
      this.#report({ client, channel: refused === 'channel' ? full : channel, limit: refused, retryAfter });
      throw new LongPollError('limit_exceeded', `Too many held requests (${refused} limit)`, {
        limit: refused,
        retryAfter,
      });
    }
    if (client !== undefined) increment(this.#clients, client);
    for (const name of names) increment(this.#channels, name);
    this.#held++;
    return new Lease(request, () => {
      if (client !== undefined) decrement(this.#clients, client);
      for (const name of names) decrement(this.#channels, name);
      this.#held--;
    });
  }

  /** Leases held right now, and rate buckets kept. */
  stats(): LimiterStats {
    return { total: this.#held, clients: this.#clients.size, channels: this.#channels.size, buckets: this.#buckets.size };
  }

  /** Emits `limit`; a listener that throws is reported, never allowed to change the refusal. */
  #report(refusal: Refusal): void {
    emitGuarded(this, 'limiter', 'limit', refusal);
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function decrement(counts: Map<string, number>, key: string): void {
  const count = counts.get(key)! - 1;
  if (count === 0) counts.delete(key);
  else counts.set(key, count);
}
