import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../src/index.js';
import { longPoll } from '../src/adapters/node.js';
import { openStream } from './http/events.js';
import { eventually } from './examples/held-poll.js';
import { findNginx, readmeSite, startNginx, type NginxSite, type RunningNginx } from './support/nginx.js';

// Event streams through nginx configured with the README's snippet, with ONE change: its
// `proxy_read_timeout 65s` is lowered to READ_TIMEOUT here, so that a test of a few seconds can
// hold a stream past it. What keeps a quiet stream open is the heartbeat coming more often than
// that timeout; the control shows the trap when it does not.

const nginxBinary = findNginx();
if (!nginxBinary) {
  const message = 'nginx is not installed (neither on PATH nor /usr/sbin/nginx): the nginx event-stream tests cannot run.';
  if (process.env.CI === 'true') throw new Error(`${message} CI must install it (apt-get install nginx).`);
  console.warn(`\n!!! SKIPPING test/nginx-sse.test.ts: ${message} Install it with: apt-get install nginx\n`);
}

/** The read timeout substituted for the README's, in seconds. */
const READ_TIMEOUT = 2;
/** How late a published message may reach the client through nginx, in ms: it is not buffered. */
const PROMPT = 300;

/** The README's site with `proxy_read_timeout` lowered to `seconds` (and nothing else changed). */
function withReadTimeout(site: NginxSite, seconds: number): NginxSite {
  const server = site.server.replace(/^(\s*proxy_read_timeout\s+)\S+;/m, `$1${seconds}s;`);
  if (server === site.server) throw new Error(`The README's location block has no proxy_read_timeout to lower:\n${site.server}`);
  return { ...site, server };
}

/** A Node server with the stream's `heartbeat`, behind its own nginx. */
interface Stack {
  readonly broker: Broker<unknown>;
  readonly limiter: ConnectionLimiter;
  readonly nginx: RunningNginx;
  stop(): Promise<void>;
}

async function startStack(heartbeat: number): Promise<Stack> {
  const broker = new Broker<unknown>();
  const limiter = new ConnectionLimiter();
  const app: Server = createServer(longPoll(broker, { prefix: '/channels', limiter, heartbeat }));
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const { port } = app.address() as AddressInfo;
  const nginx = await startNginx(nginxBinary!, withReadTimeout(await readmeSite(port), READ_TIMEOUT));
  return {
    broker,
    limiter,
    nginx,
    async stop() {
      await nginx.stop();
      await broker.close();
      app.closeAllConnections();
      await new Promise((resolve) => app.close(resolve));
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!nginxBinary)(`event streams behind nginx (the README's snippet, proxy_read_timeout lowered to ${READ_TIMEOUT}s)`, () => {
  let beating: Stack | undefined;
  let quiet: Stack | undefined;

  beforeAll(async () => {
    [beating, quiet] = await Promise.all([startStack(500), startStack(2 * READ_TIMEOUT * 1000)]);
  });
  afterAll(async () => {
    await Promise.all([beating?.stop(), quiet?.stop()]);
  });

  it('holds a stream past the read timeout with 500 ms heartbeats, and hands each message on at once', async () => {
    const { broker, nginx } = beating!;
    const openedAt = performance.now();
    const stream = await openStream(`${nginx.origin}/channels/feed`, {}, 15_000);
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers.get('content-type')).toBe('text/event-stream');
      expect(stream.headers.get('cache-control')).toBe('no-store');
      await stream.waitFor((events) => events.some((event) => event.id !== undefined), 'the starting id', 1000);

      const latencies: number[] = [];
      const deliver = async (text: string) => {
        const count = stream.messages().length;
        const sentAt = performance.now();
        await broker.publish('feed', { text });
        await stream.waitFor((events) => events.filter((event) => event.event === 'message').length > count, `"${text}" arrives within ${PROMPT} ms`, PROMPT);
        latencies.push(performance.now() - sentAt);
      };
      await sleep(300);
      await deliver('one');
      // Quiet for longer than the read timeout: only the heartbeats keep nginx from cutting.
      await sleep(READ_TIMEOUT * 1000 + 800);
      await deliver('two');
      await sleep(1000);
      await deliver('three');
      await sleep(5050 - (performance.now() - openedAt));

      expect(performance.now() - openedAt).toBeGreaterThanOrEqual(5000);
      expect(stream.ended()).toBe(false);
      expect(stream.messages().map((message) => message.data)).toEqual([{ text: 'one' }, { text: 'two' }, { text: 'three' }]);
      expect(stream.events.filter((event) => event.comment === 'ping').length).toBeGreaterThanOrEqual(7);
      expect(await nginx.errorLog()).not.toMatch(/timed out/);
      console.log(`nginx: stream held ${Math.round(performance.now() - openedAt)} ms; messages arrived in ${latencies.map(Math.round).join(', ')} ms`);
    } finally {
      stream.close();
      await stream.done;
    }
  }, 15_000);

  it('reaches Node for a many-channel stream at /channels?channels= without a redirect', async () => {
    const { nginx } = beating!;
    const answer = await fetch(`${nginx.origin}/channels?channels=feed,other`, {
      headers: { accept: 'text/event-stream' },
      redirect: 'manual',
      signal: AbortSignal.timeout(5000),
    });
    try {
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe('text/event-stream');
    } finally {
      await answer.body?.cancel();
    }
  });

  it('the trap: with heartbeats longer than the read timeout, nginx cuts a quiet stream', async () => {
    const { limiter, nginx } = quiet!;
    const stream = await openStream(`${nginx.origin}/channels/feed`, {}, 10_000);
    const openedAt = performance.now();
    expect(stream.status).toBe(200);
    await stream.waitFor((events) => events.some((event) => event.id !== undefined), 'the starting id', 1000);
    expect(await Promise.race([stream.done.then(() => 'cut'), sleep(READ_TIMEOUT * 1000 + 1500).then(() => 'open')])).toBe('cut');
    const lasted = performance.now() - openedAt;
    expect(lasted).toBeGreaterThanOrEqual(READ_TIMEOUT * 1000 - 100);
    // Cut before the first heartbeat (at 4 s), and not a clean end of the body.
    expect(stream.events.filter((event) => event.comment === 'ping')).toEqual([]);
    expect(stream.ended()).toBe(false);
    expect(await nginx.errorLog()).toMatch(/upstream timed out/);
    // nginx closed its connection to Node, which freed the stream's lease.
    expect(await eventually(() => limiter.stats().total === 0, 2000)).toBe(true);
  }, 15_000);
});
