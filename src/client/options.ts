import { LongPollError } from '../errors.js';
import type { Cursor } from '../engine.js';
import { DEFAULT_LIMIT, DEFAULT_WAIT, MAX_LIMIT } from '../limits.js';

/**
 * The `fetch` the client calls: the global one, or any function with its shape for the parts
 * the client uses (a proxy-aware fetch, a test double, undici's).
 */
export type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/**
 * Headers in any form `fetch` takes (what the DOM lib calls `HeadersInit`), spelled out so that
 * the declarations also type-check in a Node project whose `lib` has no DOM.
 */
export type HeadersInput = Headers | Record<string, string> | [string, string][];

/** Backoff after network errors and 5xx answers. Durations are milliseconds. */
export interface BackoffOptions {
  /**
   * The ceiling of the first retry's random delay; each consecutive failure doubles it.
   * @default 1_000
   */
  initial?: number;
  /**
   * The ceiling no retry's delay exceeds, also one asked for by `Retry-After`. At most
   * 2³¹ − 1 (the longest timer JavaScript runtimes keep).
   * @default 30_000
   */
  max?: number;
}

/**
 * Options of {@link subscribe}. Durations are milliseconds (the wire's `wait` is seconds).
 *
 * @example
 * ```ts
 * subscribe<Chat>('/channels/room:1', {
 *   cursor: sessionStorage.getItem('cursor') ?? undefined,
 *   headers: () => ({ authorization: `Bearer ${token()}` }),
 *   backoff: { initial: 500, max: 10_000 },
 * });
 * ```
 */
