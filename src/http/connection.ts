/**
 * The lifecycle of a request on Node's http server, which the node, express, koa and fastify
 * adapters share: when the connection no longer needs a request (its answer handed to the
 * socket, or the connection gone), when an unread answer has waited too long, how a refused body
 * is not read, and how an event stream writes. It is written against the shapes it uses rather
 * than against `node:http`, so that `src/http/` imports no framework and no Node module (the one
 * function of Node's it compares against, {@link writeFramed} looks up when first called).
 */
import { bytes } from '../poll.js';
import type { PollResponse } from './answer.js';
import type { Exchange } from './exchange.js';
import type { EventStream, StreamSink } from './sse.js';

/** A request body as Node's `IncomingMessage` (a `Readable`) offers it. */
export interface ReadableBody {
  /** Node's `Readable.iterator()`. */
  iterator(options: { destroyOnReturn: boolean }): AsyncIterator<unknown>;
}

/** What the lifecycle uses of Node's `net.Socket`. */
export interface NodeSocket {
  /** Whether the socket is destroyed. */
  readonly destroyed: boolean;
  /** Whether it takes writes: not once ended (Node ends it when the client half-closes it). */
  readonly writable: boolean;
  /** How many `cork()` calls are not undone yet. */
  readonly writableCorked: number;
  /** Adds a listener. */
  on(event: 'close' | 'drain', listener: (this: NodeSocket) => void): unknown;
  /** Adds a listener called once. */
  once(event: 'drain', listener: () => void): unknown;
  /** Hands bytes to the connection; `false` when its buffer is full (wait for `drain`). */
  write(chunk: Uint8Array): boolean;
  /** Holds writes back until {@link uncork}, to hand them to the kernel together. */
  cork(): void;
  /** Hands on what {@link cork} held back. */
  uncork(): void;
  /** Stops reading. */
  pause(): unknown;
  /** Ends our side of the connection. */
  end(): unknown;
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
  /** The request it answers. */
  readonly req: NodeRequest;
  /** Whether the headers went out. */
  readonly headersSent: boolean;
  /** Whether the response was destroyed. */
  readonly destroyed: boolean;
  /** Whether `end()` was called. */
  readonly writableEnded: boolean;
  /** The connection, once the response is its current one (`null` while it waits its turn). */
  readonly socket: NodeSocket | null;
  /** Whether the body goes out in HTTP/1.1 chunks (Node's `OutgoingMessage`; absent elsewhere). */
  readonly chunkedEncoding?: boolean;
  /** Whether the whole response was handed to the socket. */
  readonly writableFinished: boolean;
  /** Bytes of the response not yet handed to the socket's kernel buffer. */
  readonly writableLength: number;
  /** Writes the status line and headers. */
  writeHead(status: number, headers: Readonly<Record<string, string>>): unknown;
  /** Writes the body, if any, and ends the response. */
  end(body?: string | Uint8Array): unknown;
  /** Writes part of the body; `false` when the buffer is full (wait for `drain`). */
  write(chunk: Uint8Array): boolean;
  /** Destroys the response and its socket. */
  destroy(): unknown;
  /** A header set on the response. */
  getHeader(name: string): unknown;
  /** Adds a listener. */
  on(event: 'finish', listener: (this: NodeResponse) => void): unknown;
  /** Adds a listener called once. */
  once(event: 'drain', listener: () => void): unknown;
}

/** The last chunk {@link writeFramed} framed, and its frame. */
let lastChunk: Uint8Array | undefined;
let lastFrame: Uint8Array<ArrayBuffer> | undefined;

/** `chunk` as one HTTP/1.1 chunk: its size in hex, CRLF, the bytes, CRLF. */
function frameOf(chunk: Uint8Array): Uint8Array<ArrayBuffer> {
  if (chunk === lastChunk) return lastFrame!;
  const size = chunk.byteLength.toString(16);
  const frame = bytes(size.length + chunk.byteLength + 4);
  for (let i = 0; i < size.length; i++) frame[i] = size.charCodeAt(i);
  frame[size.length] = 13;
  frame[size.length + 1] = 10;
  frame.set(chunk, size.length + 2);
  frame[frame.length - 2] = 13;
  frame[frame.length - 1] = 10;
  lastChunk = chunk;
  lastFrame = frame;
  return frame;
}

/**
 * Node's own `write` of a response (`OutgoingMessage.prototype.write`), looked up on the first
 * framed write: the bytes of a response whose `write` is another, wrapped by middleware
 * (compression does) or overridden by a `ServerResponse` subclass given to `createServer`, must
 * go through it.
 */
let nodeWrite: unknown;

/** Hands what a turn wrote to a corked socket to the kernel, in one `writev`. */
const uncork = (socket: NodeSocket): void => socket.uncork();

