import type { Cursor, Message } from '../engine.js';
import { retryAfterMs } from './retry-after.js';

/** What one poll's answer means for the subscription. */
export type PollOutcome<T> =
  /**
   * 200 with messages or `timedOut`, or a 204/304 timeout: deliver, then poll from `cursor`.
   * `cursor` is `undefined` for a 204/304 whose `Longpoll-Cursor` the client cannot read (a
   * cross-origin answer without `Access-Control-Expose-Headers`): keep the current cursor.
   */
  | { readonly kind: 'messages'; readonly messages: readonly Message<T>[]; readonly cursor: Cursor | undefined; readonly timedOut: boolean }
  /** A 200 whose body passed `maxBodyBytes`: ask again for fewer messages. */
  | { readonly kind: 'oversized' }
  /** 410 `cursor_expired`: resume from `earliestCursor` (everything retained when absent). */
  | { readonly kind: 'reset'; readonly earliestCursor: Cursor | undefined }
  /** Anything else: retried (after `retryAfter` when the server said) unless `fatal`. */
  | {
      readonly kind: 'failure';
      readonly message: string;
      readonly status: number;
      readonly code: string | undefined;
      readonly fatal: boolean;
      readonly retryAfter: number | undefined;
    };

interface PollBody<T> {
  messages: Message<T>[];
  cursor: Cursor;
}

interface ProblemBody {
  code?: unknown;
  detail?: unknown;
  earliestCursor?: unknown;
}

/** Statuses that mean "try again later"; every other 4xx would get the same answer again. */
const RETRIED_CLIENT_ERRORS = new Set([408, 425, 429]);

/** The statuses whose body the client reads: the timeout styles 204 and 304 have none. */
export function hasBody(status: number): boolean {
  return status !== 204 && status !== 304;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isPollBody<T>(body: unknown): body is PollBody<T> {
  if (typeof body !== 'object' || body === null) return false;
  const { messages, cursor } = body as Partial<PollBody<T>>;
  return Array.isArray(messages) && typeof cursor === 'string' && messages.every((m) => typeof m?.id === 'string');
}

/**
 * Reads one answer of the HTTP protocol. `text` is the body, or `undefined` when it was larger
 * than the client reads; `limit` is the most messages the poll asked for.
 */
export function readAnswer<T>(status: number, headers: Headers, text: string | undefined, limit: number): PollOutcome<T> {
  // A 204/304 is a timeout: nothing came after the cursor we sent, so the cursor we hold stays
  // valid when the header is absent or hidden from us (CORS exposes only safelisted headers).
  if (status === 204 || status === 304) return { kind: 'messages', messages: [], cursor: headers.get('longpoll-cursor') || undefined, timedOut: true };
  if (status === 200) {
    if (text === undefined) return { kind: 'oversized' };
    const body = parse(text);
    if (isPollBody<T>(body)) {
      const { messages, cursor } = body;
      // Cursors are opaque: the client cannot name a position inside this answer, so taking
      // part of it and moving on would skip the rest, and keeping the old cursor would get
      // the same answer again. A server that ignores `limit` is broken: retry with backoff.
      if (messages.length > limit) {
        const message = `The server sent ${messages.length} messages, more than the ${limit} asked for`;
        return { kind: 'failure', message, status, code: 'too_many_messages', fatal: false, retryAfter: undefined };
      }
      return { kind: 'messages', messages, cursor, timedOut: messages.length === 0 };
    }
  }
  // An oversized problem body is not read: the status alone says what to do.
  const problem = (parse(text ?? '') ?? {}) as ProblemBody;
  if (status === 410) {
    const earliest = problem.earliestCursor;
    return { kind: 'reset', earliestCursor: typeof earliest === 'string' && earliest !== '' ? earliest : undefined };
  }
  const code = typeof problem.code === 'string' ? problem.code : undefined;
  const detail = typeof problem.detail === 'string' ? `: ${problem.detail}` : '';
  if (status >= 200 && status < 400) {
    // A success without a cursor would have the client poll the same position forever.
    return { kind: 'failure', message: `The server's ${status} answer is not a poll result`, status, code, fatal: false, retryAfter: undefined };
  }
  return {
    kind: 'failure',
    message: `The server answered ${status}${detail}`,
    status,
    code,
    fatal: status >= 400 && status < 500 && !RETRIED_CLIENT_ERRORS.has(status),
    retryAfter: status === 429 || status === 503 ? retryAfterMs(headers.get('retry-after')) : undefined,
  };
}
