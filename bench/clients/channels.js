/**
 * The channel lists of bench/many.js. Many: 40 channels, and each client takes 10 of them, a
 * different list per client: client i starts at channel i mod 40 and steps by one of the 16
 * strides prime to 40 (320 distinct sets of channels: stride t from s and 40 − t from s + 9t
 * are the same set), and with a multiple of 40 clients every channel has the same number of
 * followers (a quarter of the clients). Single: the same number of clients on 4 channels, one
 * each, so that a publish wakes a quarter of the clients in both.
 */
export const MANY = 40;
export const PER_CLIENT = 10;
export const SINGLE = 4;
const STRIDES = [1, 3, 7, 9, 11, 13, 17, 19, 21, 23, 27, 29, 31, 33, 37, 39];

/** @param {number} n */
export const channelName = (n) => `room.${n}`;

/** The channels client `index` polls in the many-channel turn. @param {number} index */
export function manyChannels(index) {
  const start = index % MANY;
  const stride = STRIDES[Math.floor(index / MANY) % STRIDES.length];
  return Array.from({ length: PER_CLIENT }, (_, k) => channelName((start + k * stride) % MANY));
}

/** The channel client `index` polls in the single-channel turn. @param {number} index */
export const singleChannel = (index) => channelName(index % SINGLE);

/** Every channel published on in a turn: all of them, round-robin. @param {'many' | 'single'} variant */
export const publishedChannels = (variant) => Array.from({ length: variant === 'many' ? MANY : SINGLE }, (_, n) => channelName(n));

/**
 * A longpoll-kit session on `path` (which carries its channel or channels): it first reads what
 * the channel(s) hold with wait=0 until an answer times out, so that its held polls wait for the
 * next message; then every poll resumes from the cursor of the last answer (composite for many).
 * @param {string} path
 * @returns {import('./protocol.js').Protocol}
 */
export function cursorProtocol(path) {
  return {
    async open(pool, index) {
      const session = { base: path(index), cursor: '' };
      for (let reads = 0; ; reads++) {
        const url = `${session.base}${session.base.includes('?') ? '&' : '?'}wait=0${session.cursor ? `&cursor=${encodeURIComponent(session.cursor)}` : ''}`;
        const { statusCode, text } = await pool.request({ path: url, method: 'GET' });
        if (statusCode !== 200) throw new Error(`GET ${url}: ${statusCode} ${text}`);
        const answer = JSON.parse(text);
        session.cursor = answer.cursor;
        if (answer.timedOut) return session;
        if (reads > 100) throw new Error(`GET ${url}: still answering after 100 reads`);
      }
    },
    async poll(pool, session) {
      const url = `${session.base}${session.base.includes('?') ? '&' : '?'}wait=55&cursor=${encodeURIComponent(session.cursor)}`;
      const { statusCode, text } = await pool.request({ path: url, method: 'GET' });
      if (statusCode !== 200) throw new Error(`GET ${url}: ${statusCode} ${text}`);
      const { messages, cursor } = JSON.parse(text);
      session.cursor = cursor;
      return messages.length;
    },
  };
}
