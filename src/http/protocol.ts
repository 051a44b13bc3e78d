import { Broker, pollInto, type PollOptions, type PollReceiver } from '../broker.js';
import { LongPollError, type ConnectionLimiter, type Lease, type PollResult } from '../index.js';
import { jsonOf } from '../json.js';
import { channelOf, isJsonType, parsePollParams, segmentOf } from './params.js';

// For the adapters on Node's http server (node, express, koa): they import only this module.
export { bodyChunks, disconnectSignal, socketTimeoutOf } from './connection.js';

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
  /** Caps on held polls. Without one, polls are not limited. */
  limiter?: ConnectionLimiter;
  /**
   * The key the limiter counts a poll under. The default is the socket's remote address (the
   * fetch adapter: `info.remoteAddr.hostname` when the runtime passes it, else no key, so only
   * the per-channel and total caps apply). Use a header such as `X-Client-ID` only if you trust
   * whoever sets it: anyone can forge a header. It gets the adapter's own request, so reading
   * a header differs per adapter: Node and Express `req.headers['x-client-id']`, Koa
   * `ctx.get('x-client-id')`, fetch `request.headers.get('x-client-id')`.
   * @example
   * ```ts
   * // Node or Express, behind a proxy you run that sets X-Forwarded-For:
   * clientKey: (req) => req.headers['x-forwarded-for']?.toString().split(',')[0]?.trim()
   * ```
   */
  clientKey?: (request: Req) => string | undefined;
  /**
   * Decides whether the request may poll or publish on the channel: `true` allows, `false`
   * answers 403; throwing a {@link LongPollError} with code `unauthorized` answers 401.
   * Runs after the channel is validated and before the query or body is read.
   * @example
   * ```ts
   * authorize: (req, { channel, action }) => action === 'poll' || isAdmin(req)
   * ```
   */
  authorize?: (request: Req, access: Access) => boolean | Promise<boolean>;
  /**
   * Whether `POST {prefix}/{channel}` publishes its JSON body. The body is not checked against
   * the broker's payload type: check it in `authorize` or publish from your own route.
   * @default false
   */
  publish?: boolean;
  /**
   * The largest publish body accepted, in bytes; a larger one is a 413.
   * @default 65_536
   */
  maxBodyBytes?: number;
  /**
   * The status of a poll that timed out: 200 with `{ messages: [], cursor, timedOut: true }`,
   * or 204 / 304 with no body for clients that expect those. The cursor is in the
   * `Longpoll-Cursor` header either way.
   * @default 200
   */
  timeoutStatus?: 200 | 204 | 304;
  /**
   * Which channel names are accepted.
   * @default /^[A-Za-z0-9_.:-]{1,200}$/
   */
  channelPattern?: RegExp;
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
}

/** A request as an adapter hands it to the protocol. */
export interface PollRequest<Req> {
  /** The HTTP method, upper case. */
  readonly method: string;
  /** The path and query as received, e.g. `/channels/room:1?cursor=abc`. */
  readonly url: string;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
  /**
   * The body: raw chunks to read (bounded by `maxBodyBytes`), or a value that middleware
   * already parsed (Express' or Koa's `req.body`), which is used as is when the Content-Type is
   * JSON (else 415) and the request has a body (else 400: a parser's `{}` for nothing).
   */
  readonly body: { readonly chunks: AsyncIterable<Uint8Array | string> } | { readonly parsed: unknown };
  /** Fires when the client goes away before the response is written. */
  readonly signal: AbortSignal;
  /** The client key to use when no `clientKey` option is given. */
  readonly clientKey: string | undefined;
  /** The framework's own request, handed to `authorize` and `clientKey`. */
  readonly raw: Req;
  /**
   * The transport's own idle timeout on the connection, in milliseconds (Node's
   * `server.timeout`); `0` or absent for none. When it is shorter than the wait, the protocol
   * answers a little before it, so that a held poll is answered rather than cut, and warns once
   * (`LONGPOLL_SERVER_TIMEOUT`).
   */
  readonly socketTimeout?: number;
}

