/**
 * The lifecycle of a request on Node's http server, which the node, express and koa adapters
 * share: when the connection no longer needs a request (its answer handed to the socket, or the
 * connection gone), when an unread answer has waited too long, and how a refused body is not
 * read. It is written against the shapes it uses rather than against `node:http`, so that
 * `src/http/` imports no framework and no Node module.
 */
import type { Exchange } from './exchange.js';

/** A request body as Node's `IncomingMessage` (a `Readable`) offers it. */
export interface ReadableBody {
  /** Node's `Readable.iterator()`. */
  iterator(options: { destroyOnReturn: boolean }): AsyncIterator<unknown>;
}

/** What the lifecycle uses of Node's `net.Socket`. */
export interface NodeSocket {
  /** Whether the socket is destroyed. */
  readonly destroyed: boolean;
  /** Adds a listener. */
  on(event: 'close' | 'drain', listener: (this: NodeSocket) => void): unknown;
  /** Stops reading. */
  pause(): unknown;
  /** Destroys the socket. */
  destroy(): unknown;
}

/** What the lifecycle uses of Node's `IncomingMessage`. */
export interface NodeRequest {
  /** The connection. */
  readonly socket: NodeSocket;
  /** Whether the whole request, body included, has arrived. */
  readonly complete: boolean;
}

/** What the lifecycle uses of Node's `ServerResponse`. */
export interface NodeResponse {
  /** Whether the whole response was handed to the socket. */
  readonly writableFinished: boolean;
  /** A header set on the response. */
  getHeader(name: string): unknown;
  /** Adds a listener. */
  on(event: 'finish' | 'prefinish', listener: (this: NodeResponse) => void): unknown;
}

/**
 * The request body as the protocol reads it. Stopping early (a 413) must not destroy the
 * request, whose socket still has to carry the answer; the iterator is made only when read.
 */
export function bodyChunks(body: ReadableBody): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => body.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array> };
}

/**
 * The socket's idle timeout, which Node's http server sets from `server.timeout` on every
 * connection (`socket.server` is the server that accepted it): a held poll must answer before
 * it, or the server cuts the poll itself.
 */
export function socketTimeoutOf(socket: object): number | undefined {
  const { server } = socket as { server?: { timeout?: unknown } };
  const timeout = server?.timeout;
  return typeof timeout === 'number' ? timeout : undefined;
}

/** How long a client may keep a connection whose request body we refused to read. */
const LINGER = 2_000;

/**
 * The requests of one connection (pipelined requests share it) that still hold something, and
 * the answers written to it that the client has not taken yet.
 */
class Connection {
  readonly open = new Set<Exchange>();
  /** Answers written but not yet finished. */
  unsent = 0;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  watching = false;

  constructor(
    readonly socket: NodeSocket,
    readonly sendTimeout: number,
  ) {}

  /** An answer was written and waits for the client: start the clock if it is not running. */
  waiting(): void {
    this.unsent++;
    if (!this.watching) {
      this.watching = true;
      this.socket.on('drain', onDrain);
    }
    if (!this.timer) {
      this.timer = setTimeout(cut, this.sendTimeout, this.socket);
      this.timer.unref?.();
    }
  }

  /** An answer that had waited was taken. */
  sent(): void {
    if (--this.unsent === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

const connectionOf = Symbol('longpoll-kit connection');
const stateOf = Symbol('longpoll-kit exchange');
type TrackedSocket = NodeSocket & { [connectionOf]?: Connection };
type TrackedResponse = NodeResponse & { [stateOf]?: { exchange: Exchange; connection: Connection; request: NodeRequest; unsent: boolean } };

function cut(socket: NodeSocket): void {
  socket.destroy();
}

function onDrain(this: NodeSocket): void {
  // Progress: the client is reading, so the clock starts again.
  (this as TrackedSocket)[connectionOf]?.timer?.refresh();
}

function onSocketClose(this: NodeSocket): void {
  const connection = (this as TrackedSocket)[connectionOf];
  if (!connection) return;
  clearTimeout(connection.timer);
  for (const exchange of connection.open) exchange.end();
  connection.open.clear();
}

/** `res.end()` was called: if the socket did not take the whole answer at once, watch it. */
function onPrefinish(this: NodeResponse): void {
  const state = (this as TrackedResponse)[stateOf];
  if (!state || this.writableFinished) return;
  state.unsent = true;
  state.connection.waiting();
}

function onFinish(this: NodeResponse): void {
  const state = (this as TrackedResponse)[stateOf];
  if (!state) return;
  (this as TrackedResponse)[stateOf] = undefined;
  const { exchange, connection, request } = state;
  if (state.unsent) connection.sent();
  connection.open.delete(exchange);
  exchange.end();
  // A refused body left unread: let the client read the answer, but read no more of the body
  // (Node would read and discard it to its end), and close the connection soon in any case.
  if (!request.complete && String(this.getHeader('connection')).toLowerCase() === 'close') {
    const { socket } = request;
    setImmediate(() => socket.pause());
    setTimeout(cut, LINGER, socket).unref?.();
  }
}

/**
 * Ties `exchange` to the real lifetime of its connection: it ends when its answer has been
 * handed to the socket (`finish`) or when the socket closes, whichever comes first, so pipelined
 * requests behind a closed connection are freed at once. An answer the client does not read
 * within `sendTimeout` ms of no progress destroys the socket.
 */
export function track(request: NodeRequest, response: NodeResponse, exchange: Exchange, sendTimeout: number): void {
  const socket = request.socket as TrackedSocket;
  if (socket.destroyed) {
    exchange.end();
    return;
  }
  let connection = socket[connectionOf];
  if (!connection) {
    connection = new Connection(socket, sendTimeout);
    socket[connectionOf] = connection;
    socket.on('close', onSocketClose);
  }
  if (exchange.ended) return;
  connection.open.add(exchange);
  (response as TrackedResponse)[stateOf] = { exchange, connection, request, unsent: false };
  response.on('prefinish', onPrefinish);
  response.on('finish', onFinish);
}
