// One instance for test/postgres/instances.test.ts: a Broker on PostgresEngine behind the Node
// adapter, in a process of its own. Runs the built package (dist/), as a deployment would.
import { createServer } from 'node:http';
import pg from 'pg';
import { Broker } from '../../dist/index.js';
import { longPoll } from '../../dist/adapters/node.js';
import { PostgresEngine } from '../../dist/postgres/index.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
pool.on('error', () => {});
const broker = new Broker({ engine: new PostgresEngine({ pool, prefix: process.env.PREFIX }) });
const server = createServer(longPoll(broker, { prefix: '/channels', publish: true }));
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
