/**
 * `firstMessage: 'newest'` on a many-channel stream whose cursor does not name every listed
 * channel (a client added one to its list and kept its cursor): the channel it lacks starts at
 * its newest message, a position only the server knows, so the stream must say it at once, as
 * a cursorless stream does, and every event's `id:` must name it; else a client cut before (or
 * just after) a message resumes that channel from a later newest message and misses what came
 * between.
 */
import { afterEach, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { PREFIX, startServer, type TestServer } from '../support/servers.js';
import { openStream } from './events.js';
import { until } from './requests.js';

let broker: Broker<unknown>;
let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await broker?.close();
});

it("sends the full starting cursor at once when the cursor lacks a listed channel (firstMessage 'newest')", async () => {
  broker = new Broker<unknown>();
  server = await startServer('node', broker, { firstMessage: 'newest' });
  await broker.publish('a', 'a0');
  await broker.publish('b', 'b0');
  const { cursor } = await broker.readMany(['a'], {}); // names a only
  const url = `${server.origin}${PREFIX}?channels=a,b`;
  const first = await openStream(url, { 'last-event-id': cursor });
  await first.waitFor((events) => events.length >= 1, 'the head');
  // The stream has read once and now waits at the newest message of both channels.
  await until(() => broker.stats().waiters === 1, 'the stream holds its poll');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const ids = first.events.map((event) => event.id).filter((id) => id !== undefined);
  const lastId = ids[ids.length - 1]!;
  first.close(); // cut before any message
  await until(() => broker.stats().waiters === 0, 'the stream is gone');
  await broker.publish('b', 'b1'); // published while the client reconnects
  const second = await openStream(url, { 'last-event-id': lastId });
  await second.waitFor((events) => events.some((event) => event.event === 'message'), 'b1 arrives', 2000);
  expect(second.messages().map((message) => message.data)).toEqual(['b1']);
  second.close();
});

it("resumes without a gap from the id of a message of a first answer whose cursor lacked a listed channel (firstMessage 'newest')", async () => {
  broker = new Broker<unknown>();
  server = await startServer('node', broker, { firstMessage: 'newest' });
  const { cursor } = await broker.readMany(['a'], { firstMessage: 'newest' }); // names a only
  await broker.publish('a', 'a1');
  await broker.publish('a', 'a2');
  const url = `${server.origin}${PREFIX}?channels=a,b`;
  const first = await openStream(url, { 'last-event-id': cursor });
  await first.waitFor((events) => events.filter((event) => event.event === 'message').length >= 2, 'a1 and a2');
  await until(() => broker.stats().waiters === 1, 'the stream holds its poll');
  const a1 = first.events.find((event) => event.event === 'message' && event.data!.includes('"a1"'))!;
  first.close();
  await until(() => broker.stats().waiters === 0, 'the stream is gone');
  await broker.publish('b', 'b1'); // after the stream had read b: the client is owed it
  // A client cut just after a1 resumes from a1's id (or from the last id before it).
  const second = await openStream(url, a1.id === undefined ? { 'last-event-id': cursor } : { 'last-event-id': a1.id });
  await second.waitFor((events) => events.some((event) => event.event === 'message' && event.data!.includes('"b1"')), 'b1 arrives', 2000);
  const data = second.messages().map((message) => message.data);
  expect(data).toContain('a2');
  expect(data).toContain('b1');
  second.close();
});
