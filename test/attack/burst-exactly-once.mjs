// A publish burst on K channels at once, read by single-channel streams, many-channel streams and
// many-channel long polls that are cut at random and resume (Last-Event-ID / cursor), with
// pipelined requests behind some polls. Checks that every client gets each channel's messages
// exactly once and in order. Engine: memory (default), redis or postgres (127.0.0.1, unique
// prefix, cleaned up). Usage: node test/attack/burst-exactly-once.mjs [memory|redis|postgres] [K] [rounds] [clients]
import { createServer, request } from 'node:http';
import { connect } from 'node:net';
import { Broker } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';
import { engineOf } from './common.mjs';

const engineName = process.argv[2] ?? 'memory';
const K = Number(process.argv[3] ?? 8);
const ROUNDS = Number(process.argv[4] ?? 200);
const CLIENTS = Number(process.argv[5] ?? 30);
const FIRST = process.env.FIRST ?? 'oldest';
// A small CAPACITY makes slow readers fall behind: a gap is then allowed only after a `reset`
// event (streams) or a 410 (polls), on the next message of each channel.
const CAPACITY = Number(process.env.CAPACITY ?? 100000);
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); process.exit(2); }, 90_000);
const prefix = `rt2-${process.pid}-${Date.now()}`;
let engine;
let cleanup = async () => {};
if (engineName !== 'memory') ({ engine, cleanup } = await engineOf(engineName, prefix, { capacity: CAPACITY }));
const broker = new Broker(engine ? { engine } : { capacity: CAPACITY });
const tell = (client) => { client.resets++; for (const channel of channels) client.told.add(channel); };
const server = createServer(longPoll(broker, { prefix: '/c', publish: true, firstMessage: FIRST, heartbeat: 1000 }));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();
const channels = Array.from({ length: K }, (_, i) => `ch${i}`);

function newClient(kind, name) {
  return { kind, name, seen: new Map(), dups: 0, gaps: 0, toldGaps: 0, resets: 0, told: new Set(), disorder: 0, reconnects: 0, errors: [] };
}
function record(client, message) {
  const { channel, data } = message;
  const last = client.seen.get(channel) ?? -1;
  if (data.seq <= last) client.dups++;
  else {
    if (data.seq !== last + 1) { if (client.told.has(channel)) client.toldGaps++; else client.gaps++; }
    client.told.delete(channel);
    client.seen.set(channel, data.seq);
  }
}
let done = false;

// A stream, cut at random and resumed with Last-Event-ID.
function runStream(client, path) {
  let lastId;
  const open = () => new Promise((resolve) => {
    if (done) return resolve();
    const headers = { accept: 'text/event-stream' };
    if (lastId !== undefined) headers['last-event-id'] = lastId;
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      if (res.statusCode !== 200) { client.errors.push(`status ${res.statusCode}`); res.resume(); res.on('end', resolve); return; }
      res.setEncoding('utf8');
      let pending = '';
      const cutAfter = Math.random() < 0.7 ? Math.floor(Math.random() * 400) : Infinity;
      let events = 0;
      res.on('data', (piece) => {
        pending += piece;
        let end;
        while ((end = pending.indexOf('\n\n')) !== -1) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          let id, event, data;
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data = line.slice(6);
          }
          if (event === 'message') { record(client, JSON.parse(data)); events++; }
          if (event === 'reset') tell(client);
          if (id !== undefined) lastId = id;
          if (events >= cutAfter) { client.reconnects++; req.destroy(); resolve(); return; }
        }
      });
      res.on('end', resolve);
      res.on('error', resolve);
    });
    req.on('error', resolve);
    req.end();
  });
  return (async () => { while (!done) await open(); })();
}

