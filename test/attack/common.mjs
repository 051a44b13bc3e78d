// What several attack scripts share: a Redis or PostgreSQL engine on 127.0.0.1 under a unique
// prefix, removed again by `cleanup`; and counters of writes after a response ended and of
// uncaught errors.
import http from 'node:http';

/**
 * A RedisEngine or PostgresEngine (`name`) under `prefix`, with `options` (capacity, …), and the
 * `cleanup` that removes its keys, or its tables and functions.
 * @param {'redis' | 'postgres'} name
 * @param {string} prefix
 * @param {Record<string, unknown>} [options]
 */
export async function engineOf(name, prefix, options = {}) {
  if (name === 'redis') {
    const { RedisEngine } = await import('../../dist/redis/index.js');
    const { Redis } = await import('ioredis');
    const redis = new Redis('redis://127.0.0.1:6379');
    const engine = new RedisEngine({ redis, prefix: `${prefix}:`, ...options });
    const cleanup = async () => {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      console.log(`removed ${keys.length} Redis keys`);
      redis.disconnect();
    };
    return { engine, cleanup };
  }
  const { PostgresEngine } = await import('../../dist/postgres/index.js');
  const pg = (await import('pg')).default;
  const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 20 });
  const pgPrefix = prefix.replaceAll('-', '_');
  const engine = new PostgresEngine({ pool, prefix: pgPrefix, ...options });
  await engine.migrate();
  const cleanup = async () => {
    const client = await pool.connect();
    await client.query(`DROP TABLE IF EXISTS ${pgPrefix}_messages, ${pgPrefix}_channels, ${pgPrefix}_settings CASCADE`);
    const { rows } = await client.query(`SELECT p.oid::regprocedure::text AS s FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema() AND p.proname LIKE $1`, [`${pgPrefix}\\_%`]);
    for (const { s } of rows) await client.query(`DROP FUNCTION IF EXISTS ${s} CASCADE`);
    console.log(`dropped ${pgPrefix} tables and ${rows.length} functions`);
    client.release();
    await pool.end();
  };
  return { engine, cleanup };
}

/** Counts, from now on, writes to a response that already ended, and uncaught errors. */
export function watchWrites() {
  const counts = { afterEnd: 0, uncaught: 0 };
  process.on('uncaughtException', (e) => { counts.uncaught++; console.log('uncaught', e.code, e.message); });
  process.on('unhandledRejection', (e) => { counts.uncaught++; console.log('unhandled', e?.code, e?.message); });
  const write = http.ServerResponse.prototype.write;
  http.ServerResponse.prototype.write = function (...args) { if (this.writableEnded) counts.afterEnd++; return write.apply(this, args); };
  return counts;
}
