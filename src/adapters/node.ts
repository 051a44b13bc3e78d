/**
 * Mounts a broker on Node's `http` server.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { Broker, ConnectionLimiter } from 'longpoll-kit';
 * import { longPoll } from 'longpoll-kit/node';
 *
 * const broker = new Broker();
 * createServer(longPoll(broker, { prefix: '/channels', limiter: new ConnectionLimiter() })).listen(3000);
 * ```
 *
 * @module longpoll-kit/node
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker } from '../index.js';
import { bodyChunks, socketTimeoutOf, track, writeAnswer } from '../http/connection.js';
import { createProtocol, type Exchange, type LongPollOptions, type PollRequest, type PollResponse, type ResponseSink } from '../http/protocol.js';

export type { Access, LongPollOptions } from '../http/protocol.js';

/** Options of the Node adapter: {@link LongPollOptions} over Node's `IncomingMessage`. */
export type NodeLongPollOptions<Req extends IncomingMessage = IncomingMessage> = LongPollOptions<Req>;

/**
 * A Node request listener that also works as Connect-style middleware: given `next`, requests
 * outside the prefix go to `next()`; without it they are answered 404.
 */
export type NodeLongPollHandler<Req extends IncomingMessage = IncomingMessage> = (
  req: Req,
  res: ServerResponse,
  next?: (error?: unknown) => void,
) => void;

/**
 * The path and query below the mount point. Express rewrites `req.url` for a mounted middleware,
 * and Express 4 turns `/channels//x` into `/x`; the URL as sent minus the mount path
 * (`req.originalUrl` minus `req.baseUrl`) is what Express 5 and plain Node see.
 */
function urlOf(req: IncomingMessage): string {
  const { originalUrl, baseUrl } = req as IncomingMessage & { originalUrl?: unknown; baseUrl?: unknown };
  if (typeof originalUrl === 'string' && typeof baseUrl === 'string' && baseUrl !== '' && originalUrl.startsWith(baseUrl)) {
    const rest = originalUrl.slice(baseUrl.length);
    return rest.startsWith('/') ? rest : `/${rest}`;
  }
  return req.url ?? '/';
}

/**
 * A held poll keeps this object: methods on the prototype instead of closures per request. It is
 * also where the protocol writes the answer.
 */
class NodePollRequest<Req extends IncomingMessage> implements PollRequest<Req>, ResponseSink {
  readonly method: string;
  readonly url: string;
  readonly socketTimeout: number | undefined;

  constructor(
    readonly raw: Req,
    readonly res: ServerResponse,
    readonly sendTimeout: number,
  ) {
    this.method = raw.method ?? 'GET';
    this.url = urlOf(raw);
    this.socketTimeout = socketTimeoutOf(raw.socket);
  }

  /** The socket's address, read when the protocol asks for it (a limiter, or no `clientKey`). */
  get clientKey(): string | undefined {
    return this.raw.socket.remoteAddress;
  }

  header(name: string): string | undefined {
    const value = this.raw.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  get body(): PollRequest<Req>['body'] {
    const { body } = this.raw as IncomingMessage & { body?: unknown };
    return body === undefined ? { chunks: bodyChunks(this.raw) } : { parsed: body };
  }

  bind(exchange: Exchange): void {
    track(this.raw, this.res, exchange);
  }

  write(response: PollResponse): void {
    writeAnswer(this.res, response, this.sendTimeout);
  }
}

/**
 * Mounts `broker` on Node's `http`: `GET {prefix}/{channel}` polls, and `POST` publishes when
 * `publish` is on. The handler never throws; anything unexpected is a 500 problem, written only
 * if headers were not sent yet.
 *
 * A request's lease and held poll last until its answer has been handed to the socket or the
 * connection closes, pipelined requests included; an answer the client does not read for
 * `sendTimeout` ms destroys the connection.
 *
 * A held poll must not be cut by the server's own socket timeout: when `server.timeout` is set
 * and shorter than `maxWait`, waits are clamped to answer up to a second before it (at most a
 * quarter of it), and a process warning with code `LONGPOLL_SERVER_TIMEOUT` is emitted once.
 *
 * @example
 * ```ts
 * http.createServer(longPoll(broker, { prefix: '/channels', limiter, publish: true }));
 * ```
 */
export function longPoll<T, Req extends IncomingMessage = IncomingMessage>(
  broker: Broker<T>,
  options: NodeLongPollOptions<Req> = {},
): NodeLongPollHandler<Req> {
  const protocol = createProtocol(broker, options);
  const { sendTimeout } = protocol.settings;
  return (req, res, next) => {
    if (next && !protocol.owns(req.url ?? '/')) {
      next();
      return;
    }
    const request = new NodePollRequest(req, res, sendTimeout);
    protocol.serve(request, request);
  };
}
