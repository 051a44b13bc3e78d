/**
 * The fetch adapter cannot see the socket: a leased answer's lease lasts until the runtime has
 * taken the last piece of its body, and a runtime that takes nothing for `sendTimeout` gets a
 * failed body and gives the lease back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { longPoll } from '../../src/adapters/fetch.js';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { eventually } from './requests.js';

describe('fetch adapter: answers the runtime does not take', () => {
  let broker: Broker<unknown>;
  afterEach(async () => {
    await broker?.close();
  });

  async function big(limiter: ConnectionLimiter, sendTimeout: number) {
    broker = new Broker<unknown>();
    const text = 'x'.repeat(10_000);
    for (let i = 0; i < 100; i++) await broker.publish('big', { i, text });
    const handler = longPoll(broker, { prefix: '/channels', limiter, sendTimeout });
    return handler(new Request('http://127.0.0.1/channels/big?wait=0&limit=1000'), { remoteAddr: { hostname: '203.0.113.7' } });
  }

  it('keeps the lease while the body is not taken, then fails the body after sendTimeout and frees it', async () => {
    const limiter = new ConnectionLimiter({ perClient: 1 });
    const response = await big(limiter, 300);
    expect(response.status).toBe(200);
    expect(limiter.stats().total).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(limiter.stats().total).toBe(1); // not taken yet: still held
    expect(await eventually(() => limiter.stats().total === 0, 2_000)).toBe(true);
    await expect(response.arrayBuffer()).rejects.toThrow();
  });

  it('frees the lease once the whole body is taken, and the body is the whole answer', async () => {
    const limiter = new ConnectionLimiter({ perClient: 1 });
    const response = await big(limiter, 30_000);
    const body = JSON.parse(await response.text()) as { messages: unknown[] };
    expect(body.messages).toHaveLength(100);
    expect(Number(response.headers.get('content-length'))).toBe(new TextEncoder().encode(JSON.stringify(body)).byteLength);
    expect(limiter.stats().total).toBe(0);
  });
});