/** What the adapter writes back. */
export interface PollResponse {
  /** The status code. */
  readonly status: number;
  /** Response headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The serialised body, or `undefined` for none. Poll answers come as UTF-8 bytes, encoded once
   * and shared by every poll one publish wakes; problems as text.
   */
  readonly body: string | Uint8Array<ArrayBuffer> | undefined;
  /**
   * Call once the response is written, or could not be: releases the poll's lease. Idempotent.
   */
  readonly written: () => void;
}

/** Where {@link Protocol.serve} writes the answer to a request. */
export interface ResponseSink {
  /** Writes the answer; called exactly once per request. It must not throw. */
  write(response: PollResponse): void;
}

/** The protocol bound to one broker and one set of options. */
export interface Protocol<Req> {
  /** Whether a URL is under the prefix: requests outside it may go to the next handler. */
  owns(url: string): boolean;
  /** Answers a request. Never rejects. */
  handle(request: PollRequest<Req>): Promise<PollResponse>;
  /**
   * Answers a request through `sink`, without a promise: a held poll then keeps no promise and
   * no closure (`npm run bench`, heap per held poll). The Node and Express adapters use it.
   */
  serve(request: PollRequest<Req>, sink: ResponseSink): void;
  /**
   * The problem answer for an error an adapter caught around `handle` (a last resort: a
   * {@link LongPollError} keeps its status, anything else is a 500 that says nothing more).
   */
  failure(error: unknown): PollResponse;
}

const DEFAULT_CHANNEL = /^[A-Za-z0-9_.:-]{1,200}$/;
const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};
const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
const nothing = (): void => {};
/** How many distinct jitters a wait gets (see `poll`). */
const JITTER_STEPS = 32;
/** Held polls answer this much (at most a quarter of the timeout) before a socket timeout. */
const TIMEOUT_MARGIN = 1000;
/** A result serialised once, for every poll it answers. */
interface Serialised {
  readonly body: Uint8Array<ArrayBuffer>;
  /** The byte length, sent as `content-length` so that Node writes the body as is, not chunked. */
  readonly length: string;
  /** The whole answer, shared by every poll that holds no lease and asked no `Prefer: wait`. */
  shared?: PollResponse;
}

/** One serialisation per result object: polls woken together share it. */
const bodies = new WeakMap<PollResult<unknown>, Serialised>();
const utf8 = new TextEncoder();
/**
 * A body's UTF-8 bytes, made once per result: a fanout then writes the same bytes to every
 * socket instead of encoding its text once per response (`npm run bench`, fanout). Node's
 * `Buffer.from` allocates small buffers from a pool; other runtimes use `TextEncoder`.
 */
const encode: (text: string) => Uint8Array<ArrayBuffer> =
  typeof globalThis.Buffer?.from === 'function' ? (text) => globalThis.Buffer.from(text, 'utf8') : (text) => utf8.encode(text);

function serialisedOf(result: PollResult<unknown>): Serialised {
  let serialised = bodies.get(result);
  if (serialised === undefined) {
    // The engine's text of the messages, where it kept one: the payloads are not serialised again.
    const messages = jsonOf(result);
    const body =
      messages === undefined
        ? JSON.stringify(result)
        : `{"messages":${messages},"cursor":${JSON.stringify(result.cursor)},"timedOut":${result.timedOut}}`;
    const bytes = encode(body);
    serialised = { body: bytes, length: String(bytes.byteLength) };
    bodies.set(result, serialised);
  }
  return serialised;
}

/** A fanout answers thousands of polls with one result: one frozen answer for them all. */
function sharedAnswer(result: PollResult<unknown>): PollResponse {
  const serialised = serialisedOf(result);
  serialised.shared ??= Object.freeze({
    status: 200,
    headers: Object.freeze({
      'cache-control': 'no-store',
      'longpoll-cursor': result.cursor,
      'content-type': JSON_TYPE,
      'content-length': serialised.length,
    }),
    body: serialised.body,
    written: nothing,
  });
  return serialised.shared;
}

