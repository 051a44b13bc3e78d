/**
 * Every failure longpoll-kit reports, as a string code. The HTTP adapters map each code to a
 * status through {@link errorStatus}, the one table of the library.
 */
export type LongPollErrorCode =
  | 'invalid_channel'
  | 'invalid_channels'
  | 'invalid_cursor'
  | 'invalid_wait'
  | 'invalid_limit'
  | 'invalid_body'
  | 'invalid_payload'
  | 'invalid_option'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'cursor_expired'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'limit_exceeded'
  | 'shutting_down'
  | 'unavailable'
  | 'internal';

/**
 * Which cap of a {@link ConnectionLimiter} refused: a lease (`client`, `channel`, `total`) or a
 * request over its client's `rate`.
 */
export type LimitKind = 'client' | 'channel' | 'total' | 'rate';

/**
 * The HTTP status of every {@link LongPollErrorCode}. `invalid_option` is a programming error
 * (a bad constructor option), so it is a 500 if it ever reaches HTTP.
 */
export const errorStatus: Readonly<Record<LongPollErrorCode, number>> = Object.freeze({
  invalid_channel: 400,
  invalid_channels: 400,
  invalid_cursor: 400,
  invalid_wait: 400,
  invalid_limit: 400,
  invalid_body: 400,
  invalid_payload: 400,
  invalid_option: 500,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  cursor_expired: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  limit_exceeded: 429,
  shutting_down: 503,
  unavailable: 503,
  internal: 500,
});

/** Extra facts some codes carry. */
export interface LongPollErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** On `cursor_expired`: the cursor to resume from (everything still retained). */
  earliestCursor?: string;
  /** On `limit_exceeded`: which cap refused. */
  limit?: LimitKind;
  /** On `limit_exceeded` and `shutting_down`: a suggested delay before retrying, in seconds. */
  retryAfter?: number;
}

/**
 * The one error class of longpoll-kit. Branch on `code`, never on `message`.
 *
 * @example
 * ```ts
 * try {
 *   await broker.poll('room:1', { cursor });
 * } catch (err) {
 *   if (err instanceof LongPollError && err.code === 'cursor_expired') {
 *     cursor = err.earliestCursor; // rehydrate
 *   }
 * }
 * ```
 */
export class LongPollError extends Error {
  /** Always `'LongPollError'`, set explicitly so it survives minification. */
  override readonly name = 'LongPollError';
  /** What went wrong, as a stable string. */
  readonly code: LongPollErrorCode;
  /** On `cursor_expired`: the earliest cursor still retained. */
  readonly earliestCursor?: string;
  /** On `limit_exceeded`: which cap refused. */
  readonly limit?: LimitKind;
  /** On `limit_exceeded` and `shutting_down`: a suggested delay before retrying, in seconds. */
  readonly retryAfter?: number;

  /**
   * @param code - what went wrong
   * @param message - a sentence for people; safe to show to a client
   * @param options - the cause and the facts some codes carry
   */
  constructor(code: LongPollErrorCode, message: string, options: LongPollErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.earliestCursor !== undefined) this.earliestCursor = options.earliestCursor;
    if (options.limit !== undefined) this.limit = options.limit;
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
  }

  /** The HTTP status of this error's code, from {@link errorStatus}. */
  get status(): number {
    return errorStatus[this.code];
  }

  /**
   * Returns `error` if it is a {@link LongPollError}, else wraps it as `internal` (keeping it
   * as `cause`) so that nothing of an unknown error's message reaches a client.
   */
  static from(error: unknown): LongPollError {
    if (error instanceof LongPollError) return error;
    return new LongPollError('internal', 'Internal error', { cause: error });
  }
}
