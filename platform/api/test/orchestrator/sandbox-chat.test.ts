import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureRuntimeBundle, HANDS_DIR } from '@agentsquads/runtime/bundle';
import { createSecretBox, waitFor } from '@agentstack/core';
import { createTestSandboxManager, type TestSandboxManager } from '@agentstack/sandbox/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantGateway } from '../../src/orchestrator/gateway.js';
import { SandboxOrchestrator } from '../../src/orchestrator/sandbox.js';
import { tenantWorkspaceDir } from '../../src/tenants.js';
import { type ChatTestbed, FIB_ANSWER, FIB_SCRIPT, readEvents, startChatTestbed } from '../support/chat.js';

/**
 * The whole path with real peers: sign-up → the platform creates and starts a bubblewrap sandbox → chat
 * relays a run to the runtime through its socket → the runtime calls the real LLM proxy through the gateway
 * (llm.sock bridged to 127.0.0.1:8090 inside) with the tenant's key → aimock answers → tools run inside.
 */
let tb: ChatTestbed;
let sandboxes: TestSandboxManager;
let orchestrator: SandboxOrchestrator;

beforeAll(async () => {
  const runtimeBundle = await ensureRuntimeBundle();
  sandboxes = await createTestSandboxManager({ cgroupGroup: `agentsquads-chat-test-${process.pid}` });
  tb = await startChatTestbed(async ({ tenantDataDir, dataDir, llmProxy, platformApi }) => {
    const log = { info() {}, warn() {} };
    orchestrator = new SandboxOrchestrator({
      sandboxes: sandboxes.manager,
      gateway: new TenantGateway({ rootDir: join(dataDir, 'gateways'), llmProxy, platformApi, log }),
      paths: { tenantDataDir, runtimeBundle, handsDir: HANDS_DIR },
      secrets: createSecretBox(new Uint8Array(32).fill(9), 'tenant-runtime'),
      log,
    });
    return orchestrator;
  });
}, 120_000);

afterAll(async () => {
  await tb?.stop();
  await sandboxes?.cleanup();
});

describe('chat with a sandboxed runtime', () => {
  it('signs up, starts the sandbox, runs a tool task inside it and bills it through the LLM proxy', async () => {
    const browser = tb.browser();
    const signUp = await browser.fetch('/api/auth/sign-up/email', {
      method: 'POST',
      json: { email: `sbx-${Date.now()}@example.com`, password: 'correct horse battery', name: 'Sandbox Tester' },
    });
    expect(signUp.status).toBe(200);
    const { tenant } = (await (await browser.fetch('/api/account')).json()) as { tenant: { id: string } };
    await waitFor(
      async () => ((await (await browser.fetch('/api/runtime')).json()) as { state: string }).state === 'running',
      { timeoutMs: 30_000, what: 'the sandboxed runtime' },
    );
    expect((await tb.store.findTenant(tenant.id))?.runtime_id).toBe(tenant.id);

    const res = await browser.fetch('/api/chat', {
      method: 'POST',
      json: { message: 'Write a script that prints ten Fibonacci numbers and run it' },
    });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    const done = events.at(-1)!;
    expect(done, JSON.stringify(events.slice(-2))).toMatchObject({ type: 'done', finishReason: 'stop' });
    expect(events.filter((e) => e.type === 'tool_result').map((e) => e.isError)).toEqual([false, false, false]);
    expect(
      events
        .filter((e) => e.type === 'text')
        .map((e) => e.delta)
        .join(''),
    ).toContain(FIB_ANSWER);
    expect(BigInt(done.chargedMicros)).toBeGreaterThan(0n);

    // The shell tool ran inside the sandbox, as the tenant: its files belong to the tenant's uid.
    const workspace = tenantWorkspaceDir(tb.tenantDataDir, tenant.id);
    expect(readFileSync(join(workspace, 'scripts/fib.sh'), 'utf8')).toBe(FIB_SCRIPT);
    expect(readFileSync(join(workspace, 'out/fib.txt'), 'utf8')).toBe('0 1 1 2 3 5 8 13 21 34 \n');
    const owner = statSync(join(workspace, 'out/fib.txt')).uid;
    expect(owner).toBeGreaterThanOrEqual(2_000_000);
    expect((await orchestrator.exec(tenant.id, ['id', '-u'])).stdout.trim()).toBe(String(owner));
  }, 120_000);
});
