import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stillPending, type PollBody } from './examples/held-poll.js';
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
/** The page's one poll: the room and its presence (the list ends the URL; add `&…` to it). */
const roomAndPresence = () => new URL('/channels?channels=chat%3Alobby,presence%3Alobby', chat!.url).href;
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
    const source = await script.text();
    expect(source).toContain("from 'longpoll-kit/client'");
    // It builds its one poll's URL itself (test/browser.test.ts watches the page use it).
    expect(source).toContain('/channels?channels=');
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

  it('serves the room and its presence to one poll over both channels, each message naming its channel', async () => {
    const both = (cursor: string, wait: number) => fetch(`${roomAndPresence()}&wait=${wait}&cursor=${encodeURIComponent(cursor)}`, { signal: timeout(10_000) });
    const { cursor } = (await (await fetch(`${roomAndPresence()}&wait=0&limit=1000`, { signal: timeout(5000) })).json()) as { cursor: string };
    const held = both(cursor, 10);
    expect(await stillPending(held, 100)).toBe('pending');
    expect((await post(new URL('/channels/presence:lobby', chat!.url).href, JSON.stringify({ name: 'ada' }), '127.0.0.6')).status).toBe(201);
    expect((await post(channel().href, JSON.stringify({ name: 'ada', text: 'both' }), '127.0.0.6')).status).toBe(201);
    const first = (await (await held).json()) as PollBody;
    expect(first.messages.length).toBeGreaterThanOrEqual(1);
    // Whatever the held poll did not bring, the next one from its cursor does, at once.
    const rest = first.messages.length === 2 ? [] : ((await (await both(first.cursor, 0)).json()) as PollBody).messages;
    const messages = [...first.messages, ...rest];
    expect(messages.map(({ channel, data }) => ({ channel, data }))).toEqual([
      { channel: 'presence:lobby', data: { name: 'ada' } },
      { channel: 'chat:lobby', data: { name: 'ada', text: 'both' } },
    ]);
  });

  it('refuses a poll over many channels when one of them is not the chat’s', async () => {
    const polled = await fetch(new URL('/channels?channels=chat:lobby,presence:elsewhere&wait=0', chat!.url), { signal: timeout(5000) });
    expect(polled.status).toBe(403);
    expect(await polled.json()).toMatchObject({ code: 'forbidden', detail: expect.stringContaining('presence:elsewhere') });
  });

  it('gives presence a posting budget of its own, so saying "here" never spends the budget for lines', async () => {
    // 30 posts: under the request rate (60 at once), over the presence budget.
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await post(new URL('/channels/presence:lobby', chat!.url).href, JSON.stringify({ name: 'busy' }), '127.0.0.5')).status);
    const accepted = statuses.filter((status) => status === 201).length;
    // 12 at once, then one every 5 s.
    expect(accepted).toBeGreaterThanOrEqual(12);
    expect(accepted).toBeLessThanOrEqual(14);
    expect(statuses.filter((status) => status === 429)).toHaveLength(30 - accepted);
    expect((await post(channel().href, line(64), '127.0.0.5')).status).toBe(201);
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

  it('refuses polls and posts outside its rooms with 403', async () => {
    const elsewhere = new URL('/channels/anything', chat!.url);
    const posted = await post(elsewhere.href, line(64), '127.0.0.2');
    expect(posted.status).toBe(403);
    const polled = await fetch(`${elsewhere.href}?wait=0`, { signal: timeout(5000) });
    expect(polled.status).toBe(403);
  });

  it('answers a flood of posts from one client with 429 and Retry-After once its posting budget is spent', async () => {
    const started = Date.now();
    const statuses: number[] = [];
    // 2,000 lines of 4 KB from one address, one after the other as fast as the server answers.
    for (let i = 0; i < 2000; i++) {
      const answer = await post(channel().href, line(4000), '127.0.0.3');
      statuses.push(answer.status);
      if (answer.status === 429) {
        expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(JSON.parse(answer.body)).toMatchObject({ code: 'limit_exceeded' });
      }
    }
    const seconds = (Date.now() - started) / 1000;
    const accepted = statuses.filter((status) => status === 201).length;
    // The budget: 10 lines at once, then one every 2 s.
    expect(accepted).toBeGreaterThanOrEqual(10);
    expect(accepted).toBeLessThanOrEqual(10 + Math.ceil(seconds / 2));
    expect(statuses.filter((status) => status === 429)).toHaveLength(2000 - accepted);
    // Another client still posts.
    expect((await post(channel().href, line(64), '127.0.0.4')).status).toBe(201);
  });

  it.skipIf(process.platform !== 'linux')('keeps its memory bounded while 50 clients flood posts to rooms and to made-up channels', async () => {
    const before = residentBytes(chat!.child.pid!);
    const statuses = new Map<number, number>();
    // 2,000 lines of 4 KB from 50 addresses, 8 at a time, half of them on channels of their own.
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < 2000; i = next++) {
          const where = i % 2 === 0 ? channel().href : new URL(`/channels/chat:flood-${i}`, chat!.url).href;
          const { status } = await post(where, line(4000), `127.0.1.${1 + (i % 50)}`);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
    expect(statuses.get(403)).toBe(1000);
    // At most each address's burst of 10 (and a line or two of refill) reached the room.
    expect(statuses.get(201) ?? 0).toBeLessThanOrEqual(50 * 12);
    const history = (await (await fetch(`${channel().href}?wait=0&limit=1000`, { signal: timeout(5000) })).json()) as { messages: unknown[] };
    expect(history.messages.length).toBeLessThanOrEqual(200);
    expect(residentBytes(chat!.child.pid!) - before).toBeLessThan(48 * 1024 * 1024);
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

/** A chat line of `bytes` bytes of JSON. */
function line(bytes: number): string {
  const frame = JSON.stringify({ name: 'flood', text: '' });
  return JSON.stringify({ name: 'flood', text: 'x'.repeat(bytes - frame.length) });
}

/**
 * POSTs `body` from the source address `from` (any 127.x.y.z on Linux: each is a client of its
 * own to the server's limiters), on a connection of its own.
 */
function post(url: string, body: string, from: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: 'POST', localAddress: from, agent: false, headers: { 'content-type': 'application/json' }, timeout: 5000 }, (answer) => {
      let text = '';
      answer.setEncoding('utf8');
      answer.on('data', (chunk: string) => (text += chunk));
      answer.on('end', () => resolve({ status: answer.statusCode!, headers: answer.headers, body: text }));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer from ${url} within 5 s`)));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** The resident set size of process `pid`, from /proc. */
function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

/** The cursor after every line the room keeps (200 at most, under the 1,000 a poll may ask for). */
async function currentCursor(): Promise<string> {
  const answer = await fetch(`${channel().href}?wait=0&limit=1000`, { signal: timeout(5000) });
  return ((await answer.json()) as { cursor: string }).cursor;
}
