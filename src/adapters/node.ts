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
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Broker } from '../index.js';
import { createProtocol, type LongPollOptions, type PollRequest, type PollResponse } from '../http/protocol.js';

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
 * The socket's idle timeout, which Node's http server sets from `server.timeout` on every
 * connection: a held poll must answer before it, or the server cuts the poll itself.
 */
function socketTimeoutOf(req: IncomingMessage): number | undefined {
  const { server } = req.socket as typeof req.socket & { server?: Server };
  return server?.timeout;
}

/**
 * The request body as the protocol reads it. Stopping early (a 413) must not destroy the
 * request, whose socket still has to carry the answer; the iterator is made only when read.
 */
function chunksOf(req: IncomingMessage): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array> };
}

/**
 * Turns a Node request into the protocol's {@link PollRequest}. Its signal aborts when the
 * client goes away before the response is finished.
 *
 * @internal Shared with the Express adapter, which is Node http underneath.
 */
export function toPollRequest<Req extends IncomingMessage>(req: Req, res: ServerResponse): PollRequest<Req> {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort(new Error('The client went away'));
  });
  const { body } = req as IncomingMessage & { body?: unknown };
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    header: (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(', ') : value;
    },
    body: body === undefined ? { chunks: chunksOf(req) } : { parsed: body },
    signal: controller.signal,
    clientKey: req.socket.remoteAddress,
    raw: req,
    socketTimeout: socketTimeoutOf(req),
  };
}

/**
 * Writes a {@link PollResponse}, unless the client is gone, and releases its lease.
 *
 * @internal Shared with the Express adapter.
 */
export function writeResponse(res: ServerResponse, response: PollResponse): void {
  try {
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(response.status, response.headers);
      res.end(response.body);
    }
  } catch {
    // Headers went out half-way, or the socket broke: nothing sensible can be written now.
    res.destroy();
  } finally {
    response.written();
  }
}

/**
 * Mounts `broker` on Node's `http`: `GET {prefix}/{channel}` polls, and `POST` publishes when
 * `publish` is on. The handler never throws; anything unexpected is a 500 problem, written only
 * if headers were not sent yet.
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
  return (req, res, next) => {
    if (next && !protocol.owns(req.url ?? '/')) {
      next();
      return;
    }
    try {
      void protocol.handle(toPollRequest(req, res)).then(
        (response) => writeResponse(res, response),
        (error: unknown) => writeResponse(res, protocol.failure(error)),
      );
    } catch (error) {
      writeResponse(res, protocol.failure(error));
    }
  };
}
