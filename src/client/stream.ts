import type { Cursor, Message } from '../engine.js';
import { hasBody, readAnswer, type PollOutcome } from './answer.js';
import { requestDeadline } from './deadline.js';
import { EventStreamParser, EventTooLargeError, type ServerSentEvent } from './event-stream.js';
import type { Fetch } from './options.js';
import { readText } from './response-text.js';

/** What the stream tells the subscription while it runs. */
export interface StreamHandlers<T> {
  /** The server answered `200 text/event-stream`: the stream is open. */
  open(): void;
  /** An `event: message`; `cursor` is its `id:`, the position just after it. */
  message(message: Message<T>, cursor: Cursor | undefined): void;
  /** An `event: reset` (`cursor_expired`): the stream goes on from `earliestCursor`. */
  reset(earliestCursor: Cursor | undefined): void;
  /** An `id:` without a message (the stream's starting position, an event we do not know). */
  cursor(cursor: Cursor): void;
  /** A `retry:` field: the reconnection delay the server asks for, in milliseconds. */
  retry(ms: number): void;
  /** `undefined` while the reader has room, else a promise that resolves when it has. */
  room(): Promise<void> | undefined;
  /** Whether the subscription closed (from a listener, say): stop at once. */
  closed(): boolean;
}

/** One stream request. */
export interface StreamRequest {
  readonly url: string;
  readonly fetch: Fetch;
  readonly headers: Record<string, string>;
  /** Sent as `Last-Event-ID`, the server's first choice of where to resume. */
  readonly cursor: Cursor | undefined;
  readonly idleTimeout: number;
  readonly maxEventBytes: number;
  /** The subscription's signal: aborting it ends the stream. */
  readonly signal: AbortSignal;
}

/**
 * How a stream ended, when it did not throw (a network error, or `idleTimeout` passed: then the
 * deadline's `TimeoutError` is thrown): `ended` is a normal end of the body, after which the
 * client reconnects after the `retry:` delay; `reset` and `failure` are what an answer other
 * than an event stream means (as for a poll), or an event the client refused.
 */
export type StreamOutcome = { readonly kind: 'ended' } | Extract<PollOutcome<never>, { kind: 'reset' | 'failure' }>;

/** The server sent an event that is not what the protocol says. */
class InvalidEventError extends Error {}

const EVENT_STREAM = /^\s*text\/event-stream\s*(;|$)/i;

function failure(message: string, code: string, status = 200): StreamOutcome {
  return { kind: 'failure', message, status, code, fatal: false, retryAfter: undefined };
}

function parse(data: string, what: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    throw new InvalidEventError(`The server sent ${what} whose data is not JSON`);
  }
}

/**
 * Reads one `text/event-stream` answer through `fetch`, so that headers go with it (what
 * `EventSource` cannot do) and it runs in Node too. The request's deadline is `idleTimeout` for
 * the headers, then `idleTimeout` of silence: every chunk, a `: ping` too, moves it. While the
 * reader's buffer is full nothing is read and that clock is stopped: TCP's flow control then
 * stops the server. The buffer may overshoot by the events of the chunk being read, which the
 * transport bounds (a chunk is at most tens of KiB), not the server.
 */
export async function readStream<T>(request: StreamRequest, handlers: StreamHandlers<T>): Promise<StreamOutcome> {
  const { idleTimeout } = request;
  const idle = `The stream went idle: no byte`;
  const deadline = requestDeadline(request.signal, idleTimeout, 'No answer');
  try {
    const headers: Record<string, string> = { accept: 'text/event-stream', ...request.headers };
    if (request.cursor !== undefined) headers['last-event-id'] = request.cursor;
    // Called unbound: a browser's fetch throws "Illegal invocation" when `this` is not the window.
    const fetcher = request.fetch;
    const response = await fetcher(request.url, { headers, signal: deadline.signal, cache: 'no-store' });
    deadline.extend(idleTimeout, idle);
    const type = response.headers.get('content-type') ?? 'no content type';
    // A 200 of another type is a server or proxy that does not stream: its body is not read.
    if (response.status === 200 && !EVENT_STREAM.test(type)) return failure(`The server's answer is not an event stream (${type})`, 'not_event_stream');
    if (response.status !== 200) {
      // The problem+json of a refusal (429, 503, 401…) means what it means for a poll.
      const text = hasBody(response.status) ? await readText(response, request.maxEventBytes, () => deadline.extend(idleTimeout, idle)) : '';
      const outcome = readAnswer<never>(response.status, response.headers, text, Infinity);
      if (outcome.kind === 'reset' || outcome.kind === 'failure') return outcome;
      return failure(`The server's ${response.status} answer is not an event stream`, 'not_event_stream', response.status);
    }
    handlers.open();
    if (response.body === null || handlers.closed()) return { kind: 'ended' };
    const reader = response.body.getReader();
    const parser = new EventStreamParser(
      {
        event: (event) => onEvent(event, handlers),
        id: (id) => {
          if (id !== '') handlers.cursor(id);
        },
        retry: (ms) => handlers.retry(ms),
      },
      request.maxEventBytes,
    );
    try {
      for (;;) {
        const room = handlers.room();
        if (room) {
          deadline.suspend();
          await room;
          if (handlers.closed()) return { kind: 'ended' };
          deadline.extend(idleTimeout, idle);
        }
        const { done, value } = await reader.read();
        if (done) {
          parser.end();
          return { kind: 'ended' };
        }
        deadline.extend(idleTimeout, idle);
        parser.push(value);
        if (handlers.closed()) return { kind: 'ended' };
      }
    } catch (error) {
      if (error instanceof EventTooLargeError) return failure(`An event passed maxBodyBytes (${request.maxEventBytes} bytes)`, 'event_too_large');
      if (error instanceof InvalidEventError) return failure(error.message, 'invalid_event');
      throw error;
    } finally {
      reader.releaseLock();
    }
  } catch (error) {
    // The deadline's reason says more than the AbortError some fetch implementations throw.
    throw deadline.signal.aborted && !request.signal.aborted ? (deadline.signal.reason as unknown) : error;
  } finally {
    // Aborts the request too: the connection is freed whatever ended the stream.
    deadline.release();
  }
}

function onEvent<T>(event: ServerSentEvent, handlers: StreamHandlers<T>): void {
  if (handlers.closed()) return;
  const cursor = event.lastEventId === '' ? undefined : event.lastEventId;
  if (event.type === 'message') {
    const message = parse(event.data, 'a message') as Partial<Message<T>> | null;
    if (typeof message !== 'object' || message === null || typeof message.id !== 'string') {
      throw new InvalidEventError('The server sent a message event that is not a message');
    }
    handlers.message(message as Message<T>, cursor);
  } else if (event.type === 'reset') {
    const body = parse(event.data, 'a reset') as { earliestCursor?: unknown } | null;
    const named = typeof body?.earliestCursor === 'string' && body.earliestCursor !== '' ? body.earliestCursor : undefined;
    handlers.reset(cursor ?? named);
  } else if (cursor !== undefined) {
    // An event this client does not know: skipped, as EventSource skips one nobody listens to.
    handlers.cursor(cursor);
  }
}
