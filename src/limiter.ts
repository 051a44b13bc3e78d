import { EventEmitter } from 'node:events';
import type * as TypedEmitter from 'typed-emitter';
import { LongPollError, type LimitKind } from './errors.js';

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
}

/** What a lease is for. */
export interface LeaseRequest {
  /**
   * Who holds it, e.g. the socket's remote address. Without one, only the per-channel and total
   * caps apply.
   */
  client?: string;
  /** The channel being polled. */
  channel: string;
}

/** What {@link ConnectionLimiter.stats} reports. */
export interface LimiterStats {
  /** Leases held. */
  readonly total: number;
  /** Client keys holding at least one lease. */
  readonly clients: number;
  /** Channels with at least one lease. */
  readonly channels: number;
}

/** The payload of the `limit` event: a lease was refused. */
export interface Refusal extends LeaseRequest {
  /** Which cap refused. */
  readonly limit: LimitKind;
  /** The delay suggested to the client, in seconds. */
  readonly retryAfter: number;
}

/** The events of a {@link ConnectionLimiter}. */
export type LimiterEvents = {
  /** A lease was refused. */
  limit: (refusal: Refusal) => void;
};

/**
 * One held request's place under the caps of a {@link ConnectionLimiter}. Release it when the
 * answer is written; releasing twice is harmless, and `using` releases it at the end of a block.
 */
export class Lease implements Disposable {
  /** The client key, if any. */
  readonly client: string | undefined;
  /** The channel. */
  readonly channel: string;
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
    if (typeof channel !== 'string' || channel.length === 0) {
      throw new LongPollError('invalid_channel', 'A lease needs a non-empty string channel');
    }
    if (client !== undefined && typeof client !== 'string') {
      throw new LongPollError('invalid_option', `A lease's client key must be a string or undefined, got ${typeof client}`);
    }
    const refused: LimitKind | undefined =
      client !== undefined && (this.#clients.get(client) ?? 0) >= this.perClient
        ? 'client'
        : (this.#channels.get(channel) ?? 0) >= this.perChannel
          ? 'channel'
          : this.#held >= this.total
            ? 'total'
            : undefined;
    if (refused) {
      const retryAfter = this.#retryAfter + Math.floor(Math.random() * (this.#retryAfter + 1));
      this.emit('limit', { client, channel, limit: refused, retryAfter });
      throw new LongPollError('limit_exceeded', `Too many held requests (${refused} limit)`, {
        limit: refused,
        retryAfter,
      });
    }
    if (client !== undefined) increment(this.#clients, client);
    increment(this.#channels, channel);
    this.#held++;
    return new Lease(request, () => {
      if (client !== undefined) decrement(this.#clients, client);
      decrement(this.#channels, channel);
      this.#held--;
    });
  }

  /** Leases held right now. */
  stats(): LimiterStats {
    return { total: this.#held, clients: this.#clients.size, channels: this.#channels.size };
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
