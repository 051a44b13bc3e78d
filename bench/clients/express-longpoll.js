/**
 * Plain GET /poll, as express-longpoll's README polls. Every answer is one message.
 * @type {import('./protocol.js').Protocol}
 */
export const protocol = {
  open: async () => ({}),
  async poll(pool) {
    const { statusCode, text } = await pool.request({ path: '/poll', method: 'GET' });
    if (statusCode !== 200) throw new Error(`GET /poll: ${statusCode} ${text}`);
    JSON.parse(text);
    return 1;
  },
};
