// N streams that never read (TCP zero window) on one channel, or on many; then a burst of large
// publishes. Prints the server's heap + arrayBuffers after GC, before and after.
// Usage: node test/attack/heap-streams.mjs [streams] [single|many] [count] [size]
import { fork } from 'node:child_process';
import { connect } from 'node:net';

const N = Number(process.argv[2] ?? 2000);
const mode = process.argv[3] ?? 'single';
const count = Number(process.argv[4] ?? 50);
const size = Number(process.argv[5] ?? 60_000);
const child = fork(new URL('./heap-server.mjs', import.meta.url), { execArgv: ['--expose-gc'] });
const reply = (key) => new Promise((resolve) => { const on = (m) => { if (key in m) { child.off('message', on); resolve(m); } }; child.on('message', on); });
const kill = setTimeout(() => { child.kill(); process.exit(2); }, 120_000);
const { port } = await reply('port');
const MB = (n) => (n / 1048576).toFixed(1);
const show = async (what) => { child.send({ type: 'memory' }); const { memory: m } = await reply('memory'); console.log(what.padEnd(34), `heap ${MB(m.heap)} MB  arrayBuffers ${MB(m.ab)} MB  heap+ab ${MB(m.heap + m.ab)} MB  rss ${MB(m.rss)} MB  streams ${m.streams}  waiters ${m.waiters}`); return m; };
const sockets = [];
const path = mode === 'many' ? '/c?channels=room,other,third' : '/c/room';
await show('before');
for (let i = 0; i < N; i++) {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
  socket.pause(); // reads nothing: the window closes once the kernel buffers fill
  sockets.push(socket);
  if (i % 200 === 199) await new Promise((r) => setTimeout(r, 20));
}
await new Promise((r) => setTimeout(r, 1500));
const open = await show(`${N} ${mode} streams open`);
child.send({ type: 'publish', count, size, channels: ['room'] });
await reply('published');
await new Promise((r) => setTimeout(r, 1500));
const after = await show(`after ${count} x ${size} B publishes`);
console.log(`growth per stream: ${((after.heap + after.ab - open.heap - open.ab) / N / 1024).toFixed(1)} KiB; published ${MB(count * size)} MB in total`);
const started = Date.now();
child.send({ type: 'close' });
const closed = await Promise.race([reply('closed'), reply('stillOpen')]);
console.log('broker.close + server.close:', JSON.stringify(closed).slice(0, 300), `${Date.now() - started} ms`);
for (const s of sockets) s.destroy();
child.kill();
clearTimeout(kill);
