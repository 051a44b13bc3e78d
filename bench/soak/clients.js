/**
 * The soak's pollers, all in one process: `node bench/soak/clients.js`, forked by
 * bench/soak/run.js. Each poller is one raw keep-alive socket from one of a few loopback
 * addresses (127.0.1.x, so the server's per-client cap sees several clients), writing
 * `GET /channels/c{n}?wait=…&cursor=…` and reading the answer with as little parsing as an HTTP
 * client can do, so that 10,000 of them stay light.
 *
 * Every message carries its channel's `seq` (1, 2, 3…): a poller checks that each answer
 * continues exactly where the last one stopped, across its own reconnections too, and that
 * every poller of a channel sees the same message id for the same `seq`.
 */
import net from 'node:net';
import { answerRequests } from '../rpc.js';

const CRLF2 = Buffer.from('\r\n\r\n');
/** How long a poll must have been out before the destroyer counts it as held by the server. */
const HELD_AFTER_MS = 200;

const counts = {
  /** Answers with status 200. */
  answers: 0,
  /** 200 answers that carried messages rather than a timeout. */
  deliveries: 0,
  /** Messages received, all pollers together. */
  messages: 0,
  /** A message whose seq was more than one past the previous one: something was skipped. */
  gaps: 0,
  /** A message whose seq was not past the previous one: a duplicate or a reordering. */
  disorder: 0,
  /** A seq that another poller of the same channel saw with another message id. */
  mismatches: 0,
  /** Sockets the soak destroyed while their poll was held. */
  destroyed: 0,
  /** Connections opened after the first one of a poller (replacements and reconnections). */
  reconnects: 0,
  /** Connections that ended without the soak asking: the server closed them or they failed. */
  lost: 0,
  /** Answers that were not 200, by status. */
  statuses: /** @type {Record<string, number>} */ ({}),
};
/** The first few unexpected events, for the report. */
const problems = /** @type {string[]} */ ([]);
function problem(text) {
  if (problems.length < 20) problems.push(text);
}

/** Message id by channel index and seq: every poller of a channel must agree. */
const idsBySeq = /** @type {Map<number, string>[]} */ ([]);

let port = 0;
let wait = 25;
let stopping = false;

class Poller {
  cursor = '';
  lastSeq = 0;
  /** @type {import('node:net').Socket | undefined} */
  socket;
  /** @type {Buffer | undefined} */
  pending;
  /** When the current poll was written, or undefined while no poll is out. */
  sentAt = /** @type {number | undefined} */ (undefined);
  connections = 0;

  /** @param {number} channel @param {string} localAddress */
  constructor(channel, localAddress) {
    this.channel = channel;
    this.localAddress = localAddress;
    this.path = `/channels/c${channel}?wait=${wait}`;
  }

