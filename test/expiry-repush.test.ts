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

describe('ExpiryList.renew (an event stream kept held restarts its wait): red team', () => {
  afterEach(() => vi.useRealTimers());

  it('moves a renewed entry behind the others: an entry due earlier is not held up by it', () => {
    // Mutant: renew sets `expiresAt` in place, leaving the list out of order; `#fire` stops at the
    // first entry not due, so the entries behind it wait for it.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const expiries = new Expiries();
    const start = performance.now();
    const a = new Entry();
    const b = new Entry();
    expiries.add(a, 400);
    vi.advanceTimersByTime(100);
    expiries.add(b, 400);
    vi.advanceTimersByTime(100);
    a.list!.renew(a); // a: due at 600, b at 500
    vi.advanceTimersByTime(300);
    expect(a.firedAt).toBeUndefined();
    expect(b.firedAt! - start).toBe(500);
    vi.advanceTimersByTime(100);
    expect(a.firedAt! - start).toBe(600);
    expect(expiries.size).toBe(0);
  });

  it('renews an entry while its list fires: it leaves that round and expires a duration later, after the entries due before it', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const expiries = new Expiries();
    const start = performance.now();
    const b = new Entry();
    // a expires and, inside, b (due at the same time) gets a message: its wait starts over.
    const a = new Entry(() => b.list?.renew(b));
    expiries.add(a, 400);
    expiries.add(b, 400);
    vi.advanceTimersByTime(300);
    const c = new Entry();
    expiries.add(c, 400); // due at 700
    vi.advanceTimersByTime(100);
    expect(a.firedAt! - start).toBe(400);
    expect(b.firedAt).toBeUndefined();
    vi.advanceTimersByTime(300);
    expect(c.firedAt! - start).toBe(700);
    expect(b.firedAt).toBeUndefined();
    vi.advanceTimersByTime(100);
    expect(b.firedAt! - start).toBe(800);
    expect(expiries.size).toBe(0);
  });

  it('renewing the only entry keeps its list and timer: it expires a whole duration after the renewal', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const expiries = new Expiries();
    const start = performance.now();
    const a = new Entry();
    expiries.add(a, 400);
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(300);
      a.list!.renew(a);
    }
    expect(a.firedAt).toBeUndefined();
    expect(expiries.size).toBe(1);
    vi.advanceTimersByTime(399);
    expect(a.firedAt).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(a.firedAt! - start).toBe(1900);
    expect(expiries.size).toBe(0);
  });
});
