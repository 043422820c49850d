import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { ensureRuntimeBundle, HANDS_DIR } from '@agentsquads/runtime/bundle';
import { createSecretBox, waitFor } from '@agentstack/core';
import { createTestSandboxManager, type TestSandboxManager } from '@agentstack/sandbox/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueApiKey } from '../src/api-keys.js';
import { TenantGateway } from '../src/orchestrator/gateway.js';
import { SandboxOrchestrator } from '../src/orchestrator/sandbox.js';
import { tenantWorkspaceDir } from '../src/tenants.js';
import { type ChatTestbed, FIB_ANSWER, FIB_SCRIPT, readEvents, startChatTestbed } from './support/chat.js';

/**
 * The whole path with real isolation: sign-up → a bubblewrap sandbox running the runtime → chat through the
 * platform API → the runtime reaches the LLM proxy only through its gateway socket → the proxy bills the
 * tenant → the tool work happens in the sandboxed workspace → the conversation is persisted.
 */
let tb: ChatTestbed;
let sandboxes: TestSandboxManager;
let orchestrator: SandboxOrchestrator;
let gatewayRoot: string;

beforeAll(async () => {
  sandboxes = await createTestSandboxManager({ cgroupGroup: `agentsquads-chat-test-${process.pid}` });
  tb = await startChatTestbed(async ({ tenantDataDir, dataDir, apps }) => {
    gatewayRoot = join(dataDir, 'gateways');
    orchestrator = new SandboxOrchestrator({
      sandboxes: sandboxes.manager,
      // As main.ts does: the platform's own apps on each tenant's sockets, stamped with the tenant.
      gateway: new TenantGateway({
        rootDir: gatewayRoot,
        llmProxy: { app: apps.llmProxy },
        platformApi: { app: apps.platformApi },
        log: quiet,
      }),
      paths: { tenantDataDir, runtimeBundle: await ensureRuntimeBundle(), handsDir: HANDS_DIR },
      secrets: createSecretBox(new Uint8Array(32).fill(9), 'tenant-runtime'),
      log: quiet,
    });
    return orchestrator;
  });
}, 180_000);

afterAll(async () => {
  await tb?.stop();
  await sandboxes?.cleanup();
});

const quiet = { info() {}, warn() {} };

function viaSocket(socketPath: string, method: string, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

describe('chat with a sandboxed tenant runtime', () => {
  it('signs up, starts the sandbox, runs a multi-step tool task and persists it', async () => {
    const browser = tb.browser();
    const signUp = await browser.fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: 'sandboxed@example.com', password: 'correct horse battery', name: 'Sandboxed' },
    });
    expect(signUp.status).toBe(200);
    const { tenant } = (await (await browser.fetch('/api/account')).json()) as { tenant: { id: string } };
    const started = Date.now();
    await waitFor(
      async () => ((await (await browser.fetch('/api/runtime')).json()) as { state: string }).state === 'running',
      { timeoutMs: 60_000, intervalMs: 100, what: 'the sandboxed runtime to be running' },
    );
    const healthyMs = Date.now() - started;
    expect(healthyMs).toBeLessThan(60_000);

    const res = await browser.fetch('/api/chat', {
      method: 'POST',
      json: { message: 'Write a script that prints ten Fibonacci numbers, run it and read the output' },
    });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    const done = events.at(-1)!;
    expect(done).toMatchObject({ type: 'done', finishReason: 'stop', iterations: 4 });
    expect(events.filter((e) => e.type === 'tool_result').map((e) => [e.name, e.isError])).toEqual([
      ['write_file', false],
      ['shell', false],
      ['read_file', false],
    ]);
    expect(BigInt(done.chargedMicros)).toBeGreaterThan(0n);

    // The shell ran inside the sandbox, as the tenant, in its own workspace on the host.
    const workspace = tenantWorkspaceDir(tb.tenantDataDir, tenant.id);
    expect(readFileSync(join(workspace, 'scripts/fib.sh'), 'utf8')).toBe(FIB_SCRIPT);
    expect(readFileSync(join(workspace, 'out/fib.txt'), 'utf8')).toBe('0 1 1 2 3 5 8 13 21 34 \n');
    const owner = statSync(join(workspace, 'out/fib.txt')).uid;
    expect(owner).toBeGreaterThanOrEqual(2_000_000);
    expect((await orchestrator.exec(tenant.id, ['id', '-u'])).stdout.trim()).toBe(String(owner));

    const conversationId = events[0]!.conversationId as string;
    const page = (await (await browser.fetch(`/api/conversations/${conversationId}/messages`)).json()) as {
      items: { role: string; content: string }[];
    };
    expect(page.items.map((m) => m.role)).toEqual([
      'user',
      'assistant',
      'tool',
      'assistant',
      'tool',
      'assistant',
      'tool',
      'assistant',
    ]);
    expect(page.items.at(-1)!.content).toBe(FIB_ANSWER);

    // Identity comes from the socket: another tenant's valid key is refused on this tenant's sockets, and
    // the account routes are closed to runtimes.
    const other = await tb.browser().fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: 'other@example.com', password: 'correct horse battery', name: 'Other' },
    });
    const otherTenant = (await tb.store.findTenantOfUser(((await other.json()) as { user: { id: string } }).user.id))!;
    const otherKey = await issueApiKey(tb.store, otherTenant.id);
    const llmSock = join(gatewayRoot, tenant.id, 'llm.sock');
    const platformSock = join(gatewayRoot, tenant.id, 'platform.sock');
    const stolen = await viaSocket(llmSock, 'GET', '/v1/models', { authorization: `Bearer ${otherKey}` });
    expect(stolen.status).toBe(403);
    expect(stolen.body).toContain('key_not_for_this_tenant');
    const stolenApi = await viaSocket(platformSock, 'GET', '/api/tenant', {
      authorization: `Bearer ${otherKey}`,
      'x-agentsquads-socket-tenant': otherTenant.id,
    });
    expect(stolenApi.status).toBe(403);
    const signUpFromInside = await viaSocket(platformSock, 'POST', '/api/auth/sign-up/email', {
      'content-type': 'application/json',
    });
    expect(signUpFromInside.status).toBe(403);

    // Account deletion destroys the runtime and its files.
    const deleted = await browser.fetch('/api/account', {
      method: 'DELETE',
      json: { confirm: 'sandboxed@example.com' },
    });
    expect(deleted.status).toBe(200);
    expect((await orchestrator.status(tenant.id)).state).toBe('missing');
    expect((await sandboxes.manager.list()).map((s) => s.id)).not.toContain(tenant.id);
  });
});
