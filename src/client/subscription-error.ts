/**
 * Why a poll failed. A `fatal` one closes the subscription (400, 401, 403, 404 and the other
 * client errors: retrying would get the same answer); any other is retried after `retryIn`.
 */
export class SubscriptionError extends Error {
  /** Always `'SubscriptionError'`, set explicitly so it survives minification. */
  override readonly name = 'SubscriptionError';
  /** The HTTP status, when the server answered; `undefined` for a network error or a timeout. */
  readonly status: number | undefined;
  /**
   * The problem's `code` (e.g. `'limit_exceeded'`), when the server sent problem+json; or one
   * of the client's own: `'answer_too_large'` (even one message's answer passed
   * `maxBodyBytes`), `'too_many_messages'` (more messages than the poll's `limit`),
   * `'no_progress'` (only messages already delivered, and the cursor did not move),
   * `'listener_error'` (a listener threw); with `transport: 'sse'`, `'event_too_large'` (one
   * event passed `maxBodyBytes`), `'idle_timeout'` (no byte for `idleTimeout`),
   * `'not_event_stream'` (a 200 of another type), `'invalid_event'` (a message event whose
   * data is not a message).
   */
  readonly code: string | undefined;
  /** Whether the subscription closes because of it. */
  readonly fatal: boolean;
  /** When it is retried: the delay before the next attempt, in milliseconds. */
  readonly retryIn: number | undefined;

  /** @internal */
  constructor(message: string, details: { status?: number; code?: string; fatal: boolean; retryIn?: number; cause?: unknown }) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.code = details.code;
    this.fatal = details.fatal;
    this.retryIn = details.retryIn;
  }
}
