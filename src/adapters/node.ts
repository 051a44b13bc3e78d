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

/** Held requests answer this much before the server's own socket timeout would cut them. */
const TIMEOUT_MARGIN = 1000;

/**
 * Turns a Node request into the protocol's {@link PollRequest}. Its signal aborts when the
 * client goes away before the response is finished.
 *
 * @internal Shared with the Express adapter, which is Node http underneath.
 */
export function toPollRequest<Req extends IncomingMessage>(req: Req, res: ServerResponse, maxWait: number | undefined): PollRequest<Req> {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort(new Error('The client went away'));
  });
  const { body } = req as IncomingMessage & { body?: unknown };
  const request: PollRequest<Req> = {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    header: (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(', ') : value;
    },
    body: body === undefined ? { chunks: req } : { parsed: body },
    signal: controller.signal,
    clientKey: req.socket.remoteAddress,
    raw: req,
  };
  return maxWait === undefined ? request : { ...request, maxWait };
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
 * and shorter than `maxWait`, waits are clamped to a second below it, and a warning
 * (`LONGPOLL_SERVER_TIMEOUT`) is emitted once.
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
  const maxWait = options.maxWait ?? 55_000;
  let warned = false;

  function transportLimit(req: IncomingMessage): number | undefined {
    const { server } = req.socket as typeof req.socket & { server?: Server };
    const timeout = server?.timeout ?? 0;
    if (timeout <= 0 || timeout - TIMEOUT_MARGIN >= maxWait) return undefined;
    const limit = Math.max(0, timeout - TIMEOUT_MARGIN);
    if (!warned) {
      warned = true;
      process.emitWarning(
        `server.timeout (${timeout} ms) is shorter than the longest wait (${maxWait} ms): polls now wait at most ${limit} ms. ` +
          'Set server.timeout to 0 or above maxWait.',
        { code: 'LONGPOLL_SERVER_TIMEOUT' },
      );
    }
    return limit;
  }

  return (req, res, next) => {
    if (next && !protocol.owns(req.url ?? '/')) {
      next();
      return;
    }
    const request = toPollRequest(req, res, transportLimit(req));
    void protocol.handle(request).then((response) => writeResponse(res, response));
  };
}
