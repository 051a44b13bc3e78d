// CPU of the server per many-channel poll: maxChannels long names, composite cursors of the
// longest length (entries of other lists), with and without a rate limit.
import { fork } from 'node:child_process';
import { Agent, request } from 'undici';

if (process.argv[2] === 'server') {
  const { createServer } = await import('node:http');
  const { Broker, ConnectionLimiter } = await import('../../dist/index.js');
  const { longPoll } = await import('../../dist/adapters/node.js');
  const rate = process.argv[3] === 'rate';
  const broker = new Broker();
  const limiter = new ConnectionLimiter(rate ? { rate: { requests: 20, per: 1000 } } : { perClient: 1e5, total: 1e5, perChannel: 1e5 });
  const server = createServer(longPoll(broker, { prefix: '/c', limiter, maxChannels: 32, channelPattern: /^[a-zA-Z0-9:_-]{1,200}$/ }));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  for (let i = 0; i < 32; i++) await broker.publish(`${'n'.repeat(190)}${i}`, { i });
  process.on('message', (m) => { if (m === 'cpu') process.send({ cpu: process.cpuUsage() }); });
} else {
  for (const mode of ['plain', 'rate']) {
    const child = fork(new URL(import.meta.url), ['server', mode]);
    const reply = (key) => new Promise((resolve) => { const on = (m) => { if (key in m) { child.off('message', on); resolve(m[key]); } }; child.on('message', on); });
    const port = await reply('port');
    const names = Array.from({ length: 32 }, (_, i) => `${'n'.repeat(190)}${i}`);
    // A composite cursor of 32 × 512 characters, every entry for a channel not in the list.
    const entry = `abcdefg_hijklmn.${'Z'.repeat(512 - 16)}`;
    const cursor = Array.from({ length: 32 }, () => entry).join('~').slice(0, Number(process.env.CURSOR_CHARS ?? 8000));
    const dispatcher = new Agent({ connections: 8, pipelining: 1 });
    const urls = {
      'no cursor': `http://127.0.0.1:${port}/c?channels=${names.join(',')}&wait=0`,
      'max cursor': `http://127.0.0.1:${port}/c?channels=${names.join(',')}&wait=0&cursor=${cursor}`,
    };
    for (const [what, url] of Object.entries(urls)) {
      child.send('cpu');
      const before = await reply('cpu');
      const started = Date.now();
      const N = 2000;
      const codes = {};
      let i = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (i++ < N) {
          const res = await request(url, { dispatcher });
          codes[res.statusCode] = (codes[res.statusCode] ?? 0) + 1;
          await res.body.arrayBuffer();
        }
      }));
      child.send('cpu');
      const after = await reply('cpu');
      const cpu = (after.user + after.system - before.user - before.system) / 1000;
      console.log(`${mode.padEnd(5)} ${what.padEnd(10)} ${N} requests in ${Date.now() - started} ms, server CPU ${cpu.toFixed(0)} ms = ${(cpu / N * 1000).toFixed(0)} µs/request, statuses ${JSON.stringify(codes)}`);
    }
    await dispatcher.close();
    child.kill();
  }
}
