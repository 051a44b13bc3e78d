import { LongPollError, type JsonValue, type PublishedMessage } from '../index.js';
import type { Answer } from '../poll.js';
import { STREAM_HEADERS, type EventStream } from './sse.js';

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
   * An event stream (`Accept: text/event-stream`): the adapter writes the status and headers,
   * then hands the stream its {@link StreamSink} (`stream.attach`) instead of writing a body.
   */
  readonly stream?: EventStream;
}

declare module '../poll.js' {
  // The core knows nothing of HTTP: this layer adds the field it keeps on each answer. (Every
  // declaration of a class's type names the same type parameters, used or not.)
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface Answer<T = JsonValue> {
    /**
     * The HTTP answer, made by the first poll that writes it and shared by every poll it goes to
     * that asked nothing of its own (see {@link sharedResponse}).
     */
    response?: PollResponse;
  }
}

/** The answer that opens an event stream. */
export function streamResponse(stream: EventStream): PollResponse {
  return { status: 200, headers: STREAM_HEADERS, body: undefined, stream };
}

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};
const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/**
 * The answer to a poll. `applied` is the `Preference-Applied` value when the request asked
 * `Prefer: wait`; a timeout gets `timeoutStatus`, without a body unless that is 200.
 */
export function pollResponse(answer: Answer<unknown>, applied: string | undefined, timeoutStatus: 200 | 204 | 304): PollResponse {
  const { result } = answer;
  const headers: Record<string, string> = { 'cache-control': 'no-store', 'longpoll-cursor': result.cursor };
  if (applied !== undefined) headers['preference-applied'] = applied;
  if (result.timedOut && timeoutStatus !== 200) return { status: timeoutStatus, headers, body: undefined };
  const { bytes } = answer;
  headers['content-type'] = JSON_TYPE;
  // A length, so that Node writes the body as is rather than chunked.
  headers['content-length'] = String(bytes.byteLength);
  return { status: 200, headers, body: bytes };
}

/**
 * {@link pollResponse} for a poll that asked no `Prefer: wait`: made once per {@link Answer} and
 * shared, frozen, by every such poll the answer goes to: a fanout writes one headers object
 * thousands of times instead of making one per poll (bench/micro/shared-response.js). A timeout
 * is answered once per poll and depends on the adapter's `timeoutStatus`: it is made each time.
 */
export function sharedResponse(answer: Answer<unknown>, timeoutStatus: 200 | 204 | 304): PollResponse {
  if (answer.result.timedOut) return pollResponse(answer, undefined, timeoutStatus);
  if (answer.response === undefined) {
    const response = pollResponse(answer, undefined, 200);
    Object.freeze(response.headers);
    answer.response = Object.freeze(response);
  }
  return answer.response;
}

/** The answer to a publish: what `broker.publish` returned. */
export function publishedResponse(message: PublishedMessage<unknown>): PollResponse {
  return {
    status: 201,
    headers: { 'cache-control': 'no-store', 'content-type': JSON_TYPE, 'longpoll-cursor': message.cursor },
    body: JSON.stringify(message),
  };
}

/**
 * The problem+json answer for an error; anything but a {@link LongPollError} is a 500 that says
 * nothing more. A body that was not read to its end (a 408, a 413) closes the connection: it
 * cannot carry another request.
 */
export function problemResponse(error: unknown, extra: Readonly<Record<string, string>> = {}): PollResponse {
  const known = LongPollError.from(error);
  const { status } = known;
  const body: Record<string, unknown> = {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    detail: known.message,
    code: known.code,
  };
  if (known.earliestCursor !== undefined) body.earliestCursor = known.earliestCursor;
  if (known.limit !== undefined) body.limit = known.limit;
  const headers: Record<string, string> = { 'cache-control': 'no-store', 'content-type': PROBLEM_TYPE, ...extra };
  if (status === 429 || status === 503) headers['retry-after'] = String(Math.max(1, Math.ceil(known.retryAfter ?? 1)));
  if (known.code === 'payload_too_large' || known.code === 'request_timeout') headers.connection = 'close';
  return { status, headers, body: JSON.stringify(body) };
}