/** The problem answer for an error. */
function failure(error: unknown): PollResponse {
  const known = LongPollError.from(error);
  // The rest of an oversized body is not read: close rather than parse it as a next request.
  return problem(known, known.code === 'payload_too_large' ? { connection: 'close' } : {});
}

/**
 * One HTTP poll between the broker and the adapter's sink: the broker's receiver, which turns
 * the result into the answer. Most polls (no lease, no `Prefer: wait`, timeouts as 200) get the
 * answer every poll woken by the same publish shares.
 */
class HttpPoll implements PollReceiver<unknown> {
  constructor(
    readonly sink: ResponseSink,
    readonly lease: Lease | undefined,
    /** `Preference-Applied`, when the request asked `Prefer: wait`. */
    readonly applied: string | undefined,
    readonly timeoutStatus: 200 | 204 | 304,
  ) {}

  resolve(result: PollResult<unknown>): void {
    let response: PollResponse;
    try {
      response = this.answer(result);
    } catch (error) {
      this.lease?.release();
      response = failure(error);
    }
    this.sink.write(response);
  }

  reject(error: unknown): void {
    this.lease?.release();
    this.sink.write(failure(error));
  }

  answer(result: PollResult<unknown>): PollResponse {
    const { lease, applied } = this;
    const timedOut = result.timedOut && this.timeoutStatus !== 200;
    if (!timedOut && !lease && applied === undefined) return sharedAnswer(result);
    const written = lease ? () => lease.release() : nothing;
    const headers: Record<string, string> = { 'cache-control': 'no-store', 'longpoll-cursor': result.cursor };
    if (applied !== undefined) headers['preference-applied'] = applied;
    if (timedOut) return { status: this.timeoutStatus, headers, body: undefined, written };
    const serialised = serialisedOf(result);
    headers['content-type'] = JSON_TYPE;
    headers['content-length'] = serialised.length;
    return { status: 200, headers, body: serialised.body, written };
  }
}

function option(valid: boolean, name: string, value: unknown): void {
  if (!valid) throw new LongPollError('invalid_option', `longPoll option ${name} is invalid: ${String(value)}`);
}

function pathOf(url: string): { pathname: string; search: string } {
  const query = url.indexOf('?');
  return query === -1 ? { pathname: url, search: '' } : { pathname: url.slice(0, query), search: url.slice(query) };
}

function problem(error: LongPollError, headers: Record<string, string> = {}): PollResponse {
  const { status } = error;
  const body: Record<string, unknown> = {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    detail: error.message,
    code: error.code,
  };
  if (error.earliestCursor !== undefined) body.earliestCursor = error.earliestCursor;
  if (error.limit !== undefined) body.limit = error.limit;
  const extra: Record<string, string> = { ...headers };
  if (status === 429 || status === 503) extra['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfter ?? 1)));
  return {
    status,
    headers: { 'cache-control': 'no-store', 'content-type': PROBLEM_TYPE, ...extra },
    body: JSON.stringify(body),
    written: nothing,
  };
}

/** Whether the request carries a body on the wire (HTTP/1.1: a chunked one, or a Content-Length above 0). */
function hasBody(request: PollRequest<unknown>): boolean {
  return request.header('transfer-encoding') !== undefined || Number(request.header('content-length')) > 0;
}

async function readBody(chunks: AsyncIterable<Uint8Array | string>, limit: number): Promise<string> {
  const parts: Uint8Array[] = [];
  let size = 0;
  const encoder = new TextEncoder();
  for await (const chunk of chunks) {
    const bytes = typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
    size += bytes.byteLength;
    if (size > limit) throw new LongPollError('payload_too_large', `The body is larger than ${limit} bytes`);
    parts.push(bytes);
  }
  const whole = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    whole.set(part, offset);
    offset += part.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(whole);
  } catch {
    throw new LongPollError('invalid_body', 'The body is not UTF-8');
  }
}