  connect() {
    if (stopping) return;
    if (this.connections++ > 0) counts.reconnects++;
    this.pending = undefined;
    this.sentAt = undefined;
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: this.localAddress });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => this.poll());
    socket.on('data', (chunk) => this.#data(chunk));
    socket.on('error', (error) => {
      if (this.socket === socket) problem(`c${this.channel} from ${this.localAddress}: ${error.message}`);
    });
    socket.on('close', () => {
      // A socket this poller replaced or the soak destroyed is not a loss.
      if (this.socket !== socket || stopping) return;
      counts.lost++;
      this.socket = undefined;
      setTimeout(() => this.connect(), 1000);
    });
  }

  poll() {
    this.sentAt = performance.now();
    const path = this.cursor ? `${this.path}&cursor=${this.cursor}` : this.path;
    this.socket?.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 'latin1');
  }

  /** Whether the server has had this poll long enough to hold it. */
  held(now = performance.now()) {
    return this.sentAt !== undefined && now - this.sentAt >= HELD_AFTER_MS;
  }

  /** Destroys the socket while its poll is held, then reconnects after up to 500 ms. */
  destroyMidPoll() {
    const socket = this.socket;
    this.socket = undefined;
    this.sentAt = undefined;
    socket?.destroy();
    counts.destroyed++;
    setTimeout(() => this.connect(), Math.random() * 500);
  }

  close() {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }

  /** @param {Buffer} chunk */
  #data(chunk) {
    let buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const end = buffer.indexOf(CRLF2);
      if (end === -1) break;
      const head = buffer.toString('latin1', 0, end).toLowerCase();
      const lengthAt = head.indexOf('\r\ncontent-length:');
      if (lengthAt === -1) {
        problem(`c${this.channel}: an answer without Content-Length: ${head.slice(0, 200)}`);
        this.socket?.destroy();
        return;
      }
      const lineEnd = head.indexOf('\r\n', lengthAt + 2);
      const length = Number.parseInt(head.slice(lengthAt + 17, lineEnd === -1 ? undefined : lineEnd), 10);
      if (buffer.length < end + 4 + length) break;
      const status = Number(head.slice(9, 12));
      const body = buffer.toString('utf8', end + 4, end + 4 + length);
      buffer = buffer.subarray(end + 4 + length);
      try {
        this.#answer(status, head, body);
      } catch (error) {
        // An answer that is not what the protocol promises: counted, and the poller starts over.
        counts.statuses[`${status} unreadable`] = (counts.statuses[`${status} unreadable`] ?? 0) + 1;
        problem(`c${this.channel}: ${status} ${String(error)}: ${body.slice(0, 200)}`);
        this.close();
        setTimeout(() => this.connect(), 1000);
        return;
      }
    }
    this.pending = buffer.length > 0 ? buffer : undefined;
  }

  /** @param {number} status @param {string} head @param {string} body */
  #answer(status, head, body) {
    this.sentAt = undefined;
    if (status !== 200) {
      counts.statuses[status] = (counts.statuses[status] ?? 0) + 1;
      problem(`c${this.channel} from ${this.localAddress}: ${status} ${body.slice(0, 200)}`);
      let delay = 1000;
      if (status === 410) {
        // Resume where the server can, so that the run goes on; the gap is counted as such.
        const { earliestCursor } = JSON.parse(body);
        this.cursor = earliestCursor ?? '';
        counts.gaps++;
        delay = 0;
      } else if (status === 429) {
        const after = /\r\nretry-after: *(\d+)/.exec(head);
        delay = 1000 * Number(after?.[1] ?? 1);
      }
      if (head.includes('\r\nconnection: close')) {
        // The server ends this connection: go on from a new one, as a client would.
        this.close();
        setTimeout(() => this.connect(), delay);
      } else {
        setTimeout(() => this.socket && this.poll(), delay);
      }
      return;
    }
    counts.answers++;
    /** @type {{ messages: { id: string, channel: string, data: { seq: number } }[], cursor: string }} */
    const answer = JSON.parse(body);
    if (answer.messages.length > 0) counts.deliveries++;
    const ids = (idsBySeq[this.channel] ??= new Map());
    for (const message of answer.messages) {
      const { seq } = message.data;
      counts.messages++;
      if (message.channel !== `c${this.channel}`) problem(`c${this.channel} got a message of ${message.channel}`);
      if (seq > this.lastSeq + 1) {
        counts.gaps++;
        problem(`c${this.channel}: seq ${seq} after ${this.lastSeq}`);
      } else if (seq <= this.lastSeq) {
        counts.disorder++;
        problem(`c${this.channel}: seq ${seq} after ${this.lastSeq}`);
      }
      this.lastSeq = seq;
      const known = ids.get(seq);
      if (known === undefined) ids.set(seq, message.id);
      else if (known !== message.id) {
        counts.mismatches++;
        problem(`c${this.channel}: seq ${seq} is ${message.id} here, ${known} elsewhere`);
      }
    }
    this.cursor = answer.cursor;
    if (!stopping) this.poll();
  }
}

/** @type {Poller[]} */
let pollers = [];
/** @type {NodeJS.Timeout | undefined} */
let destroyer;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

answerRequests({
  /**
   * Opens `clients` pollers over `ramp` ms, poller i on channel i mod `channels` from address
   * 127.0.1.(1 + i mod `addresses`), each starting without a cursor: on a channel nothing was
   * published to yet, its first answer brings seq 1.
   */
  async start(args) {
    ({ port, wait } = args);
    const { clients, channels, addresses, ramp } = args;
    pollers = Array.from({ length: clients }, (_, i) => new Poller(i % channels, `127.0.1.${1 + (i % addresses)}`));
    const steps = Math.max(1, Math.round(ramp / 100));
    for (let step = 0; step < steps; step++) {
      const from = Math.floor((clients * step) / steps);
      const to = Math.floor((clients * (step + 1)) / steps);
      for (let i = from; i < to; i++) pollers[i]?.connect();
      await sleep(100);
    }
    return pollers.length;
  },
  /**
   * Destroys `share` of the pollers per minute, a few every second, each one whose poll is
   * held; each comes back on a new socket, resuming from its cursor.
   */
  startDestroying({ share }) {
    const perSecond = (pollers.length * share) / 60;
    let owed = 0;
    destroyer = setInterval(() => {
      owed += perSecond;
      const now = performance.now();
      for (let attempts = 0; owed >= 1 && attempts < 100 * perSecond + 100; attempts++) {
        const poller = pollers[Math.floor(Math.random() * pollers.length)];
        if (!poller?.held(now)) continue;
        poller.destroyMidPoll();
        owed--;
      }
    }, 1000);
  },
  stopDestroying() {
    clearInterval(destroyer);
  },
  stats: () => ({ ...counts, statuses: { ...counts.statuses }, held: pollers.filter((poller) => poller.held()).length }),
  /**
   * Resolves once every poller has received its channel's last message (`published[c]` is the
   * last seq of channel c), or after `timeout` ms; returns how many had not.
   */
  async caughtUp({ published, timeout }) {
    const deadline = performance.now() + timeout;
    for (;;) {
      const behind = pollers.filter((poller) => poller.lastSeq !== published[poller.channel]).length;
      if (behind === 0 || performance.now() > deadline) return behind;
      await sleep(200);
    }
  },
  /** Closes every socket; returns the final counts and the first problems seen. */
  closeAll() {
    stopping = true;
    for (const poller of pollers) poller.close();
    return { counts: { ...counts }, problems };
  },
});
