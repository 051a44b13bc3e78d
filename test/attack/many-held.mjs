// Held many-channel polls through the Broker API, on MemoryEngine (synchronous reads) and on a
// MemoryEngine seen through the required engine contract only (asynchronous reads, a re-poll per
// wake-up, as RedisEngine/PostgresEngine): (1) timeouts of waits from 1 to 6 s fire on time while
// resync() re-polls every held poll every 50 ms; (2) exactly-once per channel under publish
// bursts on random channels, with clients that change their list and abort at random; waiters
// back to 0. Usage: node test/attack/many-held.mjs [clients] [seconds] [redis|postgres]: with an
// engine name, (2) runs on that engine too (127.0.0.1, unique prefix, cleaned up).
import { Broker, MemoryEngine } from '../../dist/index.js';
import { engineOf } from './common.mjs';
const CLIENTS = Number(process.argv[2] ?? 200);
const SECONDS = Number(process.argv[3] ?? 20);
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); process.exit(2); }, (2 * SECONDS + 30) * 1000);
const CH = Array.from({ length: 12 }, (_, i) => `ch${i}`);
const rnd = Math.random;
const pick = (n, k) => { const l = [...CH].sort(() => rnd() - 0.5).slice(0, k); return l.slice(0, n); };

function engines() {
  const listeners = [];
  const sync = new MemoryEngine({ capacity: 100000 });
  const inner = new MemoryEngine({ capacity: 100000 });
  const async = {
    attach: (l) => { listeners.push(l); return inner.attach(l); },
    append: (c, j) => inner.append(c, j),
    read: async (c, cur, lim) => { await new Promise((r) => setImmediate(r)); const { messages, cursor } = await inner.read(c, cur, lim); return { messages, cursor }; },
    checkCursor: (c, cur) => inner.checkCursor(c, cur),
    retains: (c) => inner.retains(c),
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
  return { sync: { engine: sync, listeners: [] }, async: { engine: async, listeners } };
}

async function timeouts(name, { engine, listeners }) {
  const broker = new Broker({ engine });
  if (name === 'sync') listeners.push({ resync: () => {} });
  const started = [];
  const results = [];
  for (let i = 0; i < CLIENTS; i++) {
    const wait = 1000 + Math.floor(rnd() * 5000);
    const t0 = performance.now();
    started.push(broker.pollMany(pick(3, 3), { wait }).then((r) => results.push({ wait, took: performance.now() - t0, timedOut: r.timedOut })));
  }
  const resyncs = setInterval(() => { for (const l of listeners) l.resync(); }, 50);
  await Promise.all(started);
  clearInterval(resyncs);
  const late = results.filter((r) => r.took > r.wait + 100).length;
  const early = results.filter((r) => r.took < r.wait - 2).length;
  const worst = Math.max(...results.map((r) => r.took - r.wait));
  const stats = broker.stats();
  await broker.close();
  return { name, polls: results.length, timedOut: results.filter((r) => r.timedOut).length, late, early, worstLateMs: Math.round(worst), waitersAfter: stats.waiters };
}

async function exactlyOnce(name, { engine }) {
  const broker = new Broker({ engine });
  const end = Date.now() + SECONDS * 500;
  let published = 0;
  const seqs = new Map(CH.map((c) => [c, 0]));
  const publisher = (async () => {
    while (Date.now() < end) {
      const burst = 1 + Math.floor(rnd() * 20);
      await Promise.all(Array.from({ length: burst }, () => {
        const c = CH[Math.floor(rnd() * CH.length)];
        const seq = seqs.get(c); seqs.set(c, seq + 1); published++;
        return broker.publish(c, { c, seq });
      }));
      await new Promise((r) => setTimeout(r, rnd() * 5));
    }
  })();
  let dups = 0, gaps = 0, aborts = 0, changes = 0, errors = [];
  const client = async () => {
    let list = pick(1 + Math.floor(rnd() * 6), 12);
    let cursor;
    const last = new Map();
    while (Date.now() < end + 300) {
      const controller = new AbortController();
      const abortTimer = rnd() < 0.1 ? setTimeout(() => controller.abort(new Error('cut')), rnd() * 20) : undefined;
      try {
        const r = await broker.pollMany(list, { cursor, wait: 200 + rnd() * 300, limit: 1 + Math.floor(rnd() * 30), signal: controller.signal });
        for (const m of r.messages) {
          const { c, seq } = m.data;
          const prev = last.get(c);
          if (prev !== undefined && seq <= prev) dups++;
          if (prev !== undefined && seq > prev + 1) gaps++;
          last.set(c, seq);
        }
        cursor = r.cursor;
      } catch (error) {
        if (error.message === 'cut') aborts++;
        else if (error.code === 'cursor_expired') cursor = error.earliestCursor;
        else { errors.push(String(error)); break; }
      } finally { clearTimeout(abortTimer); }
      if (rnd() < 0.05) {
        // A new list: channels kept keep their place; a channel added reads from everything
        // retained (start of its check again).
        const next = pick(1 + Math.floor(rnd() * 6), 12);
        for (const c of last.keys()) if (!next.includes(c)) last.delete(c);
        for (const c of next) if (!list.includes(c)) last.delete(c);
        list = next; changes++;
      }
    }
    // Drain: every channel it still lists is read to the end.
    for (;;) {
      const r = await broker.pollMany(list, { cursor, wait: 0, limit: 1000 });
      for (const m of r.messages) { const { c, seq } = m.data; const prev = last.get(c); if (prev !== undefined && seq <= prev) dups++; if (prev !== undefined && seq > prev + 1) gaps++; last.set(c, seq); }
      cursor = r.cursor;
      if (r.messages.length === 0) break;
    }
    for (const c of list) if (last.has(c) && last.get(c) !== seqs.get(c) - 1) gaps++;
  };
  await Promise.all([publisher, ...Array.from({ length: CLIENTS }, client)]);
  await new Promise((r) => setTimeout(r, 50));
  const stats = broker.stats();
  await broker.close();
  return { name, published, clients: CLIENTS, dups, gaps, aborts, changes, errors: errors.slice(0, 3), waitersAfter: stats.waiters };
}

const real = process.argv[4];
if (real) {
  const prefix = `rt3-${process.pid}-${Date.now()}`;
  const { engine, cleanup } = await engineOf(real, prefix);
  console.log(JSON.stringify(await exactlyOnce(real, { engine })));
  await cleanup();
  clearTimeout(hard);
  process.exit(0);
}
const e = engines();
for (const name of ['sync', 'async']) console.log(JSON.stringify(await timeouts(name, e[name])));
const f = engines();
for (const name of ['sync', 'async']) console.log(JSON.stringify(await exactlyOnce(name, f[name])));
clearTimeout(hard);
