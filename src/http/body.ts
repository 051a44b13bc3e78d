import { LongPollError } from '../index.js';

/** The body of a request, as the adapter hands it to the protocol. */
export type RequestBody =
  /** Raw chunks to read, bounded by `maxBodyBytes` and `bodyTimeout`. */
  | { readonly chunks: AsyncIterable<Uint8Array | string> }
  /** A value that middleware already parsed (Express' or Koa's `req.body`), used as is. */
  | { readonly parsed: unknown };

/**
 * Reads a whole body as UTF-8 text, giving up at `limit` bytes (`413 payload_too_large`) or after
 * `timeout` ms (`408 request_timeout`). Either way the rest is left unread: the answer closes the
 * connection instead.
 */
export async function readBody(chunks: AsyncIterable<Uint8Array | string>, limit: number, timeout: number): Promise<string> {
  const iterator: AsyncIterator<Uint8Array | string> = chunks[Symbol.asyncIterator]();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(reject, timeout, new LongPollError('request_timeout', `The body did not arrive within ${timeout} ms`));
  });
  const parts: Uint8Array[] = [];
  let size = 0;
  const encoder = new TextEncoder();
  try {
    for (;;) {
      const next = iterator.next();
      // Left behind when the deadline wins: its failure (the connection closing) is no news.
      next.catch(() => {});
      const step: IteratorResult<Uint8Array | string> = await Promise.race([next, expired]);
      if (step.done) break;
      const { value } = step;
      const bytes = typeof value === 'string' ? encoder.encode(value) : value;
      size += bytes.byteLength;
      if (size > limit) throw new LongPollError('payload_too_large', `The body is larger than ${limit} bytes`);
      parts.push(bytes);
    }
  } finally {
    clearTimeout(timer);
  }
  const whole = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    whole.set(part, offset);
    offset += part.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(whole);
  } catch {
    throw new LongPollError('invalid_body', 'The body is not UTF-8');
  }
}
