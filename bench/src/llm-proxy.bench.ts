import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { issueApiKey } from '@agentsquads/api/src/api-keys.js';
import type { PlatformDB } from '@agentsquads/api/src/db.js';
import { PlatformStore } from '@agentsquads/api/src/store.js';
import { freePort, newId, startProcess, waitFor, waitForHttp } from '@agentstack/core';
import { createDatabase, startEmbeddedPostgres } from '@agentstack/db';
import { load, percentile, report, SMOKE } from './lib.js';

/**
 * The LLM proxy (auth, rate limit, hold, upstream call, settlement — each call writes three ledger rows and a
 * usage row in PostgreSQL) versus calling the same aimock upstream directly. Both run as their own
 * processes, as deployed: aimock in one, `platform/api` `main.ts serve` in another, the client here.
 * Measured: non-streaming latency (p50/p99, one at a time), streaming time to first token and to the end
 * (p50/p99, one at a time), and throughput with 16 calls in flight — from 16 tenants, and from one tenant
 * (whose calls queue on its credits row: the price of never overdrawing).
 */
const ANSWER =
  'Benchmarks measure what a proxy adds: authentication, a rate limit, a hold on credits, the upstream call ' +
  'and the settlement, all before the last byte reaches the caller.';

const AIMOCK_SCRIPT = `
import { LLMock } from '@copilotkit/aimock';
const mock = new LLMock({ port: 0, chunkSize: 8, journalMaxEntries: 1 });
mock.on({ userMessage: 'bench' }, { content: ${JSON.stringify(ANSWER)}, usage: { prompt_tokens: 40, completion_tokens: 32 } });
await mock.start();
console.log('AIMOCK_URL=' + mock.url);
`;

