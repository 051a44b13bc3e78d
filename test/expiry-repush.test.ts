import { afterEach, describe, expect, it, vi } from 'vitest';
import { Expiries, type Expiring, type ExpiryList } from '../src/expiry.js';
import { Broker } from '../src/index.js';
import { createProtocol } from '../src/http/protocol.js';

/*
 * An entry that expires and is held again at once on a list of the same duration (an event
 * stream writes its heartbeat and polls again inside the expiry: every stream of a broker has
 * the same heartbeat) restarted the list's timer for a full duration: the entries due before that
 * waited for it, up to twice their duration. Many-channel streams have been on these lists since
 * the many-channel rewrite (their heartbeats were a timer each before). Red team, session 4;
 * failed on main.
 */

class Entry implements Expiring {
  expiresAt = 0;
  previous: Expiring | undefined = undefined;
  next: Expiring | undefined = undefined;
  list: ExpiryList | undefined = undefined;
  firedAt: number | undefined = undefined;
  constructor(readonly onExpired: (entry: Entry) => void = () => {}) {}
  expired(): void {
    this.firedAt = performance.now();
    this.onExpired(this);
  }
}

describe('expiry lists', () => {
  afterEach(() => vi.useRealTimers());

  it('an entry held again on its own list while it expires does not delay the entries after it', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const expiries = new Expiries();
    const start = performance.now();
    // A heartbeat of 400 ms: the first stream polls again on the same list each time it expires.
    const first = new Entry((entry) => expiries.add(entry, 400));
    expiries.add(first, 400);
    vi.advanceTimersByTime(200);
    const second = new Entry();
    expiries.add(second, 400);
    vi.advanceTimersByTime(200); // the first expires, and is held again
    expect(first.firedAt! - start).toBe(400);
    vi.advanceTimersByTime(200);
    expect(second.firedAt).toBeDefined();
    expect(second.firedAt! - start).toBe(600);
  });

  it("a many-channel stream's heartbeats come every heartbeat, whatever the other streams do", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance', 'Date'] });
    const broker = new Broker();
    const protocol = createProtocol(broker, { prefix: '/c', heartbeat: 400 });
    /** Times each stream wrote something (ms since the start). */
    const writes: number[][] = [];
    const start = performance.now();
    const open = (url: string): void => {
      const times: number[] = [];
      writes.push(times);
      protocol
        .serve(
          { method: 'GET', url, header: (name: string) => (name === 'accept' ? 'text/event-stream' : undefined), body: { parsed: undefined }, raw: {}, clientKey: '127.0.0.1' },
          {
            write: (response) => {
              if (response.stream) response.stream.attach({ send: () => (times.push(performance.now() - start), true), end: () => {}, destroy: () => {} });
            },
          },
        );
    };
    open('/c?channels=a,b');
    await vi.advanceTimersByTimeAsync(200);
    open('/c?channels=c,d');
    await vi.advanceTimersByTimeAsync(2000);
    const gaps = writes.map((times) => times.slice(1).map((time, i) => time - times[i]!));
    for (const list of gaps) {
      expect(list.length).toBeGreaterThan(2);
      expect(Math.max(...list)).toBeLessThanOrEqual(410);
    }
    await broker.close();
  });
});
