/**
 * `@agentsquads/runtime`: the wire contract (request, events, messages) and an SSE reader, safe to import
 * in the platform API and the browser. The Node client for talking to a runtime is `@agentsquads/runtime/client`.
 */
export * from './events.js';
