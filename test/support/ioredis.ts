import { createRequire } from 'node:module';
import { Cluster as Cluster5, Redis as Redis5 } from 'ioredis';
import { Cluster as Cluster6, Redis as Redis6 } from 'ioredis6';

/**
 * The ioredis type the package's declarations name. Both majors' clients are used through it:
 * the declarations resolve `ioredis` to whichever major the user installed, so a user's client
 * always matches; only here, with both installed side by side, does 6's client differ from 5's
 * type (in protected members of its connectors), hence the cast below.
 */
export type { Redis } from 'ioredis';

/** One ioredis major the peer range admits, by the constructor its users call. */
export interface IoredisMajor {
  /** `ioredis 5.11.1`: the version actually installed, so a report names what ran. */
  readonly name: string;
  readonly Redis: typeof Redis5;
  readonly Cluster: typeof Cluster5;
}

const version = (name: string) => (createRequire(import.meta.url)(`${name}/package.json`) as { version: string }).version;

/** Every ioredis major in the peer range (`^5.0.0 || ^6.0.0`): the Redis suites run on each. */
export const ioredisMajors: readonly IoredisMajor[] = [
  { name: `ioredis ${version('ioredis')}`, Redis: Redis5, Cluster: Cluster5 },
  { name: `ioredis ${version('ioredis6')}`, Redis: Redis6 as unknown as typeof Redis5, Cluster: Cluster6 as unknown as typeof Cluster5 },
];
