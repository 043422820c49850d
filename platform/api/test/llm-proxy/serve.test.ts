import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoModel } from '@agentsquads/demo-model';
import { freePort, isProcessRunning, type ManagedProcess, startProcess, waitFor, waitForHttp } from '@agentstack/core';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import type { LLMock } from '@copilotkit/aimock';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueApiKey } from '../../src/api-keys.js';
import { migrationsDir, type PlatformDB } from '../../src/db.js';
import { PlatformStore } from '../../src/store.js';
import { PROVIDER_KEYS, startAimock, usageFor } from '../support/proxy.js';
import { insertTenant } from '../support/tenants.js';

const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const tsxLoader = import.meta.resolve('tsx');
const NO_PROVIDERS = {
  OPENAI_API_KEY: '',
  OPENAI_BASE_URL: '',
  ANTHROPIC_API_KEY: '',
  ANTHROPIC_BASE_URL: '',
  GEMINI_API_KEY: '',
  GOOGLE_API_KEY: '',
  GEMINI_BASE_URL: '',
  OPENAI_COMPAT_BASE_URL: '',
  DEMO_MODEL_URL: '',
};

let database: TestDatabase<PlatformDB>;
let store: PlatformStore;
let dataDir: string;
let mock: LLMock;

beforeAll(async () => {
  database = await createTestDatabase<PlatformDB>({ migrationsDir });
  store = new PlatformStore(database.db);
  dataDir = await mkdtemp(join(tmpdir(), 'llm-proxy-serve-'));
  await chmod(dataDir, 0o755);
  mock = await startAimock({ chunkSize: 4 });
  mock.on(
    { userMessage: 'long story' },
    {
      content: 'Once upon a time there was a proxy that billed every token exactly. '.repeat(4),
      usage: usageFor(30, 70),
    },
    { latency: 60 },
  );
});
afterAll(async () => {
  await mock?.stop();
  await database?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** `main.ts serve` as the stack runs it (plain node with the tsx loader, so a signal reaches the server itself). */
async function serve(env: Record<string, string>) {
  const apiPort = await freePort();
  const proxyPort = await freePort();
  const proc = startProcess(process.execPath, ['--import', tsxLoader, main, 'serve'], {
    env: {
      ...process.env,
      ...NO_PROVIDERS,
      DATABASE_URL: database.url,
      SERVICE_DATA_DIR: dataDir,
      PLATFORM_API_PORT: String(apiPort),
      LLM_PROXY_PORT: String(proxyPort),
      PLATFORM_PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
      LOG_LEVEL: 'info',
      ...env,
    },
  });
  const proxyUrl = `http://127.0.0.1:${proxyPort}`;
  try {
    await waitForHttp(`http://127.0.0.1:${apiPort}/api/health`, 60_000);
    await waitForHttp(`${proxyUrl}/health`, 10_000);
  } catch (err) {
    await proc.stop();
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  }
  return { proc, proxyUrl, baseURL: `${proxyUrl}/v1` };
}

async function tenant(credit: bigint) {
  const { tenantId } = await insertTenant(store, { credit });
  return { tenantId, apiKey: await issueApiKey(store, tenantId) };
}

const balance = async (tenantId: string) => (await store.findCredits(tenantId))!.balance_micros;
const holds = (tenantId: string) =>
  database.db.selectFrom('llm_reservations').selectAll().where('tenant_id', '=', tenantId).execute();

describe('main.ts serve: the proxy on its own port', () => {
  it('without any provider, chat answers a clear "no model provider configured" naming the variables', async () => {
    const { proc, baseURL, proxyUrl } = await serve({});
    try {
      // pino writes asynchronously: wait for the warning rather than expecting it already flushed.
      await waitFor(() => /No model provider is configured/.test(proc.output()), { what: 'the warning in the log' });
      const health = (await (await fetch(`${proxyUrl}/health`)).json()) as Record<string, unknown>;
      expect(health).toMatchObject({ status: 'ok', service: 'llm-proxy', demo: false });
      const { tenantId, apiKey } = await tenant(1_000_000n);
      const client = new OpenAI({ apiKey, baseURL, maxRetries: 3 });
      const models = await client.models.list();
      expect(models.data.map((m) => m.id)).toContain('gpt-4o-mini'); // the seeded price list
      expect(models.data.every((m) => (m as unknown as { available: boolean }).available === false)).toBe(true);
      const started = Date.now();
      const error = await client.chat.completions
        .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] })
        .catch((e) => e);
      expect(Date.now() - started).toBeLessThan(2_000); // x-should-retry: false — the SDK does not retry it
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect(error.status).toBe(503);
      expect(error.code).toBe('no_provider_configured');
      for (const variable of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'GEMINI_API_KEY', 'OPENAI_COMPAT_BASE_URL']) {
        expect(error.message).toContain(variable);
      }
      expect(await balance(tenantId)).toBe(1_000_000n);
    } finally {
      await proc.stop();
    }
  });

  it('a process killed mid-call leaves a hold that another instance’s sweeper releases', async () => {
    const env = {
      OPENAI_BASE_URL: `${mock.url}/v1`,
      OPENAI_API_KEY: PROVIDER_KEYS.openai,
      LLM_PROXY_RESERVATION_TTL_SECONDS: '1',
      LLM_PROXY_SWEEP_INTERVAL_SECONDS: '0.2',
    };
    const first = await serve(env);
    let second: { proc: ManagedProcess } | undefined;
    try {
      const { tenantId, apiKey } = await tenant(1_000_000n);
      const stream = await new OpenAI({ apiKey, baseURL: first.baseURL, maxRetries: 0 }).chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'long story' }],
        stream: true,
      });
      const iterator = stream[Symbol.asyncIterator]();
      await iterator.next();
      const [held] = await holds(tenantId);
      expect(held?.state).toBe('open');
      expect(await balance(tenantId)).toBe(1_000_000n - held!.amount_micros);

      process.kill(first.proc.pid, 'SIGKILL');
      await waitFor(() => !isProcessRunning(first.proc.pid), { what: 'the proxy to die' });
      await iterator.next().catch(() => undefined);

      second = await serve(env);
      await waitFor(async () => (await holds(tenantId))[0]?.state === 'expired', {
        timeoutMs: 15_000,
        what: 'the sweeper to release the hold',
      });
      expect(await balance(tenantId)).toBe(1_000_000n);
      expect(
        await database.db.selectFrom('usage_logs').selectAll().where('tenant_id', '=', tenantId).execute(),
      ).toEqual([]);
    } finally {
      await second?.proc.stop();
      await first.proc.stop();
    }
  });

  it('SIGTERM stops calls in flight, bills what was produced, and tells the client', async () => {
    const running = await serve({ OPENAI_BASE_URL: `${mock.url}/v1`, OPENAI_API_KEY: PROVIDER_KEYS.openai });
    try {
      const { tenantId, apiKey } = await tenant(1_000_000n);
      const stream = await new OpenAI({ apiKey, baseURL: running.baseURL, maxRetries: 0 }).chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'long story' }],
        stream: true,
      });
      let text = '';
      let error: unknown;
      try {
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta.content ?? '';
          if (text.length >= 8 && isProcessRunning(running.proc.pid)) process.kill(running.proc.pid, 'SIGTERM');
        }
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('proxy_shutting_down');
      expect(await running.proc.exited).toBe(0);
      const rows = await database.db.selectFrom('usage_logs').selectAll().where('tenant_id', '=', tenantId).execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ usage_source: 'estimated', outcome: 'aborted' });
      expect(rows[0]!.output_tokens).toBeGreaterThan(0);
      expect((await holds(tenantId))[0]?.state).toBe('settled');
      expect(await balance(tenantId)).toBe(1_000_000n - rows[0]!.cost_micros - rows[0]!.margin_micros);
    } finally {
      await running.proc.stop();
    }
  });

  it('with DEMO_MODEL_URL (start --demo): the demo model is added, labelled, streams and is billed', async () => {
    const demo = await startDemoModel({ port: 0, chunkDelayMs: 10 });
    const running = await serve({ DEMO_MODEL_URL: demo.url });
    try {
      const { tenantId, apiKey } = await tenant(10_000_000n);
      const client = new OpenAI({ apiKey, baseURL: running.baseURL, maxRetries: 0 });
      const models = (await client.models.list()).data as unknown as Record<string, unknown>[];
      // The one model that works offline comes first, labelled as the demo.
      expect(models[0]).toMatchObject({ id: 'demo', demo: true, available: true, label: 'Demo model (offline)' });
      const stream = await client.chat.completions.create({
        model: 'demo',
        messages: [{ role: 'user', content: 'Show me some code please' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      const growing: number[] = [];
      let text = '';
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        growing.push(text.length);
        if (chunk.usage) usage = chunk.usage;
      }
      expect(new Set(growing).size).toBeGreaterThan(10);
      expect(text).toContain('```python');
      const rows = await database.db.selectFrom('usage_logs').selectAll().where('tenant_id', '=', tenantId).execute();
      expect(rows).toMatchObject([
        {
          model: 'demo',
          provider: 'demo',
          input_tokens: usage?.prompt_tokens,
          output_tokens: usage?.completion_tokens,
        },
      ]);
      expect(await balance(tenantId)).toBe(10_000_000n - rows[0]!.cost_micros - rows[0]!.margin_micros);
      expect(rows[0]!.cost_micros).toBeGreaterThan(0n);
      // Other models without their provider say so, and point at the demo model.
      const error = await client.chat.completions
        .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
        .catch((e) => e);
      expect(error.code).toBe('no_provider_configured');
      expect(error.message).toContain('use the model `demo`');
    } finally {
      await running.proc.stop();
      await demo.stop();
    }
  });
});
