export * from './embedded.js';
export * from './events.js';
export * from './migrate.js';
export * from './pool.js';