export interface SubscribeOptions {
  /**
   * Follow many channels over one connection (`GET {prefix}?channels=a,b`). The `url` given to
   * {@link subscribe} is then the prefix's (`https://example.test/channels`), not a channel's,
   * and must not list channels itself. The cursor stays opaque (one composite cursor for all
   * the channels), each message names its `channel`, and a later subscription may list other
   * channels with the same cursor: the server reads a channel the cursor does not name from
   * everything retained, and drops one no longer listed. Names must be distinct, non-empty and
   * without `,`; the server checks them against its pattern and its `maxChannels` (32 by
   * default) and answers `400 invalid_channels` otherwise (fatal).
   * @default undefined (the URL is one channel's)
   */
  channels?: readonly string[];
  /**
   * How messages arrive:
   * - `'poll'`: long polling, one request per answer (works through every proxy and cache);
   * - `'sse'`: one long `GET` with `Accept: text/event-stream` (Server-Sent Events), read through
   *   `fetch` as a stream, so `headers` and a custom `fetch` work as for polling, in browsers
   *   and in Node. The same URL, cursor and events; the server's `retry:` is the delay before
   *   reconnecting after the stream ends, and every reconnect resumes with `Last-Event-ID: <cursor>`.
   *   `wait` and `limit` are for polling only; `maxBodyBytes` bounds one event, and
   *   `idleTimeout` bounds a silence.
   * @default 'poll'
   */
  transport?: 'poll' | 'sse';
  /**
   * With `transport: 'sse'`: how long the stream may bring no byte at all (not even the
   * server's `: ping` comment, sent every 15 s by default) before the client takes the
   * connection for dead, aborts it and reconnects from its cursor (an `error` with code
   * `idle_timeout`, not fatal). A few heartbeats long, so one late ping is not a reconnect.
   * Also bounds the wait for the answer's headers. While the iterator's buffer is full the
   * client reads nothing, on purpose, and this clock is stopped. Must be > 0.
   * @default 45_000
   */
  idleTimeout?: number;
  /**
   * Resume just after this cursor (one a previous subscription's `cursor` gave you). Without
   * one, the server first sends everything it retains on the channel (or channels). Polls send
   * it as `?cursor=`, a stream (`transport: 'sse'`) as `Last-Event-ID`.
   * @default undefined
   */
  cursor?: Cursor;
  /**
   * How long the server may hold each poll, sent as `wait` in seconds. The server clamps it to
   * its own maximum (55 s by default). The first poll, and the first after a failure, asks for
   * an answer at once (`wait=0`), so `open` comes promptly even on a quiet channel. `0` turns
   * long polling into short polling: after an empty answer the next poll comes
   * `backoff.initial` later (after messages, at once).
   * @default 25_000
   */
  wait?: number;
  /**
   * The most messages per answer, sent as `limit`: from 1 to 1000 (a larger value is sent as
   * 1000, the most a server gives). While an iterator reads the subscription, no more than fit
   * in its buffer are asked for, and after an answer larger than `maxBodyBytes` fewer still
   * (see there).
   *
   * An answer with more messages than the poll asked for is refused whole: its cursor is
   * opaque, so the client cannot resume from inside it, and taking only part of it would skip
   * the rest. Nothing of it is delivered, the cursor stays where it was, and `error` fires
   * with code `too_many_messages` (not fatal; retried with backoff).
   * @default 100
   */
  limit?: number;
  /**
   * The most bytes the client reads of one answer's body (counted as they arrive, before
   * decoding); with `transport: 'sse'`, of one event (the line being read plus the event's
   * data so far: an endless line or an event that never ends is cut there, `error` with code
   * `event_too_large`, not fatal, and the client reconnects after a backoff step). Past it the client stops reading and cancels the answer, so a server that sends
   * an endless or huge body costs it at most this much memory. A poll answer that does not fit
   * is asked for again at once with half the `limit` (100, 50, 25, …, 1); when even one message
   * does not fit, `error` fires with code `answer_too_large` (not fatal) and the client backs
   * off, then keeps asking for one message at a time. Once an answer has fewer messages than
   * it asked for (the backlog is read), the full `limit` is asked for again.
   * @default 8_388_608 (8 MiB)
   */
  maxBodyBytes?: number;
  /**
   * How much longer than `wait` a request may take to bring the answer's headers before the
   * client gives up on it (a dead connection, a proxy that swallowed the answer), aborts it and
   * retries with backoff. Once the headers are in, the body may take as long as it needs while
   * it keeps coming: the request is abandoned only when no byte arrives for `timeoutMargin`
   * (a large backlog over a slow link is not cut and asked for again forever). Must be > 0.
   * @default 5_000
   */
  timeoutMargin?: number;
  /**
   * The `fetch` to call: inject one for tests, proxies or runtimes without a global fetch.
   * @default globalThis.fetch
   */
  fetch?: Fetch;
  /**
   * Headers sent with every poll (or stream, with `transport: 'sse'`), or a function called
   * before each request (for a token that changes).
   * @default undefined
   */
  headers?: HeadersInput | (() => HeadersInput);
  /**
   * Aborting it closes the subscription, like {@link Subscription.close}.
   * @default undefined
   */
  signal?: AbortSignal;
  /**
   * Exponential backoff with full jitter after network errors, timeouts and 5xx answers: the
   * n-th consecutive failure (n = 1, 2, …) waits a random time between 0 and
   * `min(max, initial × 2ⁿ⁻¹)`. A success resets it. A 429 or 503 with a readable `Retry-After`
   * (whole seconds or an HTTP date) waits what the server asked, but never less than that
   * backoff step and never more than `max`; an unreadable one is ignored.
   *
   * Two kinds of answer that are not errors of the server's own saying count as failures too,
   * so no server makes the client poll in a tight loop:
   * - an answer that carries messages but neither moves the cursor nor brings a message not
   *   already delivered (`error` with code `no_progress`);
   * - an empty answer that came back *early*, in less than half the `wait` asked for (at most
   *   1 s) or in less than 50 ms: the server or a proxy did not hold the poll. No `error` fires,
   *   but the next poll waits a backoff step, and at least `initial`.
   *
   * With `wait: 0` (short polling) an empty answer is expected at once: the next poll comes
   * `initial` later, every time. An empty answer to a held poll that was held re-polls at once.
   * @default { initial: 1_000, max: 30_000 }
   */
  backoff?: BackoffOptions;
  /**
   * How many messages the subscription buffers for its async iterator (see
   * {@link Subscription} for when it buffers). When the buffer is full, polling pauses until the
   * reader catches up: nothing is dropped. No poll asks for more than fit (`limit` is lowered).
   * @default 100
   */
  bufferSize?: number;
}

