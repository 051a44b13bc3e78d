import { createServer } from 'node:http';
import { Server } from 'socket.io';

/**
 * socket.io with the long-polling transport only (`transports: ['polling']`), attached to a
 * node:http server as its documentation shows, and `io.emit` to every connected socket. The
 * heartbeat is slowed down so that no ping lands inside a measurement.
 */
export function start() {
  const server = createServer();
  const io = new Server(server, { transports: ['polling'], pingInterval: 600_000, pingTimeout: 600_000 });
  return {
    server,
    /** Sockets whose polling transport holds a GET (engine.io marks it writable). */
    held() {
      let count = 0;
      for (const client of Object.values(io.engine.clients)) if (client.transport.writable) count++;
      return count;
    },
    /** @param {unknown} data */
    publish: (data) => void io.emit('m', data),
  };
}
