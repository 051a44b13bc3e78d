/**
 * Bayeux over HTTP with the long-polling connection type, as faye's own client speaks it: a
 * handshake for a client id, a subscription to /bench, then every /meta/connect is a held poll
 * whose answer carries the messages delivered meanwhile.
 */
let id = 0;

/** @param {import('../keep-alive-client.js').KeepAliveClient} pool @param {object} message */
async function bayeux(pool, message) {
  const { statusCode, text } = await pool.request({
    path: '/faye',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ ...message, id: String(id++) }]),
  });
  if (statusCode !== 200) throw new Error(`POST /faye ${message.channel}: ${statusCode} ${text}`);
  return /** @type {{ channel: string, successful?: boolean, clientId?: string }[]} */ (JSON.parse(text));
}

/** @type {import('./protocol.js').Protocol} */
export const protocol = {
  async open(pool) {
    const [handshake] = await bayeux(pool, {
      channel: '/meta/handshake',
      version: '1.0',
      supportedConnectionTypes: ['long-polling'],
    });
    if (!handshake?.successful) throw new Error(`Handshake failed: ${JSON.stringify(handshake)}`);
    const { clientId } = handshake;
    const [subscribed] = await bayeux(pool, { channel: '/meta/subscribe', clientId, subscription: '/bench' });
    if (!subscribed?.successful) throw new Error(`Subscribe failed: ${JSON.stringify(subscribed)}`);
    return { clientId };
  },
  async poll(pool, session) {
    const answer = await bayeux(pool, { channel: '/meta/connect', clientId: session.clientId, connectionType: 'long-polling' });
    return answer.filter((message) => message.channel === '/bench').length;
  },
};
