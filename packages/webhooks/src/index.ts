export * from './outbox.js';
export * from './signature.js';
