// Differential fuzz of the many-channel (and one-channel) GET against the release before the
// rewrite: the same hostile queries and composite cursors go to a server built from this tree
// and one built from 851211e (BASE, default /tmp/rt3-base/dist); status, problem code and the
// data of the messages must agree, and no answer may be a 5xx. Cursors are made per server from
// the same template (its own epoch). Usage: node test/attack/query-diff.mjs [N] [seconds]
import { createServer, request } from 'node:http';
const N = Number(process.argv[2] ?? 3000);
const SECONDS = Number(process.argv[3] ?? 50);
const BASE = process.env.BASE ?? '/tmp/rt3-base/dist';
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); process.exit(2); }, (SECONDS + 20) * 1000);
const CHANNELS = ['a', 'b', 'c', 'room.1', 'x_y', 'c693596', 'c1170850'];

async function serverOf(dist) {
  const { Broker, MemoryEngine } = await import(`${dist}/index.js`);
  const { longPoll } = await import(`${dist}/adapters/node.js`);
  const broker = new Broker({ engine: new MemoryEngine({ capacity: 4 }) });
  const server = createServer(longPoll(broker, { prefix: '/c', maxChannels: 32 }));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const cursors = {};
  for (const ch of CHANNELS) {
    cursors[ch] = [];
    for (let i = 0; i < 6; i++) cursors[ch].push((await broker.publish(ch, { ch, i })).cursor);
  }
  return { broker, server, port: server.address().port, cursors };
}
const mine = await serverOf(new URL('../../dist', import.meta.url).pathname);
const base = await serverOf(BASE);

let seed = Number(process.env.SEED ?? Date.now() % 100000);
// mulberry32
const rnd = () => { seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const pick = (list) => list[Math.floor(rnd() * list.length)];

function get(port, path) {
  return new Promise((resolve) => {
    let req;
    const timer = setTimeout(() => { req?.destroy(); resolve({ status: 'held' }); }, 400);
    try {
      req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => { clearTimeout(timer); resolve({ status: res.statusCode, body }); });
      });
      req.on('error', (e) => { clearTimeout(timer); resolve({ status: `error ${e.code}` }); });
      req.end();
    } catch (e) { clearTimeout(timer); resolve({ status: 'client-refused' }); }
  });
}

// A composite cursor template: entries of [channel, cursor index or mutation].
function keyOf(server, ch) { return server.key(ch); }
const enc = (s) => pick([s, encodeURIComponent(s), s.replace(/c/g, '%63'), s.replace(/\./g, '%2E'), s.replace(/~/g, '%7E'), s.replace(/~/g, '%7e')]);
function makeCase() {
  const k = 1 + Math.floor(rnd() * 4);
  const list = [];
  while (list.length < k) { const c = pick(CHANNELS); if (!list.includes(c) || rnd() < 0.05) list.push(c); }
  const entries = [];
  const n = Math.floor(rnd() * 5);
  for (let i = 0; i < n; i++) entries.push({ ch: rnd() < 0.8 ? pick(list) : pick(CHANNELS), as: rnd() < 0.1 ? pick(CHANNELS) : undefined, idx: Math.floor(rnd() * 6), mut: pick(['none', 'none', 'none', 'upper', 'zeros', 'ahead', 'huge', 'trunc', 'epoch', 'dot', 'empty']) });
  const sep = pick(['~', '~', '~', '~~', '.', '']);
  const extra = pick(['', '', '', '&wait=0', '&limit=2', '&limit=0', '&cur%73or=zz', '&channels=a', '&', '&&=&', '&wait=0&wait=0', `&x=${'%'.repeat(5)}`, '&limit=1']);
  return { list, entries, sep, extra, trailing: pick(['', '', '', '~', '.', '~.']), listEnc: rnd() < 0.3 };
}
function cursorFor(server, c) {
  return c.entries.map((e) => {
    let cur = server.cursors[e.ch][e.idx];
    const [ep, tag, pos] = cur.split('.');
    if (e.mut === 'upper') cur = cur.toUpperCase();
    if (e.mut === 'zeros') cur = `${ep}.${tag}.000${pos}`;
    if (e.mut === 'ahead') cur = `${ep}.${tag}.${(parseInt(pos, 36) + 1000).toString(36)}`;
    if (e.mut === 'huge') cur = `${ep}.${tag}.zzzzzzzzzzz`;
    if (e.mut === 'trunc') cur = cur.slice(0, -1 - Math.floor(rnd() * 0));
    if (e.mut === 'epoch') cur = `01ARZ3NDEK.${tag}.${pos}`;
    if (e.mut === 'dot') cur = `${cur}.`;
    if (e.mut === 'empty') cur = '';
    return `${server.keyOf(e.as ?? e.ch)}.${cur}`;
  }).join(c.sep) + c.trailing;
}
const ck1 = await import(new URL('../../dist/composite-cursor.js', import.meta.url).pathname);
const ck2 = await import(`${BASE}/composite-cursor.js`);
mine.keyOf = ck1.keyOf; base.keyOf = ck2.keyOf;

const summary = (r) => {
  if (typeof r.status !== 'number') return String(r.status);
  let j; try { j = JSON.parse(r.body); } catch { return `${r.status} nonjson`; }
  if (r.status !== 200) return `${r.status} ${j.code ?? j.type}`;
  // With a limit below the number of channels that have messages, which channel goes first
  // depends on the cursors' text (their epoch): compare how many.
  if (/limit=[12]/.test(r.path)) return `200 ${j.messages.length} messages ${j.timedOut}`;
  return `200 ${JSON.stringify(j.messages.map((m) => m.data))} ${j.timedOut}`;
};
const started = Date.now();
let diffs = 0, fives = 0, runs = 0, resumed = 0, badResume = 0;
const statuses = new Map();
for (; runs < N && Date.now() - started < SECONDS * 1000; runs++) {
  const c = makeCase();
  const q = (server) => {
    const channels = c.listEnc ? enc(c.list.join(',')) : c.list.join(',');
    const cursor = c.entries.length ? `&cursor=${enc(cursorFor(server, c))}` : '';
    return `/c?channels=${channels}${cursor}&wait=0${c.extra}`;
  };
  const saved = seed;
  const pa = q(mine); seed = saved; const pb = q(base);
  const [a, b] = await Promise.all([get(mine.port, pa), get(base.port, pb)]);
  a.path = pa; b.path = pb;
  const sa = summary(a), sb = summary(b);
  const kind = sa.startsWith('200') ? '200' : sa;
  statuses.set(kind, (statuses.get(kind) ?? 0) + 1);
  if (typeof a.status === 'number' && a.status >= 500) { fives++; console.log('5xx', pa, a.body); }
  if (a.status === 410) {
    const { earliestCursor } = JSON.parse(a.body);
    const channels = c.list.join(',');
    const again = await get(mine.port, `/c?channels=${encodeURIComponent(channels)}&cursor=${encodeURIComponent(earliestCursor)}&wait=0`);
    resumed++;
    if (again.status !== 200) { badResume++; console.log('RESUME', pa, earliestCursor, again.status, again.body); }
  }
  if (sa !== sb) { diffs++; if (diffs <= 15) console.log('DIFF\n mine', pa, sa, '\n base', pb, sb); }
}
console.log(JSON.stringify({ runs, diffs, fives, resumed, badResume, ms: Date.now() - started, statuses: Object.fromEntries(statuses) }));
for (const s of [mine, base]) { await s.broker.close(); s.server.close(); s.server.closeAllConnections?.(); }
clearTimeout(hard);
