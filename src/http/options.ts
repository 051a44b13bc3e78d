import type { ConnectionLimiter } from '../index.js';
import { checkOption } from '../option-check.js';
import { DEFAULT_WAIT } from '../limits.js';

/** What `authorize` is asked about. */
export interface Access {
  /** The channel, decoded and validated. */
  readonly channel: string;
  /** A GET is a `poll`; a POST a `publish`. */
  readonly action: 'poll' | 'publish';
}

/**
 * Options of every adapter's `longPoll(broker, options)`. Durations are milliseconds.
 *
 * @typeParam Req - the framework's own request: Node's `IncomingMessage`, Koa's context, or the
 *   fetch `Request`
 */
export interface LongPollOptions<Req> {
  /**
   * The path the channels live under: `GET {prefix}/{channel}`. Express strips its mount path
   * before the middleware sees the URL, so there it is usually left empty.
   * @default ''
   */
  prefix?: string;
  /**
   * Caps on held polls, and (with its `rate` option) on requests per client. Without one,
   * nothing is limited.
   */
  limiter?: ConnectionLimiter;
  /**
   * The key the limiter counts a request under. The default is the socket's remote address (the
   * fetch adapter: `info.remoteAddr.hostname` when the runtime passes it, else no key, so only
   * the per-channel and total caps apply). When this function returns no non-empty string, or
   * throws, the default is used (a throw or a value that is not a string also emits a
   * `LONGPOLL_CLIENT_KEY` warning, once): a missing header never switches the per-client cap or
   * the rate off. It gets the adapter's own request, so reading a
   * header differs per adapter: Node and Express `req.headers['x-real-ip']`, Koa
   * `ctx.get('x-real-ip')`, fetch `request.headers.get('x-real-ip')`.
   *
   * Behind a proxy, take the address the proxy itself saw: a header the proxy sets
   * (`X-Real-IP`), or the last entry of `X-Forwarded-For` (the one your proxy appended). Never
   * the first entry: the client writes it, so it could pose as anyone, or lock a victim's
   * address out.
   * @example
   * ```ts
   * // Node or Express behind one proxy that appends to X-Forwarded-For:
   * clientKey: (req) => req.headers['x-forwarded-for']?.toString().split(',').at(-1)?.trim()
   * ```
   */
  clientKey?: (request: Req) => string | undefined;
  /**
   * Decides whether the request may poll or publish on the channel: `true` allows, `false`
   * answers 403; throwing a `LongPollError` with code `unauthorized` answers 401.
   * Runs after the channel is validated and before the query or body is read. It has
   * `authorizeTimeout` to settle.
   * @example
   * ```ts
   * authorize: (req, { channel, action }) => action === 'poll' || isAdmin(req)
   * ```
   */
  authorize?: (request: Req, access: Access) => boolean | Promise<boolean>;
  /**
   * How long `authorize` may take; past it the request gets `503 unavailable` with
   * `Retry-After`, and whatever `authorize` settles to later is ignored.
   * @default 5_000
   */
  authorizeTimeout?: number;
  /**
   * Whether `POST {prefix}/{channel}` publishes its JSON body. The body is not checked against
   * the broker's payload type: check it in `authorize` or publish from your own route.
   * @default false
   */
  publish?: boolean;
  /**
   * The largest publish body accepted, in bytes; a larger one is a 413, and the connection is
   * closed rather than read to its end.
   * @default 65_536
   */
  maxBodyBytes?: number;
  /**
   * How long a publish body may take to arrive, from the start of reading it; past it the request
   * gets `408 request_timeout` and the connection is closed.
   * @default 10_000
   */
  bodyTimeout?: number;
  /**
   * How long an answer may wait for the client to read it (no write progress on the socket) before
   * the socket is destroyed and everything it held (leases, pipelined polls) released. A client
   * that keeps reading is never cut. The fetch adapter cannot see the socket: there it is how
   * long the runtime may take no piece of an answer's body before the body fails.
   * @default 30_000
   */
  sendTimeout?: number;
  /**
   * The status of a poll that timed out: 200 with `{ messages: [], cursor, timedOut: true }`,
   * or 204 / 304 with no body for clients that expect those. The cursor is in the
   * `Longpoll-Cursor` header either way.
   * @default 200
   */
  timeoutStatus?: 200 | 204 | 304;
  /**
   * Which channel names are accepted. It must not admit `,`, which separates the channels of a
   * many-channel poll.
   * @default /^[A-Za-z0-9_.:-]{1,200}$/
   */
  channelPattern?: RegExp;
  /**
   * The most channels one request may poll (`GET {prefix}?channels=a,b,c`); more is a 400
   * `invalid_channels`.
   * @default 32
   */
  maxChannels?: number;
  /**
   * The wait of a poll that asks for none, in milliseconds.
   * @default 25_000
   */
  defaultWait?: number;
  /**
   * The longest wait granted, in milliseconds; longer ones are clamped. Keep it below your
   * proxies' read timeouts (nginx: 60 s by default). On Node's http server (the node, express
   * and koa adapters) waits are also clamped below `server.timeout` when one is set.
   * @default 55_000
   */
  maxWait?: number;
  /**
   * Where a request without a cursor starts: with everything retained (`'oldest'`), or with the
   * next message published (`'newest'`), so that a client that never sends a cursor (a `curl`
   * or script loop) gets each message once instead of the whole history on every request. A
   * poll then waits for that message; on a many-channel request it applies to every channel the
   * cursor does not name; an event stream without `Last-Event-ID` or cursor starts there too.
   * @default 'oldest'
   */
  firstMessage?: 'oldest' | 'newest';
  /**
   * How often an idle event stream (`Accept: text/event-stream`) sends a comment line
   * (`: ping`), so that proxies do not cut it. Keep it well below your proxies' read timeouts.
   * @default 15_000
   */
  heartbeat?: number;
  /**
   * How long an event stream lasts before it ends by itself, less a random jitter of up to an
   * eighth, so that load balancers can rebalance; clients reconnect with `Last-Event-ID` and
   * lose nothing.
   * @default 300_000
   */
  maxStream?: number;
  /** The reconnection delay an event stream asks `EventSource` for (its `retry:` line). @default 2_000 */
  retry?: number;
}

