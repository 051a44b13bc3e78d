/**
 * The load generator, in its own process: `node bench/load.js <system> <port> <connections>`,
 * run by bench/run.js. It keeps sessions of one system's protocol over one keep-alive client
 * (keep-alive-client.js) to 127.0.0.1 and answers the orchestrator over IPC: hold N polls, count answers, report
 * the monotonic time of the last one, and re-poll continuously for the steady-state figure.
 */
import { KeepAliveClient } from './keep-alive-client.js';
import { answerRequests } from './rpc.js';

const [system = '', port = ''] = process.argv.slice(2);
/** @type {import('./clients/protocol.js').Protocol} */
const { protocol } = await import(`./clients/${system}.js`);
const pool = new KeepAliveClient(Number(port));

/** Handshakes in flight at once: a burst of thousands of connects overflows the listen backlog. */
const OPENING = 200;
/** Polls started per event-loop turn, for the same reason. */
const STARTING = 500;

/** @type {(import('./clients/protocol.js').Session & { polling?: boolean })[]} */
const sessions = [];
let answers = 0;
let messages = 0;
let last = 0n;
let first = 0n;
/** @type {string[]} */
const errors = [];
/** @type {{ count: number, resolve: () => void } | undefined} */
let waiting;
let steady = false;

function poll(session) {
  session.polling = true;
  protocol.poll(pool, session).then(
    (count) => {
      last = process.hrtime.bigint();
      if (answers === 0) first = last;
      session.polling = false;
      answers++;
      messages += count;
      if (waiting && answers >= waiting.count) waiting.resolve();
      if (steady && session.steady) poll(session);
    },
    (error) => {
      session.polling = false;
      if (errors.length < 10) errors.push(String(error));
    },
  );
}

async function openSessions(count) {
  while (sessions.length < count) {
    const batch = Math.min(OPENING, count - sessions.length);
    const first = sessions.length;
    sessions.push(...(await Promise.all(Array.from({ length: batch }, (_, i) => protocol.open(pool, first + i)))));
  }
}

answerRequests({
  /** Makes sure the first `count` sessions each have a poll in flight. */
  async hold({ count }) {
    await openSessions(count);
    let started = 0;
    for (const session of sessions.slice(0, count)) {
      if (session.polling) continue;
      poll(session);
      if (++started % STARTING === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    return started;
  },
  /** Starts counting answers afresh. */
  mark() {
    answers = 0;
    messages = 0;
    errors.length = 0;
  },
  /** Resolves with the time (ns) of the last answer once `count` answers arrived since the mark. */
  async await({ count, timeout }) {
    if (answers < count) {
      let timer;
      try {
        await new Promise((resolve, reject) => {
          waiting = { count, resolve };
          timer = setTimeout(
            () => reject(new Error(`${answers} of ${count} answers after ${timeout} ms; errors: ${errors.join('; ')}`)),
            timeout,
          );
        });
      } finally {
        clearTimeout(timer);
        waiting = undefined;
      }
    }
    return { first: String(first), last: String(last), answers, messages, errors: [...errors] };
  },
  /** The first `clients` sessions re-poll at once after every answer, until `stop`. */
  async steady({ clients }) {
    await openSessions(clients);
    steady = true;
    for (const session of sessions.slice(0, clients)) {
      session.steady = true;
      if (!session.polling) poll(session);
    }
  },
  stop() {
    steady = false;
    return { answers, messages, errors: [...errors] };
  },
});
