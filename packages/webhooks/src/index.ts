export * from './delivery.js';
export * from './outbox.js';
export * from './signature.js';
