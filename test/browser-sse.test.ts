import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { chromium, type Browser, type Page } from 'playwright-core';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter, type BrokerOptions } from '../src/index.js';
import { longPoll, type NodeLongPollOptions } from '../src/adapters/node.js';
import { openStream, type OpenStream } from './http/events.js';

// Event streams in Debian's Chromium, read by the browser's own `EventSource`: what it does when
// the server ends a stream, when messages are published while it is away, on `event: reset`,
// and when the server refuses it (429), with the README's function that re-creates it.

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const inCI = process.env.CI === 'true';

if (!hasChromium && inCI) {
  describe('the event-stream browser test under CI', () => {
    it('needs Chromium', () => {
      throw new Error(`${CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)`);
    });
  });
} else if (!hasChromium) {
  console.warn(`\n!!! SKIPPING test/browser-sse.test.ts: ${CHROMIUM} is missing (apt-get install chromium). Under CI=true this fails. !!!\n`);
}

/**
 * The page's side, as plain text (the test's own functions are transformed with helpers the
 * page lacks): `watch(name, url)` opens an EventSource and records what it dispatches,
 * `seen(name)` reads the record.
 */
const RECORDER = `{
  const records = {};
  const sources = {};
  window.watch = (name, url) => {
    const record = (records[name] = { messages: [], resets: [], order: [], errors: [], opens: 0 });
    const source = (sources[name] = new EventSource(url));
    source.addEventListener('open', () => record.opens++);
    source.addEventListener('message', (event) => {
      const message = JSON.parse(event.data);
      record.messages.push({ lastEventId: event.lastEventId, channel: message.channel, data: message.data });
      record.order.push('message');
    });
    source.addEventListener('reset', (event) => {
      record.resets.push({ lastEventId: event.lastEventId, data: JSON.parse(event.data) });
      record.order.push('reset');
    });
    source.addEventListener('error', () => record.errors.push(source.readyState));
  };
  window.seen = (name) => ({ ...records[name], readyState: sources[name].readyState });
}`;

/** What the recorder saw on one EventSource. */
interface Seen {
  readonly messages: { lastEventId: string; channel: string; data: unknown }[];
  readonly resets: { lastEventId: string; data: { earliestCursor: string } }[];
  readonly order: ('message' | 'reset')[];
  /** `readyState` at each `error` event: 0 (CONNECTING) while it reconnects, 2 (CLOSED) once it gave up. */
  readonly errors: number[];
  readonly opens: number;
  readonly readyState: number;
}

const CLOSED = 2;

/** The README's function that re-creates an EventSource after a refusal, as TypeScript. */
function readmeFollow(): string {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const block = /<!-- eventsource-snippet[^>]*-->\n```ts\n([\s\S]*?)\n```/.exec(readme)?.[1];
  if (block === undefined) throw new Error('README.md has no ```ts block after an <!-- eventsource-snippet --> comment');
  return block;
}

/** One request the server saw under /channels, and how it ended. */
interface Entry {
  readonly at: number;
  readonly url: string;
  /** Chromium's, not the test's own fetches. */
  readonly fromPage: boolean;
  readonly stream: boolean;
  readonly lastEventId: string | undefined;
  status?: number;
  retryAfter?: string;
  endedAt?: number;
}

/** A server for one test: a blank page at `/`, the Node adapter under /channels. */
interface Site {
  readonly origin: string;
  readonly broker: Broker<unknown>;
  readonly limiter: ConnectionLimiter;
  readonly log: Entry[];
  /** The page's event streams so far. */
  streams(): Entry[];
  close(): Promise<void>;
}

