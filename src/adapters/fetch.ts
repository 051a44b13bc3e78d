/**
 * Mounts a broker on any WHATWG fetch runtime: `(Request) => Promise<Response>` (Deno, Bun,
 * Cloudflare-style workers, or Node through a bridge).
 *
 * @example
 * ```ts
 * import { Broker } from 'longpoll-kit';
 * import { longPoll } from 'longpoll-kit/fetch';
 *
 * const handler = longPoll(new Broker(), { prefix: '/channels' });
 * Deno.serve(handler); // Deno passes { remoteAddr } as the second argument
 * ```
 *
 * @module longpoll-kit/fetch
 */
import type { Broker } from '../index.js';
import {
  createProtocol,
  type EventStream,
  type Exchange,
  type LongPollOptions,
  type PollResponse,
  type ResponseSink,
  type StreamSink,
} from '../http/protocol.js';

export type { Access, LongPollOptions } from '../http/protocol.js';

/** What some runtimes pass beside the request (Deno's `ServeHandlerInfo`, or a Node bridge). */
export interface FetchConnectionInfo {
  /** The client's address. */
  readonly remoteAddr?: {
    /** The client's IP address. */
    readonly hostname?: string;
  };
}

/** Options of the fetch adapter: {@link LongPollOptions} over the fetch `Request`. */
export type FetchLongPollOptions = LongPollOptions<Request>;

/** A fetch handler. It answers 404 outside its prefix and never rejects. */
export type FetchLongPollHandler = (request: Request, info?: FetchConnectionInfo) => Promise<Response>;

async function* chunksOf(body: ReadableStream<Uint8Array> | null): AsyncIterable<Uint8Array> {
  if (!body) return;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The path and query of a request URL, taken as the runtime gave them: not parsed again, so
 * that routing sees what the Node adapters see (`new URL(…).pathname` would resolve `.` and
 * `..` segments and turn `\` into `/`). The fragment, which is not part of the request, is cut.
 */
function targetOf(url: string): string {
  const authority = url.indexOf('://');
  let start = 0;
  if (authority !== -1 && !url.startsWith('/')) {
    // The authority ends at the first '/', '?' or '#' after '://'.
    start = authority + 3;
    while (start < url.length && url[start] !== '/' && url[start] !== '?' && url[start] !== '#') start++;
  }
  const fragment = url.indexOf('#', start);
  const target = fragment === -1 ? url.slice(start) : url.slice(start, fragment);
  return target.startsWith('/') ? target : `/${target}`;
}

/**
 * A fetch handler for `GET {prefix}/{channel}` (poll) and, with `publish`, `POST` (publish).
 *
 * The client key is `info.remoteAddr.hostname` when the runtime passes it; otherwise, unless
 * `clientKey(request)` is given, only the limiter's per-channel and total caps apply. The
 * request's own `signal` is the disconnect signal, as runtimes abort it when the client goes.
 *
 * @example
 * ```ts
 * export default { fetch: longPoll(broker, { prefix: '/channels', limiter }) };
 * ```
 */
export function longPoll<T>(broker: Broker<T>, options: FetchLongPollOptions = {}): FetchLongPollHandler {
  const protocol = createProtocol(broker, options);
  const { sendTimeout } = protocol.settings;
  return (request, info) =>
    new Promise<Response>((resolve) => {
      protocol.serve(
        {
          method: request.method,
          url: targetOf(request.url),
          header: (name) => request.headers.get(name) ?? undefined,
          body: { chunks: chunksOf(request.body) },
          clientKey: info?.remoteAddr?.hostname,
          raw: request,
        },
        new FetchAnswer(resolve, request.signal, sendTimeout),
      );
    });
}

const utf8 = new TextEncoder();

/**
 * How much of an answer the runtime takes per pull: the lease lasts until the last piece is
 * taken, and a runtime that writes with backpressure takes the next piece only once the client
 * has read enough, so a client that does not read keeps its lease (and its per-client cap).
 */
const PIECE = 65_536;

/**
 * Turns the protocol's answer into a `Response`. A fetch runtime does not say when it has written
 * a `Response`: the closest is the moment it takes the last of the body, so an answer that holds
 * a lease streams its bytes in pieces and ends the exchange when the last is taken, or when the
 * body is cancelled, or when the runtime takes nothing for `sendTimeout` ms (the stream then
 * fails, and the runtime drops the connection). The request's signal ends it too when the client
 * goes away first.
 */
class FetchAnswer implements ResponseSink, EventListenerObject {
  #exchange: Exchange | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly resolve: (response: Response) => void,
    readonly signal: AbortSignal,
    readonly sendTimeout: number,
  ) {}

  bind(exchange: Exchange): void {
    this.#exchange = exchange;
    if (this.signal.aborted) exchange.end();
    else this.signal.addEventListener('abort', this, { once: true });
  }

  /** The client went away. */
  handleEvent(): void {
    this.done();
  }

  write(response: PollResponse): void {
    const exchange = this.#exchange!;
    const { status, headers, body } = response;
    if (response.stream) {
      this.resolve(new Response(this.#streamOf(response.stream), { status, headers }));
      return;
    }
    if (body === undefined || !exchange.lease) {
      this.resolve(new Response(body ?? null, { status, headers }));
      this.done();
      return;
    }
    const bytes = typeof body === 'string' ? utf8.encode(body) : body;
    let offset = 0;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#timer = setTimeout(() => {
          controller.error(new Error(`The client took nothing for ${this.sendTimeout} ms`));
          this.done();
        }, this.sendTimeout);
      },
      pull: (controller) => {
        this.#timer?.refresh();
        // Views of the shared bytes: nothing is copied.
        controller.enqueue(bytes.subarray(offset, offset + PIECE));
        offset += PIECE;
        if (offset >= bytes.byteLength) {
          controller.close();
          this.done();
        }
      },
      cancel: () => this.done(),
    });
    this.resolve(new Response(stream, { status, headers }));
  }

  /**
   * An event stream's body. The runtime pulls as the client reads; the stream stops reading the
   * broker while more than {@link PIECE} bytes wait in the body's queue.
   */
  #streamOf(stream: EventStream): ReadableStream<Uint8Array> {
    let open = true;
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>(
      {
        start: (given) => {
          controller = given;
        },
        pull: () => stream.drained(),
        cancel: () => this.done(),
      },
      { highWaterMark: PIECE, size: (chunk) => chunk.byteLength },
    );
    const sink: StreamSink = {
      send: (chunk) => {
        if (!open) return false;
        controller.enqueue(chunk);
        return (controller.desiredSize ?? 0) > 0;
      },
      end: () => {
        if (open) controller.close();
        open = false;
        this.done();
      },
      destroy: () => {
        if (open) controller.error(new Error(`The client took nothing for ${this.sendTimeout} ms`));
        open = false;
        this.done();
      },
    };
    stream.attach(sink);
    return body;
  }

  /** The runtime has the answer, or the client is gone: the exchange ends. */
  done(): void {
    clearTimeout(this.#timer);
    this.signal.removeEventListener('abort', this);
    this.#exchange!.end();
  }

  abandon(): void {
    // The client went away: the runtime discards whatever it gets.
    this.resolve(Response.error());
  }
}
