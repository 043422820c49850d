export * from './artifacts.js';
export * from './chains.js';
export * from './devnet.js';
export * from './faucet.js';
export * from './schemas.js';
export * from './uniswap.js';
export * from './usdc.js';