/** {@link LongPollOptions} with every default applied and every value checked. */
export type Settings<Req> = Required<Omit<LongPollOptions<Req>, 'limiter' | 'clientKey' | 'authorize'>> &
  Pick<LongPollOptions<Req>, 'limiter' | 'clientKey' | 'authorize'>;

const DEFAULT_CHANNEL = /^[A-Za-z0-9_.:-]{1,200}$/;

function check(valid: boolean, name: string, value: unknown, expected = 'valid'): void {
  checkOption(valid, 'longPoll', name, value, expected);
}

/** A positive number of milliseconds that a timer can hold. */
function isTimeout(value: unknown): boolean {
  return typeof value === 'number' && value > 0 && value <= 2_147_483_647;
}

/**
 * The options with their defaults, checked once when an adapter is made.
 *
 * @throws `LongPollError` `invalid_option`
 */
export function settingsOf<Req>(options: LongPollOptions<Req> = {}): Settings<Req> {
  const settings: Settings<Req> = {
    prefix: '',
    publish: false,
    maxBodyBytes: 65_536,
    bodyTimeout: 10_000,
    authorizeTimeout: 5_000,
    sendTimeout: 30_000,
    timeoutStatus: 200,
    channelPattern: DEFAULT_CHANNEL,
    maxChannels: 32,
    defaultWait: DEFAULT_WAIT,
    maxWait: 55_000,
    firstMessage: 'oldest',
    heartbeat: 15_000,
    maxStream: 300_000,
    retry: 2_000,
    ...Object.fromEntries(Object.entries(options ?? {}).filter(([, value]) => value !== undefined)),
  };
  const { prefix, maxBodyBytes, timeoutStatus, channelPattern, maxWait, defaultWait } = settings;
  check(typeof prefix === 'string' && (prefix === '' || (prefix.startsWith('/') && !prefix.endsWith('/'))), 'prefix', prefix);
  check(Number.isSafeInteger(maxBodyBytes) && maxBodyBytes >= 0, 'maxBodyBytes', maxBodyBytes);
  check(timeoutStatus === 200 || timeoutStatus === 204 || timeoutStatus === 304, 'timeoutStatus', timeoutStatus);
  check(channelPattern instanceof RegExp, 'channelPattern', channelPattern);
  // `,` separates the channels of a many-channel poll, so no channel name may contain it.
  check(![',', 'a,b'].some((probe) => ((channelPattern.lastIndex = 0), channelPattern.test(probe))), 'channelPattern', channelPattern, 'a pattern that refuses ","');
  check(Number.isSafeInteger(settings.maxChannels) && settings.maxChannels >= 1, 'maxChannels', settings.maxChannels, 'a positive integer');
  check(Number.isFinite(maxWait) && maxWait >= 0, 'maxWait', maxWait);
  check(Number.isFinite(defaultWait) && defaultWait >= 0, 'defaultWait', defaultWait);
  check(settings.firstMessage === 'oldest' || settings.firstMessage === 'newest', 'firstMessage', settings.firstMessage, "'oldest' or 'newest'");
  check(Number.isSafeInteger(settings.retry) && settings.retry >= 0, 'retry', settings.retry, 'a whole number of milliseconds');
  for (const name of ['bodyTimeout', 'authorizeTimeout', 'sendTimeout', 'heartbeat', 'maxStream'] as const) {
    check(isTimeout(settings[name]), name, settings[name]);
  }
  return settings;
}
