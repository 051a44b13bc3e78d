/**
 * How the load generator speaks to one system. A session is whatever a client keeps between
 * polls (a cursor, a session id, a client id); `open` gets the session's index (from 0); `poll` sends one held request and resolves with
 * the number of messages its answer carried.
 *
 * @typedef {Record<string, any>} Session
 * @typedef {{
 *   open(pool: import('../keep-alive-client.js').KeepAliveClient, index: number): Promise<Session>,
 *   poll(pool: import('../keep-alive-client.js').KeepAliveClient, session: Session): Promise<number>,
 * }} Protocol
 */
export {};
