// `npm start`: a chat where browser tabs talk through long polling. Express 5 serves one static
// page and mounts the channels; the page loads longpoll-kit/client from the built package
// (dist/) as a plain ES module, with no bundler. History lives in the embedded MemoryEngine.
//
//   GET  /channels/chat:lobby?cursor=…   a held poll (the page's subscribe())
//   POST /channels/chat:lobby            publishes a JSON body { name, text }
//   GET  /lib/…                          the package's dist/, for the browser
//
// PORT picks the port (PORT=0: any free one); it listens on 127.0.0.1 only.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { Broker, ConnectionLimiter } from 'longpoll-kit';
import { longPoll } from 'longpoll-kit/express';

// The package resolves itself by name through its exports map: dist/client/index.js → dist/.
const dist = dirname(dirname(fileURLToPath(import.meta.resolve('longpoll-kit/client'))));
const page = fileURLToPath(new URL('public', import.meta.url));

const broker = new Broker({ capacity: 200, maxAge: 60 * 60_000 }); // the last 200 lines of the last hour
// A browser opens at most 6 connections per host over HTTP/1.1: a few tabs of one user fit.
const limiter = new ConnectionLimiter({ perClient: 6 });

const app = express();
app.disable('x-powered-by');
app.use(express.static(page));
app.use('/lib', express.static(dist, { index: false }));
// The page escapes what it shows, so any small JSON body may be published.
app.use('/channels', longPoll(broker, { limiter, publish: true, maxBodyBytes: 4096 }));

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', (error) => {
  if (error) throw error;
  const { port } = server.address();
  console.log(`longpoll-kit chat on http://127.0.0.1:${port}/ (open it in two tabs)`);
});

// Stop accepting, answer held polls with 503 + Retry-After (the pages come back by themselves
// once a server is up again), and end each keep-alive connection as soon as its answer is out.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close();
    const sweep = setInterval(() => server.closeIdleConnections(), 20);
    const deadline = setTimeout(() => server.closeAllConnections(), 5000);
    server.once('close', () => {
      clearInterval(sweep);
      clearTimeout(deadline);
    });
    void broker.close();
  });
}
