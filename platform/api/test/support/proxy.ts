import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, listenOn, newId, type RunningServer } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { LLMock } from '@copilotkit/aimock';
import OpenAI from 'openai';
import { issueApiKey } from '../../src/api-keys.js';
import { loadPlatformConfig } from '../../src/config.js';
import { migrationsDir, type PlatformDB } from '../../src/db.js';
import { createPlatform, type Platform } from '../../src/platform.js';
import { type LedgerRow, type ModelRow, PlatformStore } from '../../src/store.js';
import { captureLog, RecordingRequester } from './helpers.js';
import { insertTenant } from './tenants.js';

/** One aimock server speaking every provider's wire format (OpenAI, Anthropic, Gemini) on one port. */
/** The provider keys the testbed configures; aimock refuses any other (so a test proves which key went out). */
export const PROVIDER_KEYS = {
  openai: 'sk-test-openai-provider-key',
  anthropic: 'sk-ant-test-provider-key',
  gemini: 'gemini-test-provider-key',
  compat: 'ollama-test-key',
};

export async function startAimock(
  options: { chunkSize?: number; latency?: number; extraKeys?: string[] } = {},
): Promise<LLMock> {
  const mock = new LLMock({
    port: 0,
    chunkSize: options.chunkSize ?? 6,
    latency: options.latency ?? 0,
    auth: { apiKeys: [...Object.values(PROVIDER_KEYS), ...(options.extraKeys ?? [])] },
  });
  await mock.start();
  return mock;
}

/** Usage in every provider's own field names: aimock puts each provider's into its wire format. */
export const usageFor = (input: number, output: number) => ({
  prompt_tokens: input,
  completion_tokens: output,
  input_tokens: input,
  output_tokens: output,
  promptTokenCount: input,
  candidatesTokenCount: output,
});

export type TestModel = Omit<ModelRow, 'id' | 'created_at' | 'updated_at'>;

/** The test price list: $3 / $15 per million tokens, 30 % markup, one model per provider and a demo one. */
export const TEST_MODELS: TestModel[] = (
  [
    ['test-openai', 'openai', 'gpt-test'],
    ['test-claude', 'anthropic', 'claude-test'],
    ['test-gemini', 'google', 'gemini-test'],
    ['test-compat', 'openai-compatible', 'llama-test'],
  ] as const
).map(([name, provider, upstream]) => ({
  name,
  display_name: name,
  provider,
  upstream_model: upstream,
  provider_cost_input_per_m_micros: 3_000_000n,
  provider_cost_output_per_m_micros: 15_000_000n,
  markup_pct: 30,
  enabled: true,
  demo: false,
  context_window: 128_000,
  max_output_tokens: 4_096,
}));

export interface ProxyTestbed {
  platform: Platform;
  database: TestDatabase<PlatformDB>;
  store: PlatformStore;
  server: RunningServer;
  /** The proxy's base URL for OpenAI SDKs (`…/v1`). */
  baseURL: string;
  url: string;
  logText(): string;
  tenant(creditMicros: bigint): Promise<{ tenantId: string; apiKey: string; userId: string }>;
  client(apiKey: string, options?: Partial<ConstructorParameters<typeof OpenAI>[0]>): OpenAI;
  balance(tenantId: string): Promise<bigint>;
  ledger(tenantId: string): Promise<LedgerRow[]>;
  usageRows(tenantId: string): Promise<Awaited<ReturnType<typeof usageRows>>>;
  grant(tenantId: string, micros: bigint): Promise<void>;
  stop(): Promise<void>;
}

function usageRows(db: TestDatabase<PlatformDB>['db'], tenantId: string) {
  return db.selectFrom('usage_logs').selectAll().where('tenant_id', '=', tenantId).orderBy('created_at').execute();
}

/**
 * The platform over a fresh test database with the LLM proxy listening on a free port. Provider URLs point at
 * `upstreamUrl` (an aimock), unless `env` says otherwise.
 */
export async function startProxyTestbed(
  options: {
    upstreamUrl?: string;
    env?: Record<string, string>;
    models?: TestModel[];
    database?: TestDatabase<PlatformDB>;
  } = {},
): Promise<ProxyTestbed> {
  const database = options.database ?? (await createTestDatabase<PlatformDB>({ migrationsDir }));
  const dataDir = await mkdtemp(join(tmpdir(), 'llm-proxy-test-'));
  await chmod(dataDir, 0o755);
  const upstream = options.upstreamUrl;
  const config = loadPlatformConfig({
    DATABASE_URL: database.url,
    PLATFORM_PUBLIC_URL: 'http://127.0.0.1:1',
    SERVICE_DATA_DIR: dataDir,
    BETTER_AUTH_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'info',
    ...(upstream
      ? {
          OPENAI_BASE_URL: `${upstream}/v1`,
          OPENAI_API_KEY: PROVIDER_KEYS.openai,
          ANTHROPIC_BASE_URL: upstream,
          ANTHROPIC_API_KEY: PROVIDER_KEYS.anthropic,
          GEMINI_BASE_URL: upstream,
          GEMINI_API_KEY: PROVIDER_KEYS.gemini,
          OPENAI_COMPAT_BASE_URL: `${upstream}/v1`,
          OPENAI_COMPAT_API_KEY: PROVIDER_KEYS.compat,
          OPENAI_COMPAT_NAME: 'Ollama',
        }
      : {}),
    ...options.env,
  });
  const { log, text: logText } = captureLog();
  const platform = await createPlatform(config, { log, requester: new RecordingRequester() });
  const store = new PlatformStore(database.db);
  for (const model of options.models ?? TEST_MODELS) await store.insertModelIfMissing({ id: newId('mdl'), ...model });
  platform.startBackground();
  const server = await listenOn(platform.proxyApp, { port: await freePort() });

  const testbed: ProxyTestbed = {
    platform,
    database,
    store,
    server,
    url: server.url,
    baseURL: `${server.url}/v1`,
    logText,
    async tenant(creditMicros) {
      const { tenantId, userId } = await insertTenant(store, { credit: creditMicros });
      return { tenantId, apiKey: await issueApiKey(store, tenantId), userId };
    },
    client: (apiKey, extra = {}) => new OpenAI({ apiKey, baseURL: testbed.baseURL, maxRetries: 0, ...extra }),
    balance: async (tenantId) => (await store.findCredits(tenantId))!.balance_micros,
    ledger: (tenantId) =>
      database.db
        .selectFrom('credit_ledger')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .orderBy('id')
        .execute() as never,
    usageRows: (tenantId) => usageRows(database.db, tenantId),
    grant: async (tenantId, micros) => {
      await store.postLedgerEntry({ tenantId, amountMicros: micros, kind: 'admin_grant' });
    },
    async stop() {
      await server.close();
      await platform.close();
      if (!options.database) await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return testbed;
}
