/**
 * longpoll-kit's HTTP protocol: GET /channels/bench?cursor=…&wait=55, resuming from the cursor
 * of the last answer. A new session starts from the newest cursor seen, so it waits for the next
 * message instead of being answered at once from history.
 */
let newest = '';

/** @type {import('./protocol.js').Protocol} */
export const protocol = {
  open: async () => ({ cursor: newest }),
  async poll(pool, session) {
    const path = `/channels/bench?wait=55${session.cursor ? `&cursor=${session.cursor}` : ''}`;
    const { statusCode, text } = await pool.request({ path, method: 'GET' });
    if (statusCode !== 200) throw new Error(`GET ${path}: ${statusCode} ${text}`);
    const { messages, cursor } = JSON.parse(text);
    session.cursor = cursor;
    newest = cursor;
    return messages.length;
  },
};