/**
 * Binds the HTTP protocol of longpoll-kit to a broker. Adapters turn their framework's request
 * into a {@link PollRequest}, call `handle`, and write the {@link PollResponse} back; they hold
 * no state and choose no status codes.
 *
 * Checks run in this order, and a request that fails one never takes a lease: route (404),
 * method (405), channel (400), `authorize` (401/403), query or body (400/413/415), lease (429),
 * then the poll or the publish.
 *
 * @example
 * ```ts
 * const protocol = createProtocol(broker, { prefix: '/channels', limiter });
 * const response = await protocol.handle(request);
 * ```
 */
export function createProtocol<Req, T>(broker: Broker<T>, options: LongPollOptions<Req> = {}): Protocol<Req> {
  const {
    prefix = '',
    limiter,
    clientKey,
    authorize,
    publish = false,
    maxBodyBytes = 65_536,
    timeoutStatus = 200,
    channelPattern = DEFAULT_CHANNEL,
    defaultWait = 25_000,
    maxWait = 55_000,
  } = options;
  option(prefix === '' || (prefix.startsWith('/') && !prefix.endsWith('/')), 'prefix', prefix);
  option(Number.isSafeInteger(maxBodyBytes) && maxBodyBytes >= 0, 'maxBodyBytes', maxBodyBytes);
  option(timeoutStatus === 200 || timeoutStatus === 204 || timeoutStatus === 304, 'timeoutStatus', timeoutStatus);
  option(channelPattern instanceof RegExp, 'channelPattern', channelPattern);
  option(Number.isFinite(maxWait) && maxWait >= 0, 'maxWait', maxWait);
  option(Number.isFinite(defaultWait) && defaultWait >= 0, 'defaultWait', defaultWait);
  const allow = publish ? 'GET, POST' : 'GET';
  let warned = false;
  const real = broker instanceof Broker;

  /** The longest wait a transport with this socket timeout lets a poll hold. */
  function transportLimit(socketTimeout: number | undefined): number {
    if (socketTimeout === undefined || !(socketTimeout > 0)) return Number.POSITIVE_INFINITY;
    const limit = socketTimeout - Math.min(TIMEOUT_MARGIN, socketTimeout / 4);
    if (limit < maxWait && !warned) {
      warned = true;
      // Node only passes a socket timeout; other runtimes may have no process object.
      globalThis.process?.emitWarning?.(
        `server.timeout (${socketTimeout} ms) is shorter than the longest wait (${maxWait} ms): polls now wait at most ` +
          `${limit} ms. Set server.timeout to 0 or above maxWait.`,
        { code: 'LONGPOLL_SERVER_TIMEOUT' },
      );
    }
    return limit;
  }

  /**
   * Parses and leases synchronously, then starts the broker's poll with an {@link HttpPoll} as
   * its receiver: a held poll keeps that one small object, no promise and no closure.
   */
  function poll(request: PollRequest<Req>, channel: string, search: string, sink: ResponseSink): void {
    const limitWait = Math.min(maxWait, transportLimit(request.socketTimeout));
    const params = parsePollParams(new URLSearchParams(search), request.header('prefer'), {
      defaultWait: Math.min(defaultWait, limitWait),
      maxWait: limitWait,
    });
    // The cursor is part of the query: a malformed one, or another channel's, is a 400 before
    // the lease (429), and never holds a lease while the engine refuses it.
    if (params.cursor !== undefined) broker.checkCursor(channel, params.cursor);
    const lease: Lease | undefined = limiter?.acquire({
      client: clientKey ? clientKey(request.raw) : request.clientKey,
      channel,
    });
    try {
      // Up to wait/16 less, so that clients that polled together do not re-poll together. In one
      // of 32 steps: Node keeps one timer list per distinct duration, so polls share 32 lists
      // instead of each making (and on answer, unlinking) its own.
      // Whole milliseconds: a small integer is stored inline, a fraction as a heap number per timer.
      const wait = Math.round(params.wait - Math.floor(Math.random() * JITTER_STEPS) * (params.wait / 16 / JITTER_STEPS));
      const receiver = new HttpPoll(sink, lease, params.preferred ? `wait=${params.wait / 1000}` : undefined, timeoutStatus);
      const pollOptions: PollOptions = { cursor: params.cursor, wait, limit: params.limit, signal: request.signal };
      // An overridden or wrapped `poll` is called; otherwise the answer goes straight to the sink,
      // with no promise in between.
      if (real && broker.poll === Broker.prototype.poll) pollInto(broker, channel, pollOptions, receiver);
      else broker.poll(channel, pollOptions).then((result) => receiver.resolve(result), (error: unknown) => receiver.reject(error));
    } catch (error) {
      lease?.release();
      throw error;
    }
  }

  async function publishBody(request: PollRequest<Req>, channel: string): Promise<PollResponse> {
    // Checked for a parsed body too: body parsers (koa-bodyparser, express.json() in Express 4)
    // put `{}` on the request when they parse nothing, which must not publish `{}`.
    if (!isJsonType(request.header('content-type'))) {
      throw new LongPollError('unsupported_media_type', 'Publish with Content-Type: application/json');
    }
    let data: unknown;
    if ('parsed' in request.body) {
      // An empty body is not JSON, whatever a parser made of it.
      if (!hasBody(request)) throw new LongPollError('invalid_body', 'The body is empty, which is not JSON');
      data = request.body.parsed;
    } else {
      const length = Number(request.header('content-length'));
      if (length > maxBodyBytes) throw new LongPollError('payload_too_large', `The body is larger than ${maxBodyBytes} bytes`);
      const text = await readBody(request.body.chunks, maxBodyBytes);
      try {
        data = JSON.parse(text);
      } catch {
        throw new LongPollError('invalid_body', 'The body is not valid JSON');
      }
    }
    const message = await broker.publish(channel, data as T);
    return {
      status: 201,
      headers: { 'cache-control': 'no-store', 'content-type': JSON_TYPE, 'longpoll-cursor': message.cursor },
      body: JSON.stringify(message),
      written: nothing,
    };
  }

  /** Writes what `pending` settles to, or the problem it fails with. */
  function settle(pending: Promise<PollResponse>, sink: ResponseSink): void {
    pending.then(
      (response) => sink.write(response),
      (error: unknown) => sink.write(failure(error)),
    );
  }

  /** Synchronous up to the poll, so that a poll without `authorize` keeps no suspended frame. */
  function serve(request: PollRequest<Req>, sink: ResponseSink): void {
    try {
      const { pathname, search } = pathOf(request.url);
      const segment = segmentOf(pathname, prefix);
      if (segment === undefined) throw new LongPollError('not_found', 'No such route');
      const action = request.method === 'GET' ? 'poll' : request.method === 'POST' && publish ? 'publish' : undefined;
      if (!action) {
        sink.write(problem(new LongPollError('method_not_allowed', `Use ${allow}`), { allow }));
        return;
      }
      const channel = channelOf(segment, channelPattern);
      if (authorize) authorized(request, channel, action, search, sink);
      else if (action === 'poll') poll(request, channel, search, sink);
      else settle(publishBody(request, channel), sink);
    } catch (error) {
      sink.write(failure(error));
    }
  }

  function authorized(request: PollRequest<Req>, channel: string, action: 'poll' | 'publish', search: string, sink: ResponseSink): void {
    Promise.resolve()
      .then(() => authorize!(request.raw, { channel, action }))
      .then(
        (allowed) => {
          if (!allowed) throw new LongPollError('forbidden', `Not allowed to ${action} on this channel`);
          if (action === 'poll') poll(request, channel, search, sink);
          else settle(publishBody(request, channel), sink);
        },
      )
      .catch((error: unknown) => sink.write(failure(error)));
  }

  return {
    owns(url) {
      return pathOf(url).pathname.startsWith(`${prefix}/`);
    },
    handle(request) {
      return new Promise<PollResponse>((resolve) => serve(request, { write: resolve }));
    },
    serve,
    failure,
  };
}
