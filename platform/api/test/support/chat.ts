import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, listenOn, newId, type RunningServer } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import type { LLMock } from '@copilotkit/aimock';
import { loadPlatformConfig, type PlatformConfig } from '../../src/config.js';
import { migrationsDir, type PlatformDB } from '../../src/db.js';
import type { TenantOrchestrator } from '../../src/orchestrator/types.js';
import { createPlatform, type Platform } from '../../src/platform.js';
import { PlatformStore } from '../../src/store.js';
import { Browser, captureLog, freshIp } from './helpers.js';
import { PROVIDER_KEYS, startAimock, TEST_MODELS, usageFor } from './proxy.js';

export const CHAT_MODEL = 'test-openai';

export const FIB_SCRIPT = `#!/usr/bin/env bash
a=0; b=1
for i in $(seq 1 10); do printf '%s ' "$a"; t=$((a + b)); a=$b; b=$t; done
echo
`;
export const FIB_ANSWER = 'The first ten Fibonacci numbers are 0 1 1 2 3 5 8 13 21 34 (script: scripts/fib.sh).';

type Req = { messages: { role: string; content?: unknown }[] };
const lastUser = (req: Req) => {
  const users = req.messages.filter((m) => m.role === 'user');
  const content = users.at(-1)?.content;
  return typeof content === 'string' ? content : JSON.stringify(content ?? '');
};

/**
 * The model's side of a multi-step task, scripted in aimock: write a script, run it, read its output,
 * answer. Plus a slow answer (for streaming, stop and busy tests) and a short one.
 */
export function scriptModel(mock: LLMock): void {
  mock.on(
    { predicate: (req) => lastUser(req as Req).includes('Fibonacci') && (req as Req).messages.at(-1)?.role === 'user' },
    {
      content: "I'll write a script, run it and read its output.",
      toolCalls: [{ id: 'call_write', name: 'write_file', arguments: { path: 'scripts/fib.sh', content: FIB_SCRIPT } }],
      usage: usageFor(100, 20),
    },
  );
  mock.on(
    { toolCallId: 'call_write', toolResultContains: 'scripts/fib.sh' },
    {
      toolCalls: [
        { id: 'call_run', name: 'shell', arguments: { command: 'mkdir -p out && bash scripts/fib.sh > out/fib.txt' } },
      ],
      usage: usageFor(150, 15),
    },
  );
  mock.on(
    { toolCallId: 'call_run', toolResultContains: 'exit code 0' },
    {
      toolCalls: [{ id: 'call_read', name: 'read_file', arguments: { path: 'out/fib.txt' } }],
      usage: usageFor(180, 10),
    },
  );
  mock.on(
    { toolCallId: 'call_read', toolResultContains: '0 1 1 2 3 5 8 13 21 34' },
    { content: FIB_ANSWER, usage: usageFor(200, 30) },
  );
  mock.on(
    { userMessage: 'tell me a long story' },
    { content: 'Once upon a time '.repeat(40), usage: usageFor(20, 200) },
    { latency: 60 },
  );
  mock.on({ predicate: () => true }, { content: 'Hello from the test model.', usage: usageFor(10, 5) });
}

export interface ChatTestbed {
  platform: Platform;
  config: PlatformConfig;
  database: TestDatabase<PlatformDB>;
  store: PlatformStore;
  mock: LLMock;
  api: RunningServer;
  proxy: RunningServer;
  dataDir: string;
  tenantDataDir: string;
  logText(): string;
  browser(): Browser;
  stop(): Promise<void>;
}

/**
 * The platform API and LLM proxy on free ports over a fresh database, the test price list, an aimock
 * upstream scripted by `scriptModel`, and tenant runtimes from `makeOrchestrator`.
 */
export async function startChatTestbed(
  makeOrchestrator: (ports: {
    tenantDataDir: string;
    dataDir: string;
    llmProxy: { host: string; port: number };
    platformApi: { host: string; port: number };
    /** The same two as in-process apps (what main.ts hands the gateway): identity from the socket. */
    apps: { llmProxy: () => Platform['proxyApp']; platformApi: () => Platform['app'] };
  }) => Promise<TenantOrchestrator>,
  options: { env?: Record<string, string> } = {},
): Promise<ChatTestbed> {
  const mock = await startAimock({ chunkSize: 8 });
  scriptModel(mock);
  const database = await createTestDatabase<PlatformDB>({ migrationsDir });
  const dataDir = await mkdtemp(join(tmpdir(), 'chat-test-'));
  await chmod(dataDir, 0o755);
  const [apiPort, proxyPort] = [await freePort(), await freePort()];
  const config = loadPlatformConfig({
    DATABASE_URL: database.url,
    PLATFORM_PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
    SERVICE_DATA_DIR: dataDir,
    BETTER_AUTH_SECRET: randomBytes(32).toString('hex'),
    OPENAI_BASE_URL: `${mock.url}/v1`,
    OPENAI_API_KEY: PROVIDER_KEYS.openai,
    SIGNUP_FREE_CREDIT: '1.00',
    LOG_LEVEL: 'info',
    ...options.env,
  });
  const { log, text: logText } = captureLog();
  let built: Platform | undefined;
  const orchestrator = await makeOrchestrator({
    tenantDataDir: config.tenantDataDir,
    dataDir,
    llmProxy: { host: '127.0.0.1', port: proxyPort },
    platformApi: { host: '127.0.0.1', port: apiPort },
    apps: { llmProxy: () => (built as Platform).proxyApp, platformApi: () => (built as Platform).app },
  });
  const platform = await createPlatform(config, {
    log,
    orchestrator,
    runtimeEnv: { RUNTIME_DEFAULT_MODEL: CHAT_MODEL },
  });
  built = platform;
  const store = new PlatformStore(database.db);
  for (const model of TEST_MODELS) await store.insertModelIfMissing({ id: newId('mdl'), ...model });
  platform.startBackground();
  const api = await listenOn(platform.app, { port: apiPort });
  const proxy = await listenOn(platform.proxyApp, { port: proxyPort });
  return {
    platform,
    config,
    database,
    store,
    mock,
    api,
    proxy,
    dataDir,
    tenantDataDir: config.tenantDataDir,
    logText,
    browser: () => new Browser(api.url, freshIp()),
    async stop() {
      await api.close();
      await proxy.close();
      await platform.close();
      await database.drop();
      await mock.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Reads a `/api/chat` SSE response into events (skipping keep-alives). */
export async function readEvents(res: Response): Promise<Record<string, any>[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .map((frame) =>
      frame
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n'),
    )
    .filter(Boolean)
    .map((data) => JSON.parse(data));
}
