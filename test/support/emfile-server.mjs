// A long-polling server for test/emfile.test.ts, meant to run under a low open-file limit
// (`ulimit -n 256`): the node adapter, a limiter and a broker. It prints its URL, and answers
// `{ type: 'stats' }` on its IPC channel, which needs no file descriptor when none is left.
import { createServer } from 'node:http';
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/node';

const broker = new Broker();
// One test process is every client, from 127.0.0.1: the per-client cap would refuse it first.
const limiter = new ConnectionLimiter({ perClient: 10_000 });
// No 'error' listener on the server, on purpose: if Node emitted one on EMFILE, the process
// would crash, and the test would see it.
const server = createServer(longPoll(broker, { prefix: '/channels', limiter, publish: true }));

process.on('message', (message) => {
  if (message?.type !== 'stats') return;
  server.getConnections((_, connections) => {
    process.send({
      type: 'stats',
      waiters: broker.stats().waiters,
      leases: limiter.stats().total,
      connections,
    });
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`emfile server on http://127.0.0.1:${server.address().port}/channels/`);
});
