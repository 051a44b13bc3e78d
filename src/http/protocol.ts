import { LongPollError, type Broker } from '../index.js';
import { selectMany, startPoll, type PollOptions, type Selection } from '../poll.js';
import { problemResponse, publishedResponse, streamResponse, type PollResponse } from './answer.js';
import { readBody } from './body.js';
import { Exchange, type PollRequest, type ResponseSink } from './exchange.js';
import { settingsOf, type LongPollOptions, type Settings } from './options.js';
import { channelOf, channelsOf, checkCursorText, isJsonType, MAX_CURSOR, parsePollParams, parseQuery, segmentOf, type Query } from './params.js';
import { EventStream, wantsStream } from './sse.js';

export { problemResponse, type PollResponse } from './answer.js';
export type { RequestBody } from './body.js';
export { Exchange, type PollRequest, type ResponseSink } from './exchange.js';
export type { EventStream, StreamSink } from './sse.js';
export type { Access, LongPollOptions, Settings } from './options.js';

/** The protocol bound to one broker and one set of options. */
export interface Protocol<Req> {
  /** The options with their defaults. */
  readonly settings: Settings<Req>;
  /** Whether a URL is under the prefix: requests outside it may go to the next handler. */
  owns(url: string): boolean;
  /**
   * Answers a request through `sink`. The adapter must call `end()` on the returned exchange once
   * the answer has been handed to the socket or the connection is gone: that releases what the
   * request holds.
   */
  serve(request: PollRequest<Req>, sink: ResponseSink): Exchange;
}

/** What a request polls or publishes on: one channel, or the channels of a many-channel poll. */
type Target = string | readonly string[];

/** How many distinct jitters a wait gets (see {@link jitter}). */
const JITTER_STEPS = 32;

/**
 * `wait` less up to a sixteenth, so that clients that polled together do not re-poll together,
 * in one of 32 steps, so that held polls share a few per-duration lists: the broker's expiry
 * lists (src/expiry.ts), each with one timer (bench/micro/jitter-steps.js measures the same
 * with Node's per-duration timer lists).
 *
 * @internal Exported for its micro-benchmark.
 */
export function jitter(wait: number, random: number = Math.random()): number {
  return wait - Math.floor(random * JITTER_STEPS) * (wait / 16 / JITTER_STEPS);
}
/** Held polls answer this much (at most a quarter of the timeout) before a socket timeout. */
const TIMEOUT_MARGIN = 1000;

function pathOf(url: string): { pathname: string; search: string } {
  const query = url.indexOf('?');
  return query === -1 ? { pathname: url, search: '' } : { pathname: url.slice(0, query), search: url.slice(query) };
}

/** Whether the request carries a body on the wire (a chunked one, or a Content-Length above 0). */
function hasBody(request: PollRequest<unknown>): boolean {
  return request.header('transfer-encoding') !== undefined || Number(request.header('content-length')) > 0;
}

/**
 * Binds the HTTP protocol of longpoll-kit to a broker. Adapters turn their framework's request
 * into a {@link PollRequest}, call `serve`, write the {@link PollResponse} the sink receives, and
 * end the exchange; they hold no state and choose no status codes.
 *
 * Checks run in this order, and a request that fails one never takes a lease: route (404), rate
 * (429, when the limiter has a `rate`), method (405), channel (400), `authorize` (401/403, or 503
 * past `authorizeTimeout`), query or body (400/408/413/415), lease (429), then the poll or the
 * publish.
 *
 * @example
 * ```ts
 * const protocol = createProtocol(broker, { prefix: '/channels', limiter });
 * const exchange = protocol.serve(request, { write: (response) => send(response) });
 * socket.once('close', () => exchange.end());
 * ```
 */
