import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from './support/example-process.js';

// `npm start` runs examples/chat against the built package (dist/, built by `npm install`'s
// prepare script, and by CI's `npm run build` before the tests).
const root = new URL('../', import.meta.url);
const built = new URL('dist/client/index.js', root);

let chat: RunningExample | undefined;
beforeAll(async () => {
  if (!existsSync(built)) throw new Error('dist/client/index.js is missing: run `npm run build` before this test');
  chat = await startExample('examples/chat/server.js');
});
afterAll(async () => {
  await chat?.stop();
});

const channel = () => new URL('/channels/chat:lobby', chat!.url);
const timeout = (ms: number) => AbortSignal.timeout(ms);

describe('npm start (examples/chat)', () => {
  it('is what `npm start` runs', async () => {
    const manifest = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> };
    expect(manifest.scripts.start).toBe('node examples/chat/server.js');
  });

  it('prints the URL of its page, which loads the client from the built package', async () => {
    expect(chat!.url.href).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(chat!.url, { signal: timeout(5000) });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('"longpoll-kit/client": "/lib/client/index.js"');
    const script = await fetch(new URL('/chat.js', chat!.url), { signal: timeout(5000) });
    expect(await script.text()).toContain("from 'longpoll-kit/client'");
    const client = await fetch(new URL('/lib/client/index.js', chat!.url), { signal: timeout(5000) });
    expect(client.status).toBe(200);
    expect(client.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await client.text()).toBe(await readFile(built, 'utf8'));
  });

  it('answers a held poll on the chat channel with a message posted through it', async () => {
    const { cursor } = (await (await fetch(`${channel().href}?wait=0`, { signal: timeout(5000) })).json()) as { cursor: string };
    const held = fetch(`${channel().href}?wait=10&cursor=${cursor}`, { signal: timeout(10_000) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const posted = await fetch(channel(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ada', text: 'hello' }),
      signal: timeout(5000),
    });
    expect(posted.status).toBe(201);
    const answer = await held;
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { messages: { data: unknown }[]; timedOut: boolean };
    expect(body.messages.map((m) => m.data)).toEqual([{ name: 'ada', text: 'hello' }]);
  });

  it('refuses a body that is not JSON with a problem', async () => {
    const posted = await fetch(channel(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"text":',
      signal: timeout(5000),
    });
    expect(posted.status).toBe(400);
    expect(posted.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await posted.json()).toMatchObject({ code: 'invalid_body' });
  });

  it('answers held polls with 503 and Retry-After on SIGTERM, then exits 0', async () => {
    const held = fetch(`${channel().href}?wait=20&cursor=${await currentCursor()}`, { signal: timeout(10_000) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stopped = chat!.stop();
    const answer = await held;
    expect(answer.status).toBe(503);
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    await stopped;
    expect(chat!.child.exitCode).toBe(0);
  });
});

async function currentCursor(): Promise<string> {
  const answer = await fetch(`${channel().href}?wait=0`, { signal: timeout(5000) });
  return ((await answer.json()) as { cursor: string }).cursor;
}
