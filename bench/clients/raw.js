/**
 * Plain GET /poll, for the raw node:http server, reading its answer as the longpoll-kit client
 * does (the raw server answers in the same shape). Every answer is one message.
 * @type {import('./protocol.js').Protocol}
 */
export const protocol = {
  open: async () => ({}),
  async poll(pool) {
    const { statusCode, text } = await pool.request({ path: '/poll', method: 'GET' });
    if (statusCode !== 200) throw new Error(`GET /poll: ${statusCode} ${text}`);
    return JSON.parse(text).messages.length;
  },
};