/**
 * Writes `chunk` to an open chunked response as one HTTP/1.1 chunk, straight to its socket.
 * Node's `response.write` hands the socket four pieces per chunk (its size, CRLF, the bytes,
 * CRLF), each through the socket's stream machinery, and every stream a publish wakes on one
 * channel writes the same chunk, which is framed here once for all of them: 1.2x less CPU per
 * chunk written, 1.8-2.2x for ten chunks in one turn (bench/micro/sse-framed.js). Like Node,
 * it corks the socket until the next tick, so what one turn writes goes out in one `writev`.
 *
 * Returns `undefined`, having written nothing, when the response is not Node's own chunked
 * response on a socket it owns: no socket yet (a pipelined response waiting its turn, whose
 * bytes Node buffers), not chunked (HTTP/1.0, HTTP/2), ended, or with a `write` other than
 * Node's (compression middleware wraps it, a subclass may override it: the bytes must go through
 * it). The caller writes with `response.write` then. Returns `false`, having written nothing,
 * when the socket takes no more writes (Node ended it after the client half-closed it): the
 * caller waits as for a full buffer.
 *
 * Keeps the last frame until another chunk comes: at most one answer's events, whatever the
 * number of streams.
 */
export function writeFramed(response: NodeResponse, chunk: Uint8Array): boolean | undefined {
  const { socket } = response;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- compared, never called
  nodeWrite ??= process.getBuiltinModule('node:http').OutgoingMessage.prototype.write;
  if (!socket || response.chunkedEncoding !== true || response.writableEnded || response.write !== nodeWrite) return undefined;
  // Ended by Node after the client half-closed it, what waits still going out: a write now would
  // be an error. As full: the stream waits, and its send clock cuts the connection unless the
  // client reads the rest (the connection then closes, and the stream with it).
  if (!socket.writable) return false;
  if (chunk.byteLength === 0) return true; // an empty chunk would end the body
  if (socket.writableCorked === 0) {
    socket.cork();
    process.nextTick(uncork, socket);
  }
  return socket.write(frameOf(chunk));
}

/**
 * An event stream's writes on Node's response: the first through `response.write`, which sends
 * the status line and headers with it, the others with {@link writeFramed} when it can.
 * Listeners are added only when needed (`drain` after a write the socket could not take,
 * `finish` when the stream ends): an open stream costs no listener arrays on its response.
 */
class NodeStreamSink implements StreamSink {
  #onDrain: (() => void) | undefined;
  /** Whether the headers went out with a first write. */
  #opened = false;

  constructor(
    readonly response: NodeResponse,
    readonly stream: EventStream,
  ) {}

