#!/usr/bin/env node
// Runs the tenant runtime from source (TypeScript through tsx): `agentsquads-runtime [serve]`.
// Configuration comes from the environment; see src/config.ts.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
