export * from './client.js';
export * from './keystore.js';
export * from './paying-fetch.js';
export * from './policy.js';
