// Many-channel long polls (some with a pipelined request behind, some SSE) over raw sockets,
// destroyed at random times (up to CUT_MS, default 1500) while publishes land, then every socket gone: broker waiters and
// limiter leases must be back to 0. Usage: node test/attack/many-leave.mjs [sockets] [seconds]
import { createServer } from 'node:http';
import { connect } from 'node:net';
const DIST = process.env.DIST ?? '../../dist';
const { Broker, ConnectionLimiter } = await import(`${DIST}/index.js`);
const { longPoll } = await import(`${DIST}/adapters/node.js`);
const SOCKETS = Number(process.argv[2] ?? 1000);
const SECONDS = Number(process.argv[3] ?? 15);
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); process.exit(2); }, (SECONDS + 30) * 1000);
const broker = new Broker();
const limiter = new ConnectionLimiter({ maxPerClient: 100000, maxTotal: 100000 });
const server = createServer(longPoll(broker, { prefix: '/c', limiter, heartbeat: 200 }));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();
const CH = Array.from({ length: 40 }, (_, i) => `ch${i}`);
const list = () => CH.filter(() => Math.random() < 0.15).concat(['ch0']).filter((c, i, a) => a.indexOf(c) === i).join(',');
const end = Date.now() + SECONDS * 1000;
let opened = 0, answers = 0;
const publisher = setInterval(() => { for (let i = 0; i < 5; i++) broker.publish(CH[Math.floor(Math.random() * CH.length)], { t: Date.now() }); }, 10);
function one() {
  if (Date.now() > end) return Promise.resolve();
  return new Promise((resolve) => {
    opened++;
    const socket = connect(port, '127.0.0.1');
    const kind = Math.random();
    const req = (wait) => `GET /c?channels=${list()}&wait=${wait} HTTP/1.1\r\nHost: x\r\n${kind < 0.2 ? 'Accept: text/event-stream\r\n' : ''}\r\n`;
    socket.on('connect', () => {
      socket.write(req(Math.random() < 0.5 ? 0 : 5) + (kind > 0.7 ? req(0) : ''));
    });
    socket.on('data', () => answers++);
    socket.on('error', () => {});
    setTimeout(() => socket.destroy(), Math.random() * Number(process.env.CUT_MS ?? 1500));
    socket.on('close', () => resolve(one()));
  });
}
await Promise.all(Array.from({ length: SOCKETS }, one));
clearInterval(publisher);
await new Promise((r) => setTimeout(r, 500));
console.log(JSON.stringify({ sockets: SOCKETS, opened, answers, broker: broker.stats(), limiter: limiter.stats() }));
await broker.close();
server.close();
clearTimeout(hard);
