import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { expect } from 'vitest';

/** What a test sees of an answer. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** Milliseconds from sending to the end of the body. */
  readonly elapsed: number;
}

/** A request through global fetch (undici), bounded by `timeout` ms. */
export async function send(url: string, init: RequestInit & { timeout?: number } = {}): Promise<Answer> {
  const { timeout = 5_000, ...rest } = init;
  const started = performance.now();
  const response = await fetch(url, { ...rest, signal: AbortSignal.timeout(timeout) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, elapsed: performance.now() - started };
}

/** A JSON POST through fetch. */
export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return send(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The JSON body of an answer. */
export function json<T = Record<string, unknown>>(answer: Answer): T {
  return JSON.parse(answer.text) as T;
}

/** A poll answer's body. */
export interface PollBody {
  messages: { id: string; channel: string; data: unknown; publishedAt: string }[];
  cursor: string;
  timedOut: boolean;
}

/** Asserts a problem+json answer with `status` and `code`, and returns its body. */
export function expectProblem(answer: Answer, status: number, code: string): Record<string, unknown> {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  const body = json(answer);
  expect(body).toMatchObject({ type: 'about:blank', status, code });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  return body;
}

/** A request over node:http that the test can cut by destroying its socket. */
export interface HeldRequest {
  /** Settles with the answer, or with `undefined` once the request was destroyed. */
  readonly answer: Promise<{ status: number; headers: IncomingHttpHeaders; text: string } | undefined>;
  /** Closes the socket, as a client that goes away does. */
  destroy(): void;
}

/** Sends a request over its own socket (no keep-alive), bounded by `timeout` ms; the path is sent as written. */
export function hold(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: string | Buffer; timeout?: number } = {},
): HeldRequest {
  // The path goes out exactly as given: a URL string would be normalised ('/a/../b' → '/b').
  const { origin, hostname, port } = new URL(url);
  const request = httpRequest({ hostname, port, path: url.slice(origin.length), method: options.method ?? 'GET', headers: options.headers, agent: false });
  const timer = setTimeout(() => request.destroy(new Error('test request timed out')), options.timeout ?? 5_000);
  const answer = new Promise<{ status: number; headers: IncomingHttpHeaders; text: string } | undefined>((resolve, reject) => {
    let responded = false;
    request.once('response', (response) => {
      responded = true;
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString() }));
      response.once('error', reject);
      response.once('close', () => resolve(undefined)); // cut before its end
    });
    request.once('error', (error) => (request.destroyed && error.message !== 'test request timed out' ? resolve(undefined) : reject(error)));
    request.once('close', () => {
      if (!responded) resolve(undefined);
    });
  }).finally(() => clearTimeout(timer));
  request.end(options.body);
  return { answer, destroy: () => request.destroy() };
}

/** Polls `check` every few ms for up to `within` ms; returns whether it held. */
export async function eventually(check: () => boolean, within: number): Promise<boolean> {
  const deadline = performance.now() + within;
  for (;;) {
    if (check()) return true;
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Waits (up to 2 s) until `check` holds, failing the test otherwise. */
export async function until(check: () => boolean, what: string): Promise<void> {
  expect(await eventually(check, 2_000), what).toBe(true);
}

/**
 * Publishes 1 KB messages on `channel` of `broker` until some of a stream's bytes wait in the
 * process (`socket.writableLength > 0`: the kernel's buffers are full) while the stream, not yet
 * over its high-water mark, waits for the next message (one waiter). Bounded: 50,000 messages.
 */
export async function fillUntilBytesWait(
  broker: { publish(channel: string, data: string): Promise<unknown>; stats(): { waiters: number } },
  channel: string,
  socket: { readonly writableLength: number },
): Promise<void> {
  const payload = 'x'.repeat(1_000);
  for (let i = 0; i < 50_000 && !(socket.writableLength > 0 && broker.stats().waiters === 1); i++) {
    await broker.publish(channel, payload);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
