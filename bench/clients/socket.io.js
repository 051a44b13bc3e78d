/**
 * socket.io's long-polling transport spoken directly (Engine.IO protocol v4 over HTTP, as
 * documented at socket.io/docs/v4/engine-io-protocol): a handshake GET gives the session id,
 * a POST of `40` connects the main namespace, and every later GET is a held poll whose answer
 * holds packets separated by the record separator (0x1e); `42[…]` is an event.
 */
const PATH = '/socket.io/?EIO=4&transport=polling';

/** @param {import('../keep-alive-client.js').KeepAliveClient} pool @param {string} path @param {string} [body] */
async function send(pool, path, body) {
  const { statusCode, text } = await pool.request(
    body === undefined
      ? { path, method: 'GET' }
      : { path, method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' } },
  );
  if (statusCode !== 200) throw new Error(`${body === undefined ? 'GET' : 'POST'} ${path}: ${statusCode} ${text}`);
  return text;
}

/** @type {import('./protocol.js').Protocol} */
export const protocol = {
  async open(pool) {
    const handshake = await send(pool, PATH);
    if (!handshake.startsWith('0')) throw new Error(`Unexpected handshake ${handshake}`);
    const path = `${PATH}&sid=${JSON.parse(handshake.slice(1)).sid}`;
    await send(pool, path, '40');
    const connected = await send(pool, path);
    if (!connected.startsWith('40')) throw new Error(`Unexpected connect answer ${connected}`);
    return { path };
  },
  async poll(pool, session) {
    let events = 0;
    for (const packet of (await send(pool, session.path)).split('\x1e')) {
      if (packet.startsWith('42')) {
        JSON.parse(packet.slice(2));
        events++;
      } else if (packet === '2') {
        await send(pool, session.path, '3');
      } else if (packet.startsWith('1')) {
        throw new Error('socket.io closed the session');
      }
    }
    return events;
  },
};
