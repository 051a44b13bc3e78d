import { describe, expect, it } from 'vitest';
import { errorStatus, LongPollError } from '../src/index.js';

describe('LongPollError', () => {
  it('maps every code to the status of the design table', () => {
    expect(errorStatus).toEqual({
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
    expect(Object.isFrozen(errorStatus)).toBe(true);
  });

  it('carries its code, status, name and the facts of its code', () => {
    const error = new LongPollError('limit_exceeded', 'Too many', { limit: 'client', retryAfter: 2 });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('LongPollError');
    expect(error.code).toBe('limit_exceeded');
    expect(error.status).toBe(429);
    expect(error.limit).toBe('client');
    expect(error.retryAfter).toBe(2);
    expect(new LongPollError('cursor_expired', 'old', { earliestCursor: 'c' }).earliestCursor).toBe('c');
  });

  it('wraps unknown errors as internal without leaking their message', () => {
    const cause = new Error('password=hunter2');
    const wrapped = LongPollError.from(cause);
    expect(wrapped.code).toBe('internal');
    expect(wrapped.status).toBe(500);
    expect(wrapped.message).not.toContain('hunter2');
    expect(wrapped.cause).toBe(cause);
    const known = new LongPollError('forbidden', 'no');
    expect(LongPollError.from(known)).toBe(known);
  });
});