export function createProtocol<Req, T>(broker: Broker<T>, options: LongPollOptions<Req> = {}): Protocol<Req> {
  const settings = settingsOf(options);
  const { prefix, limiter, clientKey, authorize, authorizeTimeout, publish, maxBodyBytes, bodyTimeout, timeoutStatus } = settings;
  const allow = publish ? 'GET, POST' : 'GET';
  let warned = false;

  /** The longest wait a transport with this socket timeout lets a poll hold. */
  function transportLimit(socketTimeout: number | undefined): number {
    if (socketTimeout === undefined || !(socketTimeout > 0)) return Number.POSITIVE_INFINITY;
    const limit = socketTimeout - Math.min(TIMEOUT_MARGIN, socketTimeout / 4);
    if (limit < settings.maxWait && !warned) {
      warned = true;
      // Node only passes a socket timeout; other runtimes may have no process object.
      globalThis.process?.emitWarning?.(
        `server.timeout (${socketTimeout} ms) is shorter than the longest wait (${settings.maxWait} ms): polls now wait at most ` +
          `${limit} ms. Set server.timeout to 0 or above maxWait.`,
        { code: 'LONGPOLL_SERVER_TIMEOUT' },
      );
    }
    return limit;
  }

  let keyWarned = false;

  /** The limiter's key: `clientKey`'s, or the transport's when it gives none (see the option). */
  function keyOf(request: PollRequest<Req>): string | undefined {
    if (!clientKey) return request.clientKey;
    let key: unknown;
    let wrong: string | undefined;
    try {
      key = clientKey(request.raw);
      if (key !== undefined && (typeof key !== 'string' || key === '')) wrong = `returned ${typeof key === 'string' ? 'an empty string' : typeof key}`;
    } catch (error) {
      wrong = `threw (${String(error)})`;
    }
    if (wrong !== undefined && !keyWarned) {
      keyWarned = true;
      globalThis.process?.emitWarning?.(`clientKey ${wrong}; the socket's address is used instead`, { code: 'LONGPOLL_CLIENT_KEY' });
    }
    return typeof key === 'string' && key !== '' ? key : request.clientKey;
  }

  /**
   * Parses and leases synchronously, then hands the poll to the broker with the exchange as its
   * ticket. `channel` is a list for `GET {prefix}?channels=…`.
   */
  function poll(request: PollRequest<Req>, exchange: Exchange, key: string | undefined, channel: Target, query: Query): void {
    const transport = transportLimit(request.socketTimeout);
    const limitWait = Math.min(settings.maxWait, transport);
    // A composite cursor holds one cursor per channel.
    const maxCursor = typeof channel === 'string' ? MAX_CURSOR : MAX_CURSOR * channel.length;
    const params = parsePollParams(query, request.header('prefer'), {
      defaultWait: Math.min(settings.defaultWait, limitWait),
      maxWait: limitWait,
      maxCursor,
    });
    const streaming = wantsStream(request.header('accept'));
    // A stream resumes from `Last-Event-ID` (an `EventSource` reconnecting), else `?cursor=`.
    const lastEventId = streaming ? request.header('last-event-id') : undefined;
    if (lastEventId !== undefined && lastEventId.length > maxCursor) throw new LongPollError('invalid_cursor', 'The Last-Event-ID is not a cursor this server issued');
    const cursor = lastEventId || params.cursor;
    // A malformed cursor, or another channel's, is a 400 before the lease (429). The channels of
    // a many-channel poll are checked with their cursor, decoded once for the poll.
    if (cursor !== undefined) checkCursorText(cursor);
    let target: string | Selection;
    if (typeof channel === 'string') {
      if (cursor !== undefined) broker.checkCursor(channel, cursor);
      target = channel;
    } else {
      target = broker[selectMany](channel, cursor);
    }
    if (exchange.ended) return; // the client left while `authorize` ran: take nothing
    exchange.lease = limiter?.acquire({ client: key, channel });
    if (streaming) {
      // The heartbeat is what keeps the transport's own timeout from cutting the stream.
      const stream = new EventStream(broker as Broker<unknown>, channel, cursor, params.limit, settings, Math.min(settings.heartbeat, transport));
      exchange.stream = stream;
      // The first read comes before the answer: a failure is a problem, as for a poll.
      stream.open((refusal) => {
        exchange.write(refusal ? problemResponse(refusal) : streamResponse(stream));
        // A request was pipelined behind this one while `authorize` ran: it must not wait.
        if (!refusal && exchange.expired) stream.finish();
      });
      return;
    }
    if (params.preferred) exchange.applied = `wait=${params.wait / 1000}`;
    const pollOptions: PollOptions = { cursor, wait: jitter(params.wait), limit: params.limit, firstMessage: settings.firstMessage };
    broker[startPoll](target, pollOptions, exchange);
  }

  async function publishBody(request: PollRequest<Req>, channel: Target): Promise<PollResponse> {
    // The many-channel route answers GET only: see `serve`.
    if (typeof channel !== 'string') throw new LongPollError('method_not_allowed', 'Use GET');
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
      const text = await readBody(request.body.chunks, maxBodyBytes, bodyTimeout);
      try {
        data = JSON.parse(text);
      } catch {
        throw new LongPollError('invalid_body', 'The body is not valid JSON');
      }
    }
    return publishedResponse(await broker.publish(channel, data as T));
  }

  /**
   * Decides after `authorize` (if any): the poll, or the publish. A refusal closes the connection
   * when the request's body was left unread.
   */
  function proceed(request: PollRequest<Req>, exchange: Exchange, key: string | undefined, channel: Target, action: 'poll' | 'publish', query: Query): void {
    if (action === 'poll') {
      poll(request, exchange, key, channel, query);
      return;
    }
    publishBody(request, channel).then(
      (response) => exchange.write(response),
      (error: unknown) => exchange.write(problemResponse(error)),
    );
  }

  /**
   * `authorize`, asked for every channel at once and bounded by `authorizeTimeout`; whatever it
   * settles to after that is ignored. Any refusal refuses the request, naming the channel.
   */
  function authorized(request: PollRequest<Req>, exchange: Exchange, key: string | undefined, channel: Target, action: 'poll' | 'publish', query: Query): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(reject, authorizeTimeout, new LongPollError('unavailable', `authorize did not answer within ${authorizeTimeout} ms`, { retryAfter: 1 }));
    });
    const asked = Promise.all(
      (typeof channel === 'string' ? [channel] : channel).map(async (name) => {
        if ((await authorize!(request.raw, { channel: name, action })) !== true) {
          throw new LongPollError('forbidden', `Not allowed to ${action} on the channel ${name}`);
        }
      }),
    );
    asked.catch(() => {}); // a late failure, after the deadline, is no news
    Promise.race([asked, deadline])
      .finally(() => clearTimeout(timer))
      .then(() => proceed(request, exchange, key, channel, action, query))
      .catch((error: unknown) => exchange.write(refusal(request, error)));
  }

  /** The problem answer to a request refused before its body was read. */
  function refusal(request: PollRequest<Req>, error: unknown, extra: Record<string, string> = {}): PollResponse {
    // Reading a body nobody wants costs as much as the client cares to send: close instead.
    if (hasBody(request) && !('parsed' in request.body)) extra.connection = 'close';
    return problemResponse(error, extra);
  }

  /** Synchronous up to the poll, so that a poll without `authorize` keeps no suspended frame. */
  function serve(request: PollRequest<Req>, sink: ResponseSink): Exchange {
    const exchange = new Exchange(sink, timeoutStatus);
    // Its connection is closing (an answer with `Connection: close` went before it): nothing more
    // is done for requests pipelined behind that answer.
    if (exchange.ended) return exchange;
    try {
      const { pathname, search } = pathOf(request.url);
      const segment = segmentOf(pathname, prefix);
      // `{prefix}?channels=a,b,c` (or `{prefix}/?channels=…`): a poll over many channels.
      const many = segment === undefined && (pathname === prefix || pathname === `${prefix}/`);
      // Parsed once, for the route and the poll's parameters.
      const query = parseQuery(search);
      if (segment === undefined && !(many && query.has('channels'))) throw new LongPollError('not_found', 'No such route');
      // The key only matters to a limiter.
      const key = limiter ? keyOf(request) : undefined;
      limiter?.charge(key);
      const methods = many ? 'GET' : allow;
      const action = request.method === 'GET' ? 'poll' : request.method === 'POST' && !many && publish ? 'publish' : undefined;
      if (!action) {
        exchange.write(refusal(request, new LongPollError('method_not_allowed', `Use ${methods}`), { allow: methods }));
        return exchange;
      }
      const channel: Target = many ? channelsOf(query, settings.channelPattern, settings.maxChannels) : channelOf(segment!, settings.channelPattern);
      if (authorize) authorized(request, exchange, key, channel, action, query);
      else proceed(request, exchange, key, channel, action, query);
    } catch (error) {
      exchange.write(refusal(request, error));
    }
    return exchange;
  }

  return {
    settings,
    owns(url) {
      const { pathname } = pathOf(url);
      return pathname === prefix || pathname.startsWith(`${prefix}/`);
    },
    serve,
  };
}
