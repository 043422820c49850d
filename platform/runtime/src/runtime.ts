import { mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { createLogger, type Logger } from '@agentstack/core';
import type { AllowList, Resolver } from '@agentstack/egress';
import OpenAI from 'openai';
import { type Dispatcher, fetch as undiciFetch } from 'undici';
import { type AgentDeps, runAgent } from './agent-loop.js';
import { createRuntimeApp } from './app.js';
import { childEnv, llmBaseUrl, type RuntimeConfig } from './config.js';
import { type Hand, HandLoadError, loadHands } from './hands.js';
import { createOutboundDispatcher, unixSocketDispatcher } from './outbound.js';
import { builtinTools, type Tool, ToolRegistry } from './tools/index.js';

/** The package version; the bundled build has it compiled in (it ships without package.json). */
export const RUNTIME_VERSION: string =
  process.env.AGENTSQUADS_RUNTIME_VERSION ??
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

export interface RuntimeOptions {
  log?: Logger;
  /** Tools to offer instead of the built-in set (tests, or a build with extra tools). */
  tools?: Tool[];
  /** Environment passed to shell commands (default: this process's, minus the runtime's secrets). */
  env?: Record<string, string | undefined>;
  /** Direct-mode egress check overrides (tests). */
  egress?: { resolve?: Resolver; allow?: AllowList };
  heartbeatMs?: number;
}

/**
 * Wires a runtime from its configuration: workspace, Hands, tools, LLM client, outbound HTTP and the HTTP
 * app. `main.ts` serves it; tests build the same thing in-process.
 */
export async function buildRuntime(config: RuntimeConfig, options: RuntimeOptions = {}) {
  const log = options.log ?? createLogger({ name: 'runtime', level: config.LOG_LEVEL });
  mkdirSync(config.WORKSPACE_DIR, { recursive: true });
  const workspace = realpathSync(config.WORKSPACE_DIR);
  const tools = new ToolRegistry(options.tools ?? builtinTools());
  const hands: Map<string, Hand> = await loadHands(config.HANDS_DIR, tools.names());
  if (!hands.has(config.RUNTIME_DEFAULT_HAND)) {
    throw new HandLoadError(config.HANDS_DIR, [
      {
        file: 'RUNTIME_DEFAULT_HAND',
        field: config.RUNTIME_DEFAULT_HAND,
        message: `no Hand of that name (available: ${[...hands.keys()].join(', ')})`,
      },
    ]);
  }

  const http: Dispatcher = createOutboundDispatcher({
    httpProxy: config.HTTP_PROXY ?? config.http_proxy,
    httpsProxy: config.HTTPS_PROXY ?? config.https_proxy,
    noProxy: config.NO_PROXY ?? config.no_proxy,
    ...options.egress,
  });
  const llmDispatcher = config.LLM_PROXY_SOCKET ? unixSocketDispatcher(config.LLM_PROXY_SOCKET) : undefined;
  const llm = new OpenAI({
    apiKey: config.PLATFORM_API_KEY,
    baseURL: llmBaseUrl(config.LLM_PROXY_URL),
    maxRetries: config.RUNTIME_LLM_MAX_RETRIES,
    timeout: 10 * 60_000,
    ...(llmDispatcher
      ? {
          fetch: ((input: string | URL | Request, init?: RequestInit) =>
            undiciFetch(input as never, { ...(init as object), dispatcher: llmDispatcher })) as never,
        }
      : {}),
  });

  const agentDeps: AgentDeps = {
    llm,
    tools,
    log,
    toolContext: {
      workspace,
      tenantId: config.TENANT_ID,
      env: childEnv(options.env ?? process.env),
      http,
      platform: { url: config.PLATFORM_API_URL, apiKey: config.PLATFORM_API_KEY },
      log,
    },
  };
  const { app, activeRuns } = createRuntimeApp({
    tenantId: config.TENANT_ID,
    version: RUNTIME_VERSION,
    authToken: config.RUNTIME_AUTH_TOKEN,
    hands,
    defaultHand: config.RUNTIME_DEFAULT_HAND,
    defaultModel: config.RUNTIME_DEFAULT_MODEL,
    maxConcurrentRuns: config.RUNTIME_MAX_CONCURRENT_RUNS,
    workspace,
    tools,
    agent: (run) => runAgent(agentDeps, run),
    log,
    ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
  });
  return {
    app,
    hands,
    workspace,
    activeRuns,
    log,
    async close() {
      await Promise.all([http.close(), llmDispatcher?.close()]);
    },
  };
}
