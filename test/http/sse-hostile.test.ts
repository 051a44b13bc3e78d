/** Hostile requests on event streams, found by the red team's attack scripts (test/attack/). */
import { afterEach, describe, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type TestServer } from '../support/servers.js';
import { openStream } from './events.js';
import { expectProblem, send } from './requests.js';

describe.each(ADAPTERS)('hostile event-stream requests, %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let server: TestServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
    await broker?.close();
  });

  it('refuses a composite cursor whose entry for an unlisted channel carries a line break (no forged events)', async () => {
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker);
    await broker.publish('a', 1);
    const { cursor } = await broker.readMany(['a'], {});
    // The entry of a channel not in the list is not the engine's to check: it used to be echoed,
    // line breaks and all, in the stream's first `id:` line, which let a URL write any event.
    const forged = `${cursor}~abc_def.x\nevent: message\ndata: {"id":"forged","channel":"a","data":"FORGED"}\n`;
    const url = `${server.origin}${PREFIX}?channels=a&cursor=${encodeURIComponent(forged)}`;
    const answer = await send(url, { headers: { accept: 'text/event-stream' } });
    expectProblem(answer, 400, 'invalid_cursor');
    expect(answer.text).not.toContain('FORGED');
    // A carriage return alone ends an SSE line too; a poll refuses it the same way.
    const cr = `${cursor}~abc_def.x\revent: reset`;
    expectProblem(await send(url.replace(/cursor=[^&]*/, `cursor=${encodeURIComponent(cr)}`)), 400, 'invalid_cursor');
  });

  it('still streams from a composite cursor that names an unlisted channel without control characters', async () => {
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker);
    await broker.publish('a', 1);
    await broker.publish('z', 2);
    const { cursor } = await broker.readMany(['a', 'z'], {});
    const url = `${server.origin}${PREFIX}?channels=a&cursor=${encodeURIComponent(cursor)}`;
    const stream = await openStream(url);
    expect(stream.status).toBe(200);
    await stream.waitFor((events) => events.some((event) => event.id !== undefined), 'the starting id');
    stream.close();
  });
});

describe('which Accept headers ask for a stream (node adapter)', () => {
  let broker: Broker<unknown>;
  let server: TestServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
    await broker?.close();
  });

  it('reads Accept as media ranges: any case, parameters, q=0 refuses, a longer type is another type', async () => {
    broker = new Broker<unknown>();
    server = await startServer('node', broker);
    const typeFor = async (accept: string) => {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 3000);
      try {
        const response = await fetch(server!.url('room', 'wait=0'), { headers: { accept }, signal: controller.signal });
        return response.headers.get('content-type');
      } finally {
        clearTimeout(timer);
        controller.abort(); // a stream never ends by itself
      }
    };
    const streams = ['text/event-stream', 'TEXT/EVENT-STREAM', 'Text/Event-Stream; charset=utf-8', 'application/json, text/event-stream;q=0.5'];
    const polls = ['application/json', 'application/json, text/event-stream;q=0', 'text/event-stream; q=0.000', 'text/event-streamx', 'application/x-text/event-stream'];
    for (const accept of streams) expect([accept, await typeFor(accept)]).toEqual([accept, 'text/event-stream']);
    for (const accept of polls) expect([accept, await typeFor(accept)]).toEqual([accept, 'application/json; charset=utf-8']);
  });
});
