import { createServer } from 'node:http';
import faye from 'faye';

/**
 * faye's NodeAdapter attached to a node:http server as its documentation shows, clients on
 * the long-polling connection type, and the server-side client publishing to /bench.
 */
export function start() {
  const server = createServer();
  const bayeux = new faye.NodeAdapter({ mount: '/faye', timeout: 45 });
  bayeux.attach(server);
  const client = bayeux.getClient();
  return {
    server,
    /** Clients with a /meta/connect held open (faye keeps a Connection only while one is). */
    held: () => bayeux._server._engine._connections.size,
    /** @param {unknown} data */
    publish: (data) => void client.publish('/bench', data),
  };
}
