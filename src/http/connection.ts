/**
 * What the adapters that run on Node's http server (node, express, koa) read from a connection,
 * written against the shapes they use rather than against `node:http`, so that `src/http/`
 * imports no framework and no Node module.
 */

/** A request body as Node's `IncomingMessage` (a `Readable`) offers it. */
export interface ReadableBody {
  /** Node's `Readable.iterator()`. */
  iterator(options: { destroyOnReturn: boolean }): AsyncIterator<unknown>;
}

/** A response whose `close` tells whether it was finished: Node's `ServerResponse`. */
export interface ClosableResponse {
  /** Whether the whole response was handed to the socket. */
  readonly writableFinished: boolean;
  /** Adds a `close` listener. */
  on(event: 'close', listener: (this: ClosableResponse) => void): unknown;
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

/**
 * The disconnect signal of one response: aborted when the response closes before it is
 * finished. It is not an EventTarget on purpose: a Node `AbortController` with one listener
 * costs about 1 KB of heap per held poll (measured by `npm run bench`), while this holds one
 * listener in one field. It implements what `Broker.poll` uses of an `AbortSignal`: `aborted`,
 * `reason`, `throwIfAborted()` and one `abort` listener (a function or an `EventListenerObject`).
 */
class ResponseSignal {
  aborted = false;
  reason: unknown = undefined;
  onabort: ((event: Event) => void) | null = null;
  #listener: EventListenerOrEventListenerObject | undefined;

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null): void {
    if (type === 'abort' && listener) this.#listener = listener;
  }

  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null): void {
    if (type === 'abort' && this.#listener === listener) this.#listener = undefined;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listener = this.#listener;
    this.#listener = undefined;
    const event = new Event('abort');
    if (typeof listener === 'function') listener.call(this, event);
    else listener?.handleEvent(event);
    this.onabort?.(event);
  }
}

/** Where a response keeps its signal, so that one shared `close` listener serves every response. */
const signalOf = Symbol('longpoll-kit response signal');
type SignalledResponse = ClosableResponse & { [signalOf]?: ResponseSignal };

function onResponseClose(this: SignalledResponse): void {
  if (!this.writableFinished) this[signalOf]?.abort(new Error('The client went away'));
}

/**
 * The signal that aborts when `response` closes before it is finished (the client went away):
 * one small object and one shared listener per response, no closure.
 */
export function disconnectSignal(response: ClosableResponse): AbortSignal {
  const signal = new ResponseSignal();
  (response as SignalledResponse)[signalOf] = signal;
  response.on('close', onResponseClose);
  // What the broker uses of an AbortSignal (see ResponseSignal), at a fraction of its memory.
  return signal as unknown as AbortSignal;
}
