/**
 * The README's client keys behind a proxy, run as written: a client that writes its own
 * X-Forwarded-For entry must still be counted as the address the proxy saw.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import ts from 'typescript';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { startServer, type TestServer } from '../support/servers.js';
import { eventually, expectProblem, hold, send, type HeldRequest } from './requests.js';

type KeyOf = (req: IncomingMessage) => string | undefined;

/** The README block after "The client key behind a proxy", compiled and evaluated. */
async function readmeKeys(): Promise<{ fromRealIp: KeyOf; fromLastHop: KeyOf }> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const block = /\*\*The client key behind a proxy\.\*\*[\s\S]*?```ts\n([\s\S]*?)\n```/.exec(readme)?.[1];
  expect(block, 'the README block').toBeDefined();
  const { outputText } = ts.transpileModule(`${block!}\nexport { fromRealIp, fromLastHop };`, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  return (await import(/* @vite-ignore */ `data:text/javascript,${encodeURIComponent(outputText)}`)) as {
    fromRealIp: KeyOf;
    fromLastHop: KeyOf;
  };
}

describe('the README client key behind a proxy', () => {
  let server: TestServer | undefined;
  let broker: Broker<unknown> | undefined;
  const held: HeldRequest[] = [];

  afterEach(async () => {
    for (const request of held.splice(0)) request.destroy();
    await server?.close();
    await broker?.close();
  });

  it.each(['fromLastHop', 'fromRealIp'] as const)('%s counts a client that forges X-Forwarded-For as the address the proxy saw', async (name) => {
    const keys = await readmeKeys();
    const limiter = new ConnectionLimiter({ perClient: 6 });
    broker = new Broker();
    server = await startServer('node', broker, { limiter, clientKey: keys[name] });
    // What a proxy that appends (or sets X-Real-IP) forwards for one client at 203.0.113.7 that
    // writes a different first entry on every request.
    const headers = (i: number) => ({ 'x-forwarded-for': `10.0.0.${i}, 203.0.113.7`, 'x-real-ip': '203.0.113.7' });
    for (let i = 0; i < 6; i++) held.push(hold(server.url(`room${i}`, 'wait=10'), { headers: headers(i) }));
    expect(await eventually(() => limiter.stats().total === 6, 2_000)).toBe(true);
    const refused = await send(server.url('room9', 'wait=10'), { headers: headers(9) });
    expect(expectProblem(refused, 429, 'limit_exceeded').limit).toBe('client');
    // Another client behind the same proxy is not locked out by the first one's forgeries.
    const other = hold(server.url('room', 'wait=0'), { headers: { 'x-forwarded-for': '203.0.113.7, 198.51.100.2', 'x-real-ip': '198.51.100.2' } });
    expect((await other.answer)?.status).toBe(200);
  });
});