export async function main() {
  const benchDir = fileURLToPath(new URL('..', import.meta.url));
  const apiMain = fileURLToPath(new URL('../../platform/api/src/main.ts', import.meta.url));
  const tmp = await mkdtemp(join(tmpdir(), 'bench-llm-proxy-'));
  await chmod(tmp, 0o755);
  const pg = await startEmbeddedPostgres({ dataDir: join(tmp, 'pg'), databases: ['platform'], durable: false });

  const aimock = startProcess(process.execPath, ['--input-type=module', '-e', AIMOCK_SCRIPT], { cwd: benchDir });
  const upstream = await waitFor(() => /AIMOCK_URL=(\S+)/.exec(aimock.output())?.[1], {
    timeoutMs: 20_000,
    what: 'aimock',
  });

  const apiPort = await freePort();
  const proxyPort = await freePort();
  const api = startProcess(process.execPath, ['--import', import.meta.resolve('tsx'), apiMain, 'serve'], {
    env: {
      ...process.env,
      DATABASE_URL: pg.urlFor('platform'),
      SERVICE_DATA_DIR: join(tmp, 'data'),
      PLATFORM_API_PORT: String(apiPort),
      LLM_PROXY_PORT: String(proxyPort),
      OPENAI_BASE_URL: `${upstream}/v1`,
      OPENAI_API_KEY: 'sk-bench',
      LLM_PROXY_RATE_LIMIT_PER_MINUTE: '100000000',
      LOG_LEVEL: 'warn',
    },
  });
  try {
    await waitForHttp(`http://127.0.0.1:${apiPort}/api/health`, 90_000);
    const proxy = `http://127.0.0.1:${proxyPort}`;
    await waitForHttp(`${proxy}/health`, 10_000);

    // Tenants with plenty of credit, made the way sign-up makes them.
    const database = createDatabase<PlatformDB>({ connectionString: pg.urlFor('platform'), max: 2 });
    const store = new PlatformStore(database.db);
    const keys: string[] = [];
    for (let i = 0; i < 16; i++) {
      const userId = newId('usr');
      await database.db
        .insertInto('users')
        .values({
          id: userId,
          name: 'bench',
          email: `${userId.toLowerCase()}@bench.test`,
          email_verified: true,
          image: null,
          updated_at: new Date(),
          provider: null,
          provider_id: null,
          ban_reason: null,
          ban_expires: null,
        })
        .execute();
      const tenant = await store.insertTenant(newId('ten'), userId);
      await store.insertCredits(tenant.id);
      await store.postLedgerEntry({ tenantId: tenant.id, amountMicros: 1_000_000_000n, kind: 'admin_grant' });
      keys.push(await issueApiKey(store, tenant.id));
    }
    await database.db.destroy();
    await database.pool.end().catch(() => {});
    const apiKey = keys[0]!;

    const targets = {
      proxy: { url: `${proxy}/v1/chat/completions`, headers: { authorization: `Bearer ${apiKey}` } },
      direct: { url: `${upstream}/v1/chat/completions`, headers: { authorization: 'Bearer sk-bench' } },
    };
    const body = (stream: boolean) =>
      JSON.stringify({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'bench' }],
        ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      });
    async function complete(target: keyof typeof targets, key?: string) {
      const res = await fetch(targets[target].url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...targets[target].headers,
          ...(key ? { authorization: `Bearer ${key}` } : {}),
        },
        body: body(false),
      });
      const json = (await res.json()) as { choices?: { message: { content: string } }[] };
      if (res.status !== 200 || json.choices?.[0]?.message.content !== ANSWER) {
        throw new Error(`${target} answered ${res.status}: ${JSON.stringify(json).slice(0, 300)}`);
      }
    }
    async function stream(target: keyof typeof targets): Promise<{ ttft: number; total: number }> {
      const started = performance.now();
      const res = await fetch(targets[target].url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...targets[target].headers },
        body: body(true),
      });
      if (res.status !== 200 || !res.body) throw new Error(`${target} stream answered ${res.status}`);
      let ttft = 0;
      let text = '';
      const decoder = new TextDecoder();
      for await (const bytes of res.body) {
        text += decoder.decode(bytes, { stream: true });
        if (!ttft && text.includes('"content":"B')) ttft = performance.now() - started;
      }
      if (!text.includes('[DONE]') || !ttft) throw new Error(`${target} stream incomplete`);
      return { ttft, total: performance.now() - started };
    }

    const sequential = SMOKE ? 15 : 300;
    const total = SMOKE ? 40 : 1_500;
    const concurrency = 16;
    // Warm both paths (JIT, connection pools, prepared plans).
    for (let i = 0; i < (SMOKE ? 5 : 30); i++) await Promise.all([complete('proxy'), complete('direct')]);

    const latencies = { proxy: [] as number[], direct: [] as number[] };
    const ttft = { proxy: [] as number[], direct: [] as number[] };
    const streamTotal = { proxy: [] as number[], direct: [] as number[] };
    // Interleaved, so load from the machine's other work hits both sides alike.
    for (let i = 0; i < sequential; i++) {
      for (const target of (i % 2 ? ['proxy', 'direct'] : ['direct', 'proxy']) as (keyof typeof targets)[]) {
        const t0 = performance.now();
        await complete(target);
        latencies[target].push(performance.now() - t0);
        const s = await stream(target);
        ttft[target].push(s.ttft);
        streamTotal[target].push(s.total);
      }
    }
    const direct1 = await load(() => complete('direct'), { total, concurrency });
    // Many tenants at once (each runtime makes one call at a time) …
    const proxied = await load((i) => complete('proxy', keys[i % keys.length]), { total, concurrency });
    // … and one tenant with all calls in flight at once: its holds queue on its one credits row.
    const oneTenant = await load(() => complete('proxy'), { total, concurrency });
    const direct2 = await load(() => complete('direct'), { total, concurrency });
    const directPerSecond = (direct1.perSecond + direct2.perSecond) / 2;

    const p = (xs: number[], q: number) => percentile(xs, q);
    const added = (q: number, xs: typeof latencies) => (p(xs.proxy, q) - p(xs.direct, q)).toFixed(1);
    await report({
      name: 'llm-proxy',
      ours: 'LLM proxy (platform/api) in front of aimock',
      peer: 'the same aimock called directly',
      figures: [
        {
          label: 'p50 latency',
          ours: p(latencies.proxy, 50),
          peer: p(latencies.direct, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'p99 latency',
          ours: p(latencies.proxy, 99),
          peer: p(latencies.direct, 99),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'stream TTFT p50',
          ours: p(ttft.proxy, 50),
          peer: p(ttft.direct, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'stream TTFT p99',
          ours: p(ttft.proxy, 99),
          peer: p(ttft.direct, 99),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'stream complete p50',
          ours: p(streamTotal.proxy, 50),
          peer: p(streamTotal.direct, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: `throughput, ${concurrency} tenants × 1 in flight`,
          ours: proxied.perSecond,
          peer: directPerSecond,
          unit: 'req/s',
          higherIsBetter: true,
        },
        {
          label: `throughput, 1 tenant × ${concurrency} in flight`,
          ours: oneTenant.perSecond,
          peer: directPerSecond,
          unit: 'req/s',
          higherIsBetter: true,
        },
      ],
      notes: [
        `Added latency: p50 ${added(50, latencies)} ms, p99 ${added(99, latencies)} ms (non-streaming); ` +
          `time to first token: p50 ${added(50, ttft)} ms, p99 ${added(99, ttft)} ms.`,
        `${sequential} sequential calls of each kind per side (one tenant), then ${total} calls per side with ${concurrency} in flight. ` +
          'Every proxied call authenticates, counts against the rate limit, holds and settles credits in PostgreSQL.',
      ],
    });
  } finally {
    await api.stop();
    await aimock.stop();
    await pg.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}
