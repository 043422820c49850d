// The classifier lives in core (safe-fetch uses it too); egress re-exports it as part of its API.
export {
  type AddressClass,
  type AddressKind,
  type Cidr,
  cidrContains,
  classifyAddress,
  isPublicAddress,
  parseCidr,
} from '@agentstack/core';
export * from './check.js';
export * from './proxy.js';