// A stream on a raw socket that, after a few events, pipelines a request behind it: the stream
// must end normally (its last chunk), the pipelined request be answered, and the client resume.
function runPipelinedStream(client, path) {
  let lastId;
  client.endDelays = [];
  const open = () => new Promise((resolve) => {
    if (done) return resolve();
    const socket = connect({ port, host: '127.0.0.1' });
    socket.setEncoding('latin1');
    let raw = '';
    let headerDone = false;
    let body = '';
    let pending = '';
    let events = 0;
    let pipelinedAt = 0;
    let streamEnded = false;
    const cutAfter = 1 + Math.floor(Math.random() * 300);
    const finish = () => { socket.destroy(); resolve(); };
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('data', (piece) => {
      raw += piece;
      if (!headerDone) {
        const end = raw.indexOf('\r\n\r\n');
        if (end === -1) return;
        if (!raw.startsWith('HTTP/1.1 200')) { client.errors.push(raw.slice(0, 40)); finish(); return; }
        headerDone = true;
        raw = raw.slice(end + 4);
      }
      // chunked decoding
      for (;;) {
        if (streamEnded) {
          if (/HTTP\/1\.1 \d{3}/.test(raw) && raw.includes('\r\n\r\n')) { client.endDelays.push(Date.now() - pipelinedAt); finish(); }
          return;
        }
        const line = raw.indexOf('\r\n');
        if (line === -1) return;
        const size = parseInt(raw.slice(0, line), 16);
        if (raw.length < line + 2 + size + 2) return;
        if (size === 0) { streamEnded = true; raw = raw.slice(line + 4); continue; }
        body += Buffer.from(raw.slice(line + 2, line + 2 + size), 'latin1').toString('utf8');
        raw = raw.slice(line + 2 + size + 2);
        let end;
        while ((end = (pending += body, body = '', pending).indexOf('\n\n')) !== -1) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          let id, event, data;
          for (const l of block.split('\n')) {
            if (l.startsWith('id: ')) id = l.slice(4);
            else if (l.startsWith('event: ')) event = l.slice(7);
            else if (l.startsWith('data: ')) data = l.slice(6);
          }
          if (event === 'message') { record(client, JSON.parse(data)); events++; }
          if (event === 'reset') tell(client);
          if (id !== undefined) lastId = id;
          if (events >= cutAfter && !pipelinedAt) {
            pipelinedAt = Date.now();
            client.reconnects++;
            socket.write(`GET /c/zzz?wait=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
          }
        }
      }
    });
    const headers = lastId === undefined ? '' : `Last-Event-ID: ${lastId}\r\n`;
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n${headers}\r\n`);
  });
  return (async () => { while (!done) await open(); })();
}

// Long polls with a cursor, some with a pipelined request behind them on the same socket.
async function runPolls(client, path) {
  let cursor;
  while (!done) {
    const url = `${path}${path.includes('?') ? '&' : '?'}wait=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const pipeline = Math.random() < 0.3;
    const text = await new Promise((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      let body = '';
      socket.setEncoding('utf8');
      socket.on('data', (d) => { body += d; });
      socket.on('error', () => resolve(body));
      socket.on('close', () => resolve(body));
      socket.write(`GET ${url} HTTP/1.1\r\nHost: x\r\n${pipeline ? '' : 'Connection: close\r\n'}\r\n`);
      if (pipeline) setTimeout(() => socket.write(`GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), Math.random() * 5);
    });
    // Take the first response's body (the answer to the first request).
    const first = text.split('HTTP/1.1 ').filter(Boolean)[0] ?? '';
    const bodyStart = first.indexOf('\r\n\r\n');
    let bodyText = first.slice(bodyStart + 4);
    if (/transfer-encoding: chunked/i.test(first.slice(0, bodyStart))) {
      let out = '';
      for (let rest = bodyText; ;) {
        const line = rest.indexOf('\r\n');
        const size = parseInt(rest.slice(0, line), 16);
        if (!(size > 0)) break;
        out += rest.slice(line + 2, line + 2 + size);
        rest = rest.slice(line + 2 + size + 2);
      }
      bodyText = out;
    }
    if (first.startsWith('410')) { const problem = JSON.parse(bodyText); cursor = problem.earliestCursor; tell(client); continue; }
    if (!first.startsWith('200') && !first.startsWith('204')) { if (!done) client.errors.push(first.slice(0, 60)); await new Promise((r) => setTimeout(r, 20)); continue; }
    if (first.startsWith('204')) continue;
    let result;
    try { result = JSON.parse(bodyText); } catch { client.errors.push(`bad body ${bodyText.slice(0, 80)}`); continue; }
    for (const message of result.messages) record(client, message);
    cursor = result.cursor;
  }
}

const clients = [];
const runs = [];
for (let i = 0; i < CLIENTS; i++) {
  const kind = i % 4;
  if (kind === 0) { const ch = channels[i % K]; const c = newClient('stream1', ch); c.only = ch; clients.push(c); runs.push(runStream(c, `/c/${ch}`)); }
  else if (kind === 1) { const c = newClient('streamMany', 'all'); clients.push(c); runs.push(runStream(c, `/c?channels=${channels.join(',')}`)); }
  else if (kind === 2) { const c = newClient('pollMany', 'all'); clients.push(c); runs.push(runPolls(c, `/c?channels=${channels.join(',')}`)); }
  else { const c = newClient('pipelinedStream', 'all'); clients.push(c); runs.push(runPipelinedStream(c, `/c?channels=${channels.join(',')}`)); }
}
await new Promise((r) => setTimeout(r, 500));
const started = Date.now();
for (let round = 0; round < ROUNDS; round++) {
  await Promise.all(channels.map((channel) => broker.publish(channel, { seq: round })));
  if (round % 50 === 0) await new Promise((r) => setImmediate(r));
}
const publishedMs = Date.now() - started;
// Wait until everyone has everything (bounded).
const deadline = Date.now() + 20_000;
const complete = (c) => (c.only ? [c.only] : channels).every((ch) => (c.seen.get(ch) ?? -1) === ROUNDS - 1);
while (Date.now() < deadline && !clients.every(complete)) await new Promise((r) => setTimeout(r, 50));
const tookMs = Date.now() - started;
done = true;
const sum = (f) => clients.reduce((a, c) => a + f(c), 0);
const incomplete = clients.filter((c) => !complete(c));
console.log(JSON.stringify({ engine: engineName, first: FIRST, K, ROUNDS, CLIENTS, publishedMs, tookMs, dups: sum((c) => c.dups), gaps: sum((c) => c.gaps), toldGaps: sum((c) => c.toldGaps), resets: sum((c) => c.resets), reconnects: sum((c) => c.reconnects), incomplete: incomplete.map((c) => `${c.kind}:${[...c.seen].map(([k, v]) => `${k}=${v}`).join(',')}`).slice(0, 5), errors: clients.flatMap((c) => c.errors).slice(0, 5), errorCount: sum((c) => c.errors.length), resetsByKind: clients.reduce((a, c) => ({ ...a, [c.kind]: `${((a[c.kind] ?? "0/0").split("/").map(Number)[0] + c.resets)}/${((a[c.kind] ?? "0/0").split("/").map(Number)[1] + c.toldGaps)}` }), {}), pipelinedEndMaxMs: Math.max(0, ...clients.flatMap((c) => c.endDelays ?? [])), pipelinedEnds: clients.flatMap((c) => c.endDelays ?? []).length }));
console.log('stats before close', JSON.stringify(broker.stats()));
await broker.close();
server.closeAllConnections?.();
await new Promise((r) => server.close(r));
await Promise.race([Promise.all(runs), new Promise((r) => setTimeout(r, 3000))]);
await cleanup();
clearTimeout(hard);
process.exit(0);
