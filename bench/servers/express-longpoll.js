import { createServer } from 'node:http';
import express from 'express';
import expressLongPoll from 'express-longpoll';

/** express-longpoll as its README shows: `longpoll.create('/poll')` and `longpoll.publish`. */
export async function start() {
  const app = express();
  const longpoll = expressLongPoll(app);
  await longpoll.create('/poll');
  const emitter = globalThis.express_longpoll_emitters['/poll'];
  return {
    server: createServer(app),
    held: () => emitter.listeners('longpoll').length,
    /** @param {unknown} data */
    publish: (data) => longpoll.publish('/poll', data),
  };
}
