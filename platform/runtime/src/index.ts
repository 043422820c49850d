/**
 * `@agentsquads/runtime`: the wire contract (request, events, messages) and an SSE reader, safe to import
 * in the platform API and the browser. The Node client for talking to a runtime is `@agentsquads/runtime/client`.
 * Bundlers that do not map NodeNext's `.js` specifiers to `.ts` sources (Turbopack) import
 * `@agentsquads/runtime/events`, the same module without a relative import.
 */
export * from './events.js';
