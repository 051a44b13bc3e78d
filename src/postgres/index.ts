/**
 * The PostgreSQL engine: history in your database, wake-ups through `LISTEN`/`NOTIFY`, and
 * messages published inside your own transactions (from JavaScript or from SQL) that exist, and
 * wake polls, if and only if the transaction commits. `pg` (node-postgres) is an optional peer
 * dependency: you create the pool and pass it in.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { Broker } from 'longpoll-kit';
 * import { PostgresEngine } from 'longpoll-kit/postgres';
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const engine = new PostgresEngine({ pool });
 * await engine.migrate();
 * const broker = new Broker({ engine });
 * ```
 *
 * @packageDocumentation
 * @module longpoll-kit/postgres
 */
export { PostgresEngine, type PostgresEngineOptions, type Queryable } from './postgres-engine.js';
export { migrationSql, type MigrationOptions } from './sql.js';
