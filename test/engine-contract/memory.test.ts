import { MemoryEngine } from '../../src/index.js';
import { requiredOnly } from '../support/engines.js';
import { engineContract } from './contract.js';

engineContract('MemoryEngine', {
  engine: (options) => new MemoryEngine(options),
  shared: false,
  // Every MemoryEngine is its own history: a new one is what a restart gives.
  loseHistory: async () => {},
});

engineContract('MemoryEngine, required members only', {
  engine: (options) => requiredOnly(new MemoryEngine(options)),
  shared: false,
  loseHistory: async () => {},
});
