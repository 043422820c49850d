export * from './address.js';
export * from './check.js';
export * from './proxy.js';
