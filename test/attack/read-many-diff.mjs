// Differential run of Broker.readMany / pollMany (wait 0) against a build of 851211e (env BASE,
// default /tmp/rt3-base/dist): both engines get the same epoch, so the same operations must give
// the same messages (channel, data), the same composite cursors and the same errors (code,
// earliestCursor). Engines: MemoryEngine as it is (synchronous reads) and seen through the
// required engine contract only (no readNow, no Batch.cursors: second reads for shares).
// Usage: node test/attack/read-many-diff.mjs [operations]
const N = Number(process.argv[2] ?? 20000);
const BASE = process.env.BASE ?? '/tmp/rt3-base/dist';
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); process.exit(2); }, 120_000);
const mineLib = await import(new URL('../../dist/index.js', import.meta.url).pathname);
const baseLib = await import(`${BASE}/index.js`);
const CH = ['a', 'b', 'c', 'd', 'c693596', 'c1170850', 'e'];
const requiredOnly = (inner) => ({
  attach: (l) => inner.attach(l), append: (c, j) => inner.append(c, j),
  read: async (c, cur, lim) => { const { messages, cursor } = await inner.read(c, cur, lim); return { messages, cursor }; },
  checkCursor: (c, cur) => inner.checkCursor(c, cur), retains: (c) => inner.retains(c), stats: () => inner.stats(), close: () => inner.close(),
});
function brokerOf(lib, mode, capacity) {
  const engine = new lib.MemoryEngine({ capacity });
  Object.defineProperty(engine, 'epoch', { value: '01ARZ3NDEK' });
  return new lib.Broker({ engine: mode === 'sync' ? engine : requiredOnly(engine) });
}
const rnd = Math.random;
const pick = (l) => l[Math.floor(rnd() * l.length)];
const shape = (p) => p.then((r) => JSON.stringify({ m: r.messages.map((m) => [m.channel, m.data]), c: r.cursor, t: r.timedOut }), (e) => `error ${e.code} ${e.earliestCursor ?? ''}`);
const totals = {};
const codes = {};
for (const mode of ['sync', 'async']) {
  for (const capacity of [3, 50]) {
    const mine = brokerOf(mineLib, mode, capacity);
    const base = brokerOf(baseLib, mode, capacity);
    const pool = [undefined];
    let diffs = 0, ops = 0, errors = 0;
    for (; ops < N / 4; ops++) {
      if (rnd() < 0.35) {
        const ch = pick(CH), data = { ops };
        await Promise.all([mine.publish(ch, data), base.publish(ch, data)]);
        continue;
      }
      const list = CH.filter(() => rnd() < 0.4);
      if (list.length === 0) list.push(pick(CH));
      list.sort(() => rnd() - 0.5);
      const options = { cursor: pick(pool), limit: 1 + Math.floor(rnd() * 6), firstMessage: rnd() < 0.2 ? 'newest' : 'oldest' };
      const call = rnd() < 0.5 ? 'readMany' : 'pollMany';
      const extra = call === 'pollMany' ? { wait: 0 } : {};
      const [a, b] = await Promise.all([shape(mine[call](list, { ...options, ...extra })), shape(base[call](list, { ...options, ...extra }))]);
      if (a.startsWith('error')) { errors++; const code = a.split(' ')[1]; codes[code] = (codes[code] ?? 0) + 1; }
      else { const c = JSON.parse(a).c; if (c && pool.length < 200) pool.push(c); else if (c) pool[Math.floor(rnd() * 200)] = c; }
      if (a.startsWith('error invalid') === false && a.startsWith('error') && a.split(' ')[2]) pool.push(a.split(' ')[2]);
      if (a !== b) { diffs++; if (diffs <= 5) console.log('DIFF', mode, capacity, call, JSON.stringify(list), JSON.stringify(options), '\n mine', a.slice(0, 300), '\n base', b.slice(0, 300)); }
    }
    totals[`${mode}/${capacity}`] = { ops, diffs, errors };
    await mine.close(); await base.close();
  }
}
console.log(JSON.stringify({ totals, codes }));
clearTimeout(hard);