async function startSite(options: NodeLongPollOptions, brokerOptions: BrokerOptions = {}, limiter = new ConnectionLimiter()): Promise<Site> {
  const broker = new Broker<unknown>(brokerOptions);
  const handler = longPoll(broker, { prefix: '/channels', limiter, ...options });
  const log: Entry[] = [];
  const server: Server = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>event streams</title>');
      return;
    }
    if (req.url?.startsWith('/channels')) {
      const entry: Entry = {
        at: performance.now(),
        url: req.url,
        fromPage: (req.headers['user-agent'] ?? '').includes('Chrome'),
        stream: (req.headers.accept ?? '').includes('text/event-stream'),
        lastEventId: req.headers['last-event-id']?.toString(),
      };
      log.push(entry);
      // The adapter writes its headers with writeHead(status, headers), which getHeader cannot see.
      const writeHead = res.writeHead.bind(res) as (status: number, headers?: Record<string, string>) => typeof res;
      res.writeHead = ((status: number, headers?: Record<string, string>) => {
        entry.status = status;
        entry.retryAfter = headers?.['retry-after'];
        return writeHead(status, headers);
      }) as typeof res.writeHead;
      res.on('close', () => (entry.endedAt = performance.now()));
    }
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    broker,
    limiter,
    log,
    streams: () => log.filter((entry) => entry.fromPage && entry.stream),
    async close() {
      await broker.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Waits, bounded, until `check` holds. */
async function until(check: () => boolean | Promise<boolean>, what: string, within = 5000): Promise<void> {
  const deadline = performance.now() + within;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${within} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!hasChromium)("event streams in Chromium's EventSource", () => {
  let browser: Browser | undefined;
  let page: Page | undefined;
  let site: Site | undefined;
  let problems: string[] = [];

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    await page?.close();
    page = undefined;
    await site?.close();
    site = undefined;
  });

  /** A blank page of `site`, with the recorder, everything it threw recorded in `problems`. */
  async function openPage(on: Site): Promise<Page> {
    site = on;
    page = await browser!.newPage();
    problems = [];
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    await page.addInitScript({ content: RECORDER });
    await page.goto(`${on.origin}/`, { timeout: 10_000 });
    return page;
  }

  const seen = (name: string): Promise<Seen> => page!.evaluate(`window.seen(${JSON.stringify(name)})`);
  const watch = (name: string, url: string) => page!.evaluate(`window.watch(${JSON.stringify(name)}, ${JSON.stringify(url)})`);
  const data = (record: Seen) => record.messages.map((message) => message.data);

  it('receives live messages, reconnects by itself with Last-Event-ID when the server ends the stream, and loses and repeats nothing', async () => {
    const on = await startSite({ maxStream: 1000, retry: 700 });
    await openPage(on);
    const first = await on.broker.publish('room', 1);
    await watch('room', '/channels/room');
    await until(async () => (await seen('room')).messages.length === 1, 'the retained message arrives');

    const sentAt = performance.now();
    const second = await on.broker.publish('room', 2);
    await until(async () => (await seen('room')).messages.length === 2, 'the live message arrives', 1000);
    const latency = performance.now() - sentAt;
    expect((await seen('room')).messages.map((message) => message.lastEventId)).toEqual([first.cursor, second.cursor]);

    // The server ends the stream after maxStream; publish while the page is away.
    await until(() => on.streams()[0]?.endedAt !== undefined, 'the server ends the first stream', 3000);
    await on.broker.publish('room', 3);
    await on.broker.publish('room', 4);
    expect(on.streams()).toHaveLength(1); // published before the page came back (retry: 700 ms)
    await until(() => on.streams().length === 2, 'EventSource reconnects', 3000);
    expect(on.streams()[1]!.lastEventId).toBe(second.cursor);
    await until(async () => (await seen('room')).messages.length === 4, 'what was published meanwhile arrives', 2000);

    // Publish steadily across one more end and reconnect.
    for (let n = 5; n <= 14; n++) {
      await on.broker.publish('room', n);
      await sleep(150);
    }
    await until(async () => (await seen('room')).messages.length >= 14, 'everything arrives', 3000);
    await sleep(200); // a duplicate would come now
    const record = await seen('room');
    expect(data(record)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    const streams = on.streams();
    expect(streams.length).toBeGreaterThanOrEqual(3);
    // Every reconnect resumed from the last id the page had received.
    const ids = new Set(record.messages.map((message) => message.lastEventId));
    for (const stream of streams.slice(1)) expect(ids.has(stream.lastEventId!)).toBe(true);
    // It never gave up: every error was a reconnect in progress.
    expect(record.errors.length).toBeGreaterThanOrEqual(2);
    expect(record.errors.every((state) => state === 0)).toBe(true);
    expect(record.readyState).not.toBe(CLOSED);
    expect(record.opens).toBe(streams.length);
    expect(latency).toBeLessThan(1000);
    expect(problems).toEqual([]);
  }, 25_000);

  it('follows many channels on one stream, resuming with the composite id', async () => {
    const on = await startSite({ maxStream: 1000, retry: 700 });
    await openPage(on);
    await watch('many', '/channels?channels=room,presence');
    await until(() => on.streams().length === 1, 'the stream opens');
    await on.broker.publish('room', 'r1');
    await on.broker.publish('presence', 'p1');
    await until(async () => (await seen('many')).messages.length === 2, 'both channels arrive', 1000);

    await until(() => on.streams()[0]?.endedAt !== undefined, 'the server ends the first stream', 3000);
    const lastSeen = (await seen('many')).messages.at(-1)!.lastEventId;
    await on.broker.publish('presence', 'p2');
    await on.broker.publish('room', 'r2');
    expect(on.streams()).toHaveLength(1);
    await until(() => on.streams().length === 2, 'EventSource reconnects', 3000);
    expect(on.streams()[1]!.lastEventId).toBe(lastSeen);
    expect(new URL(on.streams()[1]!.url, on.origin).searchParams.get('channels')).toBe('room,presence');

    await until(async () => (await seen('many')).messages.length === 4, 'what was published meanwhile arrives', 2000);
    await on.broker.publish('room', 'r3');
    await until(async () => (await seen('many')).messages.length === 5, 'a live message after the reconnect', 1000);
    await sleep(200);
    const record = await seen('many');
    const of = (channel: string) => record.messages.filter((message) => message.channel === channel).map((message) => message.data);
    expect(record.messages).toHaveLength(5);
    expect(of('room')).toEqual(['r1', 'r2', 'r3']);
    expect(of('presence')).toEqual(['p1', 'p2']);
    expect(record.readyState).not.toBe(CLOSED);
    expect(problems).toEqual([]);
  }, 20_000);

  it("dispatches event: reset to its listener when the page was away longer than the history lasts", async () => {
    const on = await startSite({ maxStream: 1000, retry: 700 }, { capacity: 3 });
    await openPage(on);
    await watch('room', '/channels/room');
    await on.broker.publish('room', 1);
    await until(async () => (await seen('room')).messages.length === 1, 'the first message arrives');

    await until(() => on.streams()[0]?.endedAt !== undefined, 'the server ends the first stream', 3000);
    const sent = [];
    for (let n = 2; n <= 6; n++) sent.push(await on.broker.publish('room', n)); // 2 and 3 fall out of the history
    await until(async () => (await seen('room')).messages.length === 4, 'the retained messages arrive after the reconnect', 3000);

    const record = await seen('room');
    expect(on.streams()[1]!.lastEventId).toBe(record.messages[0]!.lastEventId);
    expect(record.resets).toHaveLength(1);
    const [reset] = record.resets;
    expect(reset!.data).toEqual({ earliestCursor: reset!.lastEventId });
    // The messages after the reset follow on from its cursor: the retained ones, 4 to 6.
    expect(reset!.lastEventId).toBe(sent[1]!.cursor);
    expect(record.order).toEqual(['message', 'reset', 'message', 'message', 'message']);
    expect(data(record)).toEqual([1, 4, 5, 6]);
    expect(record.readyState).not.toBe(CLOSED);
    expect(problems).toEqual([]);
  }, 20_000);

  it('gives up for good on a 429 before the stream (readyState CLOSED) and does not come back by itself', async () => {
    const on = await startSite({ retry: 200 }, {}, new ConnectionLimiter({ perChannel: 1 }));
    await openPage(on);
    const held = await openStream(`${on.origin}/channels/crowded`);
    try {
      await until(() => on.limiter.stats().total === 1, 'the test holds the one lease');
      await watch('crowded', '/channels/crowded');
      await until(async () => (await seen('crowded')).readyState === CLOSED, 'EventSource gives up', 3000);
      const [refused] = on.streams();
      expect(refused).toMatchObject({ status: 429, retryAfter: expect.stringMatching(/^[12]$/) });
      // Its retry is 200 ms: a reconnect would have come by now.
      await sleep(1000);
      expect(on.streams()).toHaveLength(1);
      const record = await seen('crowded');
      expect(record).toMatchObject({ opens: 0, errors: [CLOSED], messages: [], readyState: CLOSED });
    } finally {
      held.close();
      await held.done;
    }
  }, 20_000);

  it("re-creates it after Retry-After with the README's function, from the last message, losing nothing", async () => {
    const on = await startSite({ maxStream: 1000, retry: 300 }, {}, new ConnectionLimiter({ perChannel: 1 }));
    await openPage(on);
    const { outputText } = ts.transpileModule(readmeFollow(), { compilerOptions: { target: ts.ScriptTarget.ES2022 } });
    await page!.addScriptTag({ content: `${outputText}\nwindow.followed = []; window.stopFollowing = follow('/channels/busy', (message) => window.followed.push(message.data));` });
    const followed = () => page!.evaluate<unknown[]>('window.followed');

    const first = await on.broker.publish('busy', 'before');
    await until(async () => (await followed()).length === 1, 'the first message arrives');

    // When the server ends the stream, someone else takes the channel's one lease (for up to a
    // second: its stream ends too), so EventSource's reconnect is refused.
    let held: OpenStream | undefined;
    try {
      await until(() => on.streams()[0]?.endedAt !== undefined, 'the server ends the first stream', 3000);
      held = await openStream(`${on.origin}/channels/busy`);
      await until(() => on.streams()[1]?.status === 429, 'the reconnect is refused', 3000);
      expect(on.streams()[1]!.lastEventId).toBe(first.cursor);
      await on.broker.publish('busy', 'while refused');

      // The function asks why, and waits as Retry-After says.
      await until(() => on.log.some((entry) => entry.fromPage && !entry.stream && entry.endedAt !== undefined), 'the probe is answered', 3000);
      const probe = on.log.find((entry) => entry.fromPage && !entry.stream)!;
      const asked = new URL(probe.url, on.origin).searchParams;
      expect([asked.get('wait'), probe.status]).toEqual(['0', 429]);
      const retryAfter = Number(probe.retryAfter);
      expect(retryAfter).toBeGreaterThanOrEqual(1);

      await until(() => on.streams().length === 3, 'the EventSource is re-created', 5000);
      const recreated = on.streams()[2]!;
      expect(recreated.at - probe.endedAt!).toBeGreaterThanOrEqual(retryAfter * 1000 - 50);
      // A new EventSource sends no Last-Event-ID: it starts from the cursor in its URL.
      expect(recreated.lastEventId).toBeUndefined();
      expect(new URL(recreated.url, on.origin).searchParams.get('cursor')).toBe(first.cursor);

      await until(async () => (await followed()).length === 2, 'what was published while refused arrives', 2000);
      await on.broker.publish('busy', 'after');
      await until(async () => (await followed()).length === 3, 'a live message on the new EventSource', 1000);
      await sleep(200);
      expect(await followed()).toEqual(['before', 'while refused', 'after']);
      expect(problems).toEqual([]);
    } finally {
      await page!.evaluate('window.stopFollowing()');
      held?.close();
      await held?.done;
    }
  }, 20_000);
});