/** Every option resolved to its value or default. */
export interface ResolvedOptions {
  readonly channels: readonly string[] | undefined;
  readonly transport: 'poll' | 'sse';
  readonly idleTimeout: number;
  readonly cursor: Cursor | undefined;
  readonly wait: number;
  readonly limit: number;
  readonly maxBodyBytes: number;
  readonly timeoutMargin: number;
  readonly fetch: Fetch | undefined;
  readonly headers: HeadersInput | (() => HeadersInput) | undefined;
  readonly signal: AbortSignal | undefined;
  readonly backoff: { readonly initial: number; readonly max: number };
  readonly bufferSize: number;
}

function check(valid: boolean, name: string, rule: string, value: unknown): void {
  if (!valid) throw new LongPollError('invalid_option', `subscribe option ${name} must be ${rule}, got ${String(value)}`);
}

const isDuration = (value: number) => Number.isFinite(value) && value >= 0;
/** The most messages a server gives in one answer (it clamps a larger `limit` to this). */
/** The longest delay `setTimeout` keeps; a longer one fires at once. */
const MAX_TIMER = 2 ** 31 - 1;

/** Applies the defaults; throws `invalid_option` for a value that cannot work. */
export function resolveOptions(options: SubscribeOptions): ResolvedOptions {
  const { cursor, wait = DEFAULT_WAIT, limit = DEFAULT_LIMIT, maxBodyBytes = 8_388_608, timeoutMargin = 5_000, fetch, headers, signal, bufferSize = 100 } = options;
  const { initial = 1_000, max = 30_000 } = options.backoff ?? {};
  const { channels, transport = 'poll', idleTimeout = 45_000 } = options;
  checkChannels(channels);
  check(transport === 'poll' || transport === 'sse', 'transport', "'poll' or 'sse'", transport);
  check(Number.isFinite(idleTimeout) && idleTimeout > 0 && idleTimeout <= MAX_TIMER, 'idleTimeout', `a number of milliseconds > 0 and <= ${MAX_TIMER}`, idleTimeout);
  check(cursor === undefined || typeof cursor === 'string', 'cursor', 'a string', cursor);
  check(isDuration(wait), 'wait', 'a number of milliseconds >= 0', wait);
  check(Number.isSafeInteger(limit) && limit >= 1, 'limit', 'a positive integer', limit);
  check(Number.isSafeInteger(maxBodyBytes) && maxBodyBytes >= 1, 'maxBodyBytes', 'a positive integer', maxBodyBytes);
  check(Number.isFinite(timeoutMargin) && timeoutMargin > 0, 'timeoutMargin', 'a number of milliseconds > 0', timeoutMargin);
  check(fetch === undefined || typeof fetch === 'function', 'fetch', 'a function', fetch);
  check(Number.isFinite(initial) && initial > 0, 'backoff.initial', 'a number of milliseconds > 0', initial);
  check(Number.isFinite(max) && max >= initial && max <= MAX_TIMER, 'backoff.max', `a number of milliseconds >= backoff.initial and <= ${MAX_TIMER}`, max);
  check(Number.isSafeInteger(bufferSize) && bufferSize >= 1, 'bufferSize', 'a positive integer', bufferSize);
  return { channels: channels && [...channels], transport, idleTimeout, cursor, wait, limit: Math.min(limit, MAX_LIMIT), maxBodyBytes, timeoutMargin, fetch, headers, signal, backoff: { initial, max }, bufferSize };
}

/** A list the server can take: anything else would only come back as `400 invalid_channels`. */
function checkChannels(channels: unknown): void {
  if (channels === undefined) return;
  check(Array.isArray(channels) && channels.length > 0, 'channels', 'a non-empty array of channel names', channels);
  const seen = new Set<string>();
  for (const channel of channels as unknown[]) {
    check(typeof channel === 'string' && channel !== '' && !channel.includes(','), 'channels', 'names that are non-empty strings without ","', channel);
    check(!seen.has(channel as string), 'channels', 'distinct names', channel);
    seen.add(channel as string);
  }
}