  send(chunk: Uint8Array): boolean {
    const { response } = this;
    const framed = this.#opened ? writeFramed(response, chunk) : undefined;
    this.#opened = true;
    if (framed ?? response.write(chunk)) return true;
    this.#onDrain ??= () => this.stream.drained();
    // A framed write filled the socket's buffer, which says when it is drained.
    if (framed === false) response.socket!.once('drain', this.#onDrain);
    else response.once('drain', this.#onDrain);
    return false;
  }

  end(): void {
    // The lease goes back once the end has been handed to the socket; until then the stream's
    // send clock runs (`EventStream.finish`), so a client that reads nothing is cut.
    this.response.on('finish', onFinish);
    this.response.end();
  }

  destroy(): void {
    this.response.destroy();
  }
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
 * The clock of a connection whose answers wait for the client: made only when an answer could
 * not be handed to the socket at once.
 */
interface SendClock {
  /** Answers written but not finished. */
  unsent: number;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** What a connection holds, kept on the socket: most connections hold one request at a time. */
const openOf = Symbol('longpoll-kit open exchanges');
/** Set once an answer with `Connection: close` was written on the connection. */
const closingOf = Symbol('longpoll-kit closing');
const clockOf = Symbol('longpoll-kit send clock');
/** What a response holds, kept on the response. */
const exchangeOf = Symbol('longpoll-kit exchange');
const unsentOf = Symbol('longpoll-kit unsent');

type TrackedSocket = NodeSocket & { [openOf]?: Exchange | Set<Exchange>; [clockOf]?: SendClock; [closingOf]?: true };
type TrackedResponse = NodeResponse & { [exchangeOf]?: Exchange; [unsentOf]?: boolean };

function cut(socket: NodeSocket): void {
  socket.destroy();
}

function onDrain(this: NodeSocket): void {
  // Progress: the client is reading, so the clock starts again.
  (this as TrackedSocket)[clockOf]?.timer.refresh();
}

function onSocketClose(this: NodeSocket): void {
  const socket = this as TrackedSocket;
  const open = socket[openOf];
  socket[openOf] = undefined;
  clearTimeout(socket[clockOf]?.timer);
  if (open instanceof Set) for (const exchange of open) exchange.end();
  else open?.end();
}

function forget(socket: TrackedSocket, exchange: Exchange): void {
  const open = socket[openOf];
  if (open === exchange) socket[openOf] = undefined;
  else if (open instanceof Set) open.delete(exchange);
}

function onFinish(this: NodeResponse): void {
  const response = this as TrackedResponse;
  const exchange = response[exchangeOf];
  if (!exchange) return;
  response[exchangeOf] = undefined;
  const request = response.req;
  const socket = request.socket as TrackedSocket;
  if (response[unsentOf]) {
    const clock = socket[clockOf]!;
    if (--clock.unsent === 0) {
      clearTimeout(clock.timer);
      socket[clockOf] = undefined;
    }
  }
  forget(socket, exchange);
  exchange.end();
}

/**
 * How Node closes a connection after an answer with `Connection: close`, for a request whose
 * body was left unread: Node would destroy the socket as soon as the answer is written, and a
 * reset while the client is still sending can wipe the answer from the client's buffers before
 * it reads it (and until then Node reads and discards the body). Instead: end our side, stop
 * reading (after Node's own attempt to drain the body has started), and destroy it `LINGER` ms
 * later in any case, as a lingering close does.
 */
function lingeringClose(this: NodeSocket): void {
  this.end();
  setImmediate(() => this.pause());
  setTimeout(cut, LINGER, this).unref?.();
}

/**
 * Ties `exchange` to the real lifetime of its connection: it ends when its answer has been
 * handed to the socket (`finish`; an answer that holds no lease and waits for nothing ends as it
 * is written) or when the socket closes, whichever comes first, so pipelined requests behind a
 * closed connection are freed at once.
 */
export function track(request: NodeRequest, response: NodeResponse, exchange: Exchange): void {
  const socket = request.socket as TrackedSocket;
  // A request pipelined behind an answer that closes the connection gets nothing (RFC 9112,
  // 9.6: a server that sends `close` processes no further request on the connection).
  if (socket.destroyed || socket[closingOf]) {
    exchange.end();
    return;
  }
  const open = socket[openOf];
  if (open === undefined) {
    if (!(openOf in socket)) socket.on('close', onSocketClose);
    socket[openOf] = exchange;
  } else {
    // A request pipelined behind others. HTTP/1.1 answers in order, so it would wait behind a
    // held poll anyway, and Node stops reading a connection whose queued answers pile up, so a
    // client that then goes away would not be noticed: a connection holds one poll at a time,
    // and the ones before are answered now, as timeouts that resume exactly.
    if (open instanceof Set) {
      for (const earlier of open) earlier.expire();
      open.add(exchange);
    } else {
      open.expire();
      socket[openOf] = new Set([open, exchange]);
    }
  }
  // Until the answer is written; then `writeAnswer` either ends it or waits for `finish`.
  (response as TrackedResponse)[exchangeOf] = exchange;
}

/**
 * Writes a {@link PollResponse} to Node's response, unless the client is gone or someone else
 * answered, then watches it with {@link written}. Used by every adapter on Node's http server.
 */
export function writeAnswer(response: NodeResponse, answer: PollResponse, sendTimeout: number): void {
  try {
    if (!response.headersSent && !response.destroyed) {
      const { req } = response;
      if (answer.headers.connection === 'close') {
        const socket = req.socket as TrackedSocket & { destroySoon?: unknown };
        socket[closingOf] = true;
        if (!req.complete) socket.destroySoon = lingeringClose;
      }
      response.writeHead(answer.status, answer.headers);
      if (answer.stream) {
        // It writes, and times its writes, until it ends the response or the connection goes.
        answer.stream.attach(new NodeStreamSink(response, answer.stream));
      } else response.end(answer.body);
    }
  } catch {
    // Headers went out half-way, or the socket broke: nothing sensible can be written now.
    response.destroy();
  }
  if (!answer.stream) written(response, sendTimeout);
  const tracked = response as TrackedResponse;
  const exchange = tracked[exchangeOf];
  if (!exchange) return;
  // A stream ends its exchange when it ends (see NodeStreamSink), or with the connection.
  if (answer.stream) return;
  if (exchange.lease !== undefined || tracked[unsentOf]) {
    // A lease is released, and a waiting answer's clock stopped, once the answer has left.
    response.on('finish', onFinish);
    return;
  }
  // Nothing is left to give back once it is written: no listener per answer.
  tracked[exchangeOf] = undefined;
  forget(response.req.socket, exchange);
  exchange.end();
}

/**
 * Call after `response.end()`: when the socket could not take the whole answer at once, the
 * connection's clock runs, and after `sendTimeout` ms without a `drain` the socket is destroyed
 * (which ends every exchange on it). A client that keeps reading is never cut.
 */
export function written(response: NodeResponse, sendTimeout: number): void {
  const tracked = response as TrackedResponse;
  // Nothing waits in the process (the kernel took it all, `finish` follows): no clock to start.
  if (response.writableFinished || response.writableLength === 0 || !tracked[exchangeOf] || tracked[unsentOf]) return;
  tracked[unsentOf] = true;
  const socket = response.req.socket as TrackedSocket;
  const clock = socket[clockOf];
  if (clock) {
    clock.unsent++;
    return;
  }
  if (!(clockOf in socket)) socket.on('drain', onDrain);
  const timer = setTimeout(cut, sendTimeout, socket);
  timer.unref?.();
  socket[clockOf] = { unsent: 1, timer };
}
