/** A test's view of a Server-Sent Events stream, read over real sockets with fetch. */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { expect } from 'vitest';

/** One event as `EventSource` would dispatch it, or a comment. */
export interface StreamEvent {
  readonly id: string | undefined;
  readonly event: string | undefined;
  readonly data: string | undefined;
  readonly retry: string | undefined;
  readonly comment: string | undefined;
}

/** An open stream: its events so far, and ways to wait for more. */
export interface OpenStream {
  readonly status: number;
  readonly headers: Headers;
  /** The raw body so far. */
  readonly text: () => string;
  /** Every block received so far (events and comments). */
  readonly events: StreamEvent[];
  /** Whether the server ended the body. */
  readonly ended: () => boolean;
  /** Waits (bounded) until `check` holds on the events. */
  waitFor(check: (events: StreamEvent[]) => boolean, what: string, within?: number): Promise<void>;
  /** The `message` events' data, parsed. */
  messages(): { id: string | undefined; channel: string; data: unknown }[];
  /** Closes the connection, as a client that goes away does. */
  close(): void;
  /** Settles when the body ends or is cut. */
  readonly done: Promise<void>;
}

function parseBlock(block: string): StreamEvent {
  let id: string | undefined;
  let event: string | undefined;
  let data: string | undefined;
  let retry: string | undefined;
  let comment: string | undefined;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      comment = line.slice(1).trim();
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data = data === undefined ? value : `${data}\n${value}`;
    else if (field === 'retry') retry = value;
  }
  return { id, event, data, retry, comment };
}

/** Opens `url` with `Accept: text/event-stream` and reads it as it comes (bounded by `timeout`). */
export async function openStream(url: string, headers: Record<string, string> = {}, timeout = 10_000): Promise<OpenStream> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  let text = '';
  let ended = false;
  const events: StreamEvent[] = [];
  let pending = '';
  const done = (async () => {
    try {
      const decoder = new TextDecoder();
      for await (const chunk of response.body!) {
        const piece = decoder.decode(chunk, { stream: true });
        text += piece;
        pending += piece;
        let end: number;
        while ((end = pending.indexOf('\n\n')) !== -1) {
          events.push(parseBlock(pending.slice(0, end)));
          pending = pending.slice(end + 2);
        }
      }
      ended = true;
    } catch {
      // cut: by the test (close), the timeout, or the server
    } finally {
      clearTimeout(timer);
    }
  })();
  return {
    status: response.status,
    headers: response.headers,
    text: () => text,
    events,
    ended: () => ended,
    async waitFor(check, what, within = 3_000) {
      const deadline = performance.now() + within;
      while (!check(events)) {
        expect(performance.now() < deadline, `${what}; got ${JSON.stringify(text)}`).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    messages: () =>
      events
        .filter((event) => event.event === 'message')
        .map((event) => {
          const message = JSON.parse(event.data!) as { channel: string; data: unknown };
          return { id: event.id, channel: message.channel, data: message.data };
        }),
    close: () => controller.abort(),
    done,
  };
}

/** What {@link streamHead} saw: a whole answer, or an event stream's first bytes. */
export interface StreamHead {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The whole body of an answer that is not an event stream; the bytes read of one that is. */
  readonly text: string;
  /** Whether the answer is an event stream (`200`, `text/event-stream`). */
  readonly streamed: boolean;
  /** For a stream, whether `enough` held before the deadline; for any other answer, whether it ended. */
  readonly complete: boolean;
}

/** The complete blocks (events and comments) of a stream's text so far. */
export function blocksOf(text: string): string[] {
  const blocks = text.split('\n\n');
  blocks.pop(); // the block still coming, or '' after the last blank line
  return blocks;
}

/** A stream's head: its `retry:` block, then a block that gives an `id:` (the head's own, or the first events'). */
export function hasHead(text: string): boolean {
  const blocks = blocksOf(text);
  return blocks.length >= 1 && blocks.some((block) => /(^|\n)id: /.test(block));
}

/**
 * Sends a request over its own socket (the path as written) and reads an event stream only until
 * `enough(text)` holds, then closes the connection; any other answer is read to its end. Every
 * answer is bounded by `timeout` ms: a request not answered by then settles with `undefined`.
 */
export function streamHead(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: string | Buffer; timeout?: number; enough?: (text: string) => boolean },
): Promise<StreamHead | undefined> {
  const { enough = hasHead, timeout = 5_000 } = options;
  const { origin, hostname, port } = new URL(url);
  const request = httpRequest({ hostname, port, path: url.slice(origin.length), method: options.method ?? 'GET', headers: options.headers, agent: false });
  return new Promise<StreamHead | undefined>((resolve) => {
    let settled: StreamHead | undefined;
    const timer = setTimeout(() => finish(settled), timeout);
    function finish(head: StreamHead | undefined): void {
      clearTimeout(timer);
      request.destroy();
      resolve(head);
    }
    request.once('response', (response) => {
      const streamed = response.statusCode === 200 && String(response.headers['content-type']).startsWith('text/event-stream');
      let text = '';
      const seen = (complete: boolean): StreamHead => ({ status: response.statusCode ?? 0, headers: response.headers, text, streamed, complete });
      settled = seen(false); // an answer that hangs is still reported, as incomplete
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
        settled = seen(false);
        if (streamed && enough(text)) finish(seen(true));
      });
      response.once('end', () => finish(seen(!streamed || enough(text))));
      response.once('error', () => finish(settled));
    });
    request.once('error', () => finish(settled));
    request.end(options.body);
  });
}
