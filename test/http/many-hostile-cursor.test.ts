/**
 * Hostile composite cursors on `GET {prefix}?channels=…`, as `?cursor=` and as `Last-Event-ID` of
 * an event stream: decodeCursors compares each entry with the key of the listed channel after
 * the last one matched before it looks the entry up in a map (3bd6abb). An entry that is not a
 * listed channel's, or out of order, must be checked as before: a key that is not one this
 * library makes is a 400 `invalid_cursor` wherever it stands, and a reordered cursor resumes
 * every channel where it was.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { keyOf } from '../../src/composite-cursor.js';
import { PREFIX, startServer, type TestServer } from '../support/servers.js';
import { expectProblem, json, send, type PollBody } from './requests.js';

describe.each(['node', 'fetch'] as const)('hostile composite cursors, %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let server: TestServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
    await broker?.close();
  });

  const CHANNELS = ['a', 'b', 'c'];
  const many = (query: string) => `${server!.origin}${PREFIX}?channels=${CHANNELS.join(',')}&wait=0${query}`;

  /** A cursor the server made, one entry per channel, in list order. */
  async function made(): Promise<string> {
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker);
    for (const channel of CHANNELS) await broker.publish(channel, channel);
    const body = json<PollBody>(await send(many('')));
    expect(body.messages).toHaveLength(3);
    return body.cursor;
  }

  it('refuses an entry whose key no channel has, wherever it stands, as ?cursor= and as Last-Event-ID', async () => {
    const cursor = await made();
    const entries = cursor.split('~');
    expect(entries.map((entry) => entry.slice(0, entry.indexOf('.')))).toEqual(CHANNELS.map(keyOf));
    const hostile = [
      `${cursor}~A_b.x`,
      `${entries[0]}~${keyOf('b').toUpperCase()}.x~${entries.slice(1).join('~')}`,
      `${entries[0]}~${keyOf('b')}0x.${entries[1]!.slice(entries[1]!.indexOf('.') + 1)}`,
      `${entries[0]}~${keyOf('b')}`,
      `${entries[0]}~${keyOf('b')}.`,
      `${entries[0]}~~${entries[1]}`,
      `${cursor}~`,
    ];
    for (const composite of hostile) {
      expectProblem(await send(many(`&cursor=${encodeURIComponent(composite)}`)), 400, 'invalid_cursor');
      const stream = await send(many(''), { headers: { accept: 'text/event-stream', 'last-event-id': composite } });
      expectProblem(stream, 400, 'invalid_cursor');
    }
  });

  it('resumes every channel from a cursor whose entries come in any order, with entries of unlisted channels', async () => {
    const cursor = await made();
    const entries = cursor.split('~');
    const reordered = [`${keyOf('elsewhere')}.x`, entries[2], entries[0], entries[1]].join('~');
    const body = json<PollBody>(await send(many(`&cursor=${encodeURIComponent(reordered)}`)));
    expect(body).toMatchObject({ messages: [], timedOut: true });
    // The answer's cursor lists the channels in list order, each where it was.
    expect(body.cursor).toBe(cursor);
  });
});
