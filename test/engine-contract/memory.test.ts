import { MemoryEngine } from 'longpoll-kit';
import { engineContract } from './contract.js';

engineContract('MemoryEngine', {
  engine: (options) => new MemoryEngine(options),
  shared: false,
  // Every MemoryEngine is its own history: a new one is what a restart gives.
  loseHistory: async () => {},
});
