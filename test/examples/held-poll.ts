import { expect } from 'vitest';

/** What a poll answers with a 200. */
export interface PollBody {
  readonly messages: readonly { readonly id: string; readonly channel: string; readonly data: unknown }[];
  readonly cursor: string;
  readonly timedOut: boolean;
}

/** Resolves to 'pending' if `promise` has not settled after `ms`. */
export async function stillPending(promise: Promise<unknown>, ms: number): Promise<'pending' | 'settled'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => {
    timer = setTimeout(resolve, ms, 'pending');
  });
  const settled = promise.then(
    () => 'settled' as const,
    () => 'settled' as const,
  );
  try {
    return await Promise.race([pending, settled]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The scenario every mount must pass over real HTTP: take the channel's cursor, hold a poll
 * from it, see it still held, publish with a POST, and see the held poll answered with exactly
 * that message.
 */
export async function heldPollReceivesPublish(channelUrl: string): Promise<void> {
  const first = await fetch(`${channelUrl}?wait=0`, { signal: AbortSignal.timeout(5000) });
  expect(first.status).toBe(200);
  const { cursor } = (await first.json()) as PollBody;

  const held = fetch(`${channelUrl}?cursor=${encodeURIComponent(cursor)}&wait=10`, { signal: AbortSignal.timeout(10_000) });
  expect(await stillPending(held, 300)).toBe('pending');

  const published = await fetch(channelUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: 'hi' }),
    signal: AbortSignal.timeout(5000),
  });
  expect(published.status).toBe(201);
  const message = (await published.json()) as { id: string };

  const answer = await held;
  expect(answer.status).toBe(200);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  const body = (await answer.json()) as PollBody;
  expect(body.timedOut).toBe(false);
  expect(body.messages.map((m) => [m.id, m.data])).toEqual([[message.id, { text: 'hi' }]]);
}

/**
 * Waits until `check()` is true, re-checking every 20 ms for at most `ms`; returns whether it
 * became true. For state that another process reaches asynchronously (a poll being held).
 */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
