import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';
import { PostgresEngine } from '../../src/postgres/index.js';
import { dropPrefix, postgresAvailable, SHARED_URL } from '../support/postgres-server.js';
import { engineContract, type EngineFixture } from './contract.js';

const PREFIX = `contract_${process.pid}`;

describe.runIf(postgresAvailable())('PostgresEngine on the shared PostgreSQL', () => {
  let admin: pg.Pool;
  const pools: pg.Pool[] = [];

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: SHARED_URL, max: 2 });
    await new PostgresEngine({ pool: admin, prefix: PREFIX }).migrate();
  });

  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.end()));
    await admin?.end();
    await dropPrefix(SHARED_URL, PREFIX);
  });

  const fixture: EngineFixture = {
    engine(options) {
      // The user's pool: one per engine, as separate instances would have.
      const pool = new pg.Pool({ connectionString: SHARED_URL, max: 4 });
      pools.push(pool);
      return new PostgresEngine({ pool, prefix: PREFIX, ...options });
    },
    shared: true,
    async loseHistory() {
      await admin.query(`TRUNCATE ${PREFIX}_messages, ${PREFIX}_channels`);
    },
    async deleteChannel(channel) {
      await admin.query(`DELETE FROM ${PREFIX}_messages WHERE channel = $1`, [channel]);
    },
    async stored() {
      const { rows } = await admin.query<{ channels: string; messages: string; settings: string }>(
        `SELECT (SELECT count(*) FROM ${PREFIX}_channels) AS channels, (SELECT count(*) FROM ${PREFIX}_messages) AS messages,
                (SELECT epoch FROM ${PREFIX}_settings) AS settings`,
      );
      return rows[0];
    },
  };

  engineContract('PostgresEngine', fixture);
});
