export * from './endpoints.js';
export * from './manifest.js';
export * from './start.js';
