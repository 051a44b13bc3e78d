/**
 * The soak's pollers, all in one process: `node bench/soak/clients.js`, forked by
 * bench/soak/run.js. Each poller is one raw keep-alive socket from one of a few loopback
 * addresses (127.0.1.x, so the server's per-client cap sees several clients), reading with as
 * little parsing as an HTTP client can do, so that 10,000 of them stay light. A poller is one of:
 *
 * - a poll of one channel, `GET /channels/c{n}?wait=…&cursor=…`, again after each answer;
 * - a poll of several channels, `GET /channels?channels=c{n},c{m},…&wait=…&cursor=…`;
 * - an event stream (`Accept: text/event-stream`) of one channel or of several, which resumes
 *   with `Last-Event-ID` on a new socket, or on the same one when the server ends the stream
 *   (`maxStream`).
 *
 * Every message carries its channel's `seq` (1, 2, 3…): a poller checks, channel by channel,
 * that what it receives continues exactly where it stopped, across its own reconnections too,
 * and that every poller of a channel sees the same message id for the same `seq`.
 */
import net from 'node:net';
import { answerRequests } from '../rpc.js';

const CRLF2 = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
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
  /** Event streams opened (200 answers to a stream request). */
  streamsOpened: 0,
  /** Event streams the server ended by itself (`maxStream`), each resumed on the same socket. */
  streamsEnded: 0,
  /** `message` events received on event streams (counted in `messages` too). */
  streamMessages: 0,
  /** Heartbeat comments received on event streams. */
  heartbeats: 0,
  /** `reset` events: the stream's history moved past it, a gap. */
  resets: 0,
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
  /** The cursor (or `Last-Event-ID`) to resume from; '' before the first answer. */
  cursor = '';
  /** The last seq received, by index in `channels`. */
  lastSeq;
  /** @type {import('node:net').Socket | undefined} */
  socket;
  /** @type {Buffer | undefined} */
  pending;
  /** When the current poll was written (a stream's: its last event), or undefined while no poll is out. */
  sentAt = /** @type {number | undefined} */ (undefined);
  connections = 0;
  /** While a stream's body is being read: its undecoded text (events not yet complete). */
  events = /** @type {string | undefined} */ (undefined);

  /**
   * @param {number[]} channels the channel indexes: one, or several for a many-channel poll
   * @param {boolean} stream whether it reads an event stream rather than polling
   * @param {string} localAddress
   */
  constructor(channels, stream, localAddress) {
    this.channels = channels;
    this.stream = stream;
    this.localAddress = localAddress;
    this.lastSeq = channels.map(() => 0);
    this.name = channels.map((channel) => `c${channel}`).join(',');
    this.path = channels.length === 1 ? `/channels/c${channels[0]}?wait=${wait}` : `/channels?channels=${this.name}&wait=${wait}`;
  }

  connect() {
    if (stopping) return;
    if (this.connections++ > 0) counts.reconnects++;
    this.pending = undefined;
    this.events = undefined;
    this.sentAt = undefined;
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: this.localAddress });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => this.poll());
    socket.on('data', (chunk) => this.#data(chunk));
    socket.on('error', (error) => {
      if (this.socket === socket) problem(`${this.name} from ${this.localAddress}: ${error.message}`);
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
    if (this.stream) {
      const resume = this.cursor ? `Last-Event-ID: ${this.cursor}\r\n` : '';
      this.socket?.write(`GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${resume}\r\n`, 'latin1');
      return;
    }
    const path = this.cursor ? `${this.path}&cursor=${this.cursor}` : this.path;
    this.socket?.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 'latin1');
  }

  /** Whether the server has had this poll long enough to hold it (a stream: to wait for the next message). */
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

  /** Counted as a problem, and the poller starts over on a new socket. */
  #startOver(what) {
    counts.statuses[what] = (counts.statuses[what] ?? 0) + 1;
    this.close();
    setTimeout(() => this.connect(), 1000);
  }

  /** @param {Buffer} chunk */
  #data(chunk) {
    let buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.events !== undefined) {
        // A stream's chunked body: `size CRLF data CRLF`, until a chunk of size 0.
        const lineEnd = buffer.indexOf(CRLF);
        if (lineEnd === -1) break;
        const size = Number.parseInt(buffer.toString('latin1', 0, lineEnd), 16);
        if (!Number.isFinite(size)) {
          problem(`${this.name}: a bad chunk size ${buffer.toString('latin1', 0, Math.min(lineEnd, 40))}`);
          this.#startOver('stream unreadable');
          return;
        }
        if (size === 0) {
          // The last chunk, then CRLF (no trailers): the server ended the stream.
          if (buffer.length < lineEnd + 4) break;
          buffer = buffer.subarray(lineEnd + 4);
          this.events = undefined;
          counts.streamsEnded++;
          if (!stopping) this.poll();
          continue;
        }
        if (buffer.length < lineEnd + 2 + size + 2) break;
        this.events += buffer.toString('utf8', lineEnd + 2, lineEnd + 2 + size);
        buffer = buffer.subarray(lineEnd + 2 + size + 2);
        try {
          this.#streamed();
        } catch (error) {
          problem(`${this.name}: ${String(error)}`);
          this.#startOver('stream unreadable');
          return;
        }
        continue;
      }
      const end = buffer.indexOf(CRLF2);
      if (end === -1) break;
      const head = buffer.toString('latin1', 0, end).toLowerCase();
      const status = Number(head.slice(9, 12));
      if (this.stream && status === 200) {
        if (!head.includes('\r\ncontent-type: text/event-stream') || !head.includes('\r\ntransfer-encoding: chunked')) {
          problem(`${this.name}: a stream answer that is not a chunked event stream: ${head.slice(0, 200)}`);
          this.#startOver('200 not a stream');
          return;
        }
        counts.streamsOpened++;
        buffer = buffer.subarray(end + 4);
        this.events = '';
        continue;
      }
      const lengthAt = head.indexOf('\r\ncontent-length:');
      if (lengthAt === -1) {
        problem(`${this.name}: an answer without Content-Length: ${head.slice(0, 200)}`);
        this.socket?.destroy();
        return;
      }
      const lineEnd = head.indexOf('\r\n', lengthAt + 2);
      const length = Number.parseInt(head.slice(lengthAt + 17, lineEnd === -1 ? undefined : lineEnd), 10);
      if (buffer.length < end + 4 + length) break;
      const body = buffer.toString('utf8', end + 4, end + 4 + length);
      buffer = buffer.subarray(end + 4 + length);
      try {
        this.#answer(status, head, body);
      } catch (error) {
        // An answer that is not what the protocol promises: counted, and the poller starts over.
        problem(`${this.name}: ${status} ${String(error)}: ${body.slice(0, 200)}`);
        this.#startOver(`${status} unreadable`);
        return;
      }
    }
    this.pending = buffer.length > 0 ? buffer : undefined;
  }

  /** Handles the complete events of a stream's body; the stream then waits again. */
  #streamed() {
    let text = /** @type {string} */ (this.events);
    let end;
    while ((end = text.indexOf('\n\n')) !== -1) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      let id;
      let event;
      let data;
      for (const line of block.split('\n')) {
        if (line === ': ping') counts.heartbeats++;
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data = line.slice(6);
      }
      if (event === 'message') {
        counts.streamMessages++;
        this.#received([JSON.parse(/** @type {string} */ (data))]);
      } else if (event === 'reset') {
        counts.resets++;
        counts.gaps++;
        problem(`${this.name}: reset ${data}`);
      } else if (event !== undefined) throw new Error(`an unknown event ${event}`);
      if (id !== undefined) this.cursor = id;
    }
    this.events = text;
    // The stream polls on at once: from now it waits for the next message.
    this.sentAt = performance.now();
  }

  /**
   * Checks messages against each channel's last seq and the ids other pollers saw.
   * @param {{ id: string, channel: string, data: { seq: number } }[]} messages
   */
  #received(messages) {
    for (const message of messages) {
      counts.messages++;
      const index = this.channels.indexOf(Number(message.channel.slice(1)));
      if (!message.channel.startsWith('c') || index === -1) {
        problem(`${this.name} got a message of ${message.channel}`);
        continue;
      }
      const channel = /** @type {number} */ (this.channels[index]);
      const { seq } = message.data;
      const last = /** @type {number} */ (this.lastSeq[index]);
      if (seq > last + 1) {
        counts.gaps++;
        problem(`${message.channel} (${this.stream ? 'stream ' : ''}${this.name}): seq ${seq} after ${last}`);
      } else if (seq <= last) {
        counts.disorder++;
        problem(`${message.channel} (${this.stream ? 'stream ' : ''}${this.name}): seq ${seq} after ${last}`);
      }
      this.lastSeq[index] = seq;
      const ids = (idsBySeq[channel] ??= new Map());
      const known = ids.get(seq);
      if (known === undefined) ids.set(seq, message.id);
      else if (known !== message.id) {
        counts.mismatches++;
        problem(`${message.channel}: seq ${seq} is ${message.id} here, ${known} elsewhere`);
      }
    }
  }

  /** @param {number} status @param {string} head @param {string} body */
  #answer(status, head, body) {
    this.sentAt = undefined;
    if (status !== 200) {
      counts.statuses[status] = (counts.statuses[status] ?? 0) + 1;
      problem(`${this.name} from ${this.localAddress}: ${status} ${body.slice(0, 200)}`);
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
    this.#received(answer.messages);
    this.cursor = answer.cursor;
    if (!stopping) this.poll();
  }

  /** Whether it has the last seq of each of its channels (`published[c]` for channel c). */
  caughtUp(published) {
    return this.channels.every((channel, i) => this.lastSeq[i] === published[channel]);
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
   * published to yet, its first answer brings seq 1. Of every 100 pollers, `streams` read an event
   * stream and `many` poll `manyChannels` channels (i mod `channels` and channels spread evenly
   * from it); every other stream is of `manyChannels` channels too.
   */
  async start(args) {
    ({ port, wait } = args);
    const { clients, channels, addresses, ramp, streams, many, manyChannels } = args;
    const spread = (i) => Array.from({ length: Math.min(manyChannels, channels) }, (_, k) => (i + Math.floor((k * channels) / manyChannels)) % channels);
    pollers = Array.from({ length: clients }, (_, i) => {
      const slot = i % 100;
      const address = `127.0.1.${1 + (i % addresses)}`;
      if (slot < streams) return new Poller(slot % 2 ? spread(i) : [i % channels], true, address);
      if (slot < streams + many) return new Poller(spread(i), false, address);
      return new Poller([i % channels], false, address);
    });
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
   * Resolves once every poller has received the last message of each of its channels
   * (`published[c]` is the last seq of channel c), or after `timeout` ms; returns how many had not.
   */
  async caughtUp({ published, timeout }) {
    const deadline = performance.now() + timeout;
    for (;;) {
      const behind = pollers.filter((poller) => !poller.caughtUp(published)).length;
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
