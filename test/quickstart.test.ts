import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from './support/example-process.js';

// The core wired by hand, run against the built package (dist/, built by `npm install`).
let server: RunningExample;
beforeAll(async () => {
  server = await startExample('examples/quickstart/server.js');
});
afterAll(async () => {
  await server?.stop();
});

describe('examples/quickstart', () => {
  it('prints a URL where a held poll receives a published message', async () => {
    const url = server.url;
    const held = fetch(url, { signal: AbortSignal.timeout(10_000) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const published = await fetch(url, { method: 'POST', body: JSON.stringify({ text: 'hi' }), signal: AbortSignal.timeout(5000) });
    expect(published.status).toBe(201);
    const answer = await held;
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { messages: { data: unknown }[]; cursor: string };
    expect(body.messages.map((m) => m.data)).toEqual([{ text: 'hi' }]);
    const stale = await fetch(`${url}?cursor=garbage`, { signal: AbortSignal.timeout(5000) });
    expect(stale.status).toBe(400);
    expect(await stale.json()).toMatchObject({ code: 'invalid_cursor' });
  });

  it('stops cleanly on SIGTERM', async () => {
    await server.stop();
    expect(server.child.exitCode).toBe(0);
  });
});
