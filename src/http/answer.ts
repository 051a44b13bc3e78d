import { LongPollError, type PublishedMessage } from '../index.js';
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
