import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ensureRuntimeBundle, HANDS_DIR } from '@agentsquads/runtime/bundle';
import { createRuntimeClient } from '@agentsquads/runtime/client';
import { waitFor } from '@agentstack/core';
import type { CreateTenantRuntime, RuntimeStatus, TenantOrchestrator } from '../../src/orchestrator/types.js';
import { tenantWorkspaceDir } from '../../src/tenants.js';

/**
 * Test support for the chat relay only: the real runtime bundle as a plain child process per tenant (no
 * isolation), reaching the LLM proxy and platform API over TCP. The isolation itself is tested against the
 * real backends in test/orchestrator/.
 */
export class ProcessOrchestrator implements TenantOrchestrator {
  readonly backend = 'sandbox' as const;
  private readonly tenants = new Map<
    string,
    { request: CreateTenantRuntime; token: string; child?: ChildProcess; socketPath: string }
  >();
  /** Every start, for tests that count them. */
  readonly starts: string[] = [];

  constructor(
    private readonly options: {
      tenantDataDir: string;
      llmProxyUrl: string;
      platformApiUrl: string;
      env?: Record<string, string>;
    },
  ) {}

  async create(request: CreateTenantRuntime) {
    const existing = this.tenants.get(request.tenantId);
    if (existing?.child) await this.stop(request.tenantId);
    const socketPath = join(this.options.tenantDataDir, request.tenantId, 'runtime.sock');
    await mkdir(tenantWorkspaceDir(this.options.tenantDataDir, request.tenantId), { recursive: true });
    this.tenants.set(request.tenantId, { request, token: randomBytes(24).toString('hex'), socketPath });
    return { runtimeId: `proc_${request.tenantId}` };
  }

  async start(tenantId: string, { timeoutMs = 30_000 } = {}) {
    const tenant = this.must(tenantId);
    if (tenant.child) return;
    this.starts.push(tenantId);
    const child = spawn(process.execPath, [await ensureRuntimeBundle(), 'serve'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        TENANT_ID: tenantId,
        PLATFORM_API_URL: this.options.platformApiUrl,
        PLATFORM_API_KEY: tenant.request.apiKey,
        LLM_PROXY_URL: this.options.llmProxyUrl,
        RUNTIME_AUTH_TOKEN: tenant.token,
        RUNTIME_SOCKET: tenant.socketPath,
        WORKSPACE_DIR: tenantWorkspaceDir(this.options.tenantDataDir, tenantId),
        HANDS_DIR,
        LOG_LEVEL: 'warn',
        ...this.options.env,
        ...tenant.request.env,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    tenant.child = child;
    child.once('exit', () => {
      if (tenant.child === child) tenant.child = undefined;
    });
    const client = createRuntimeClient({ socketPath: tenant.socketPath, token: tenant.token });
    try {
      // A runtime that dies while starting fails the start at once, as the real backends do.
      const exited = new Promise<never>((_, reject) =>
        child.once('exit', () => reject(new Error(`the runtime of ${tenantId} exited while starting`))),
      );
      exited.catch(() => undefined);
      await Promise.race([
        waitFor(
          () =>
            client.health().then(
              (h) => h.ok,
              () => false,
            ),
          { timeoutMs, intervalMs: 50 },
        ),
        exited,
      ]);
    } finally {
      await client.close();
    }
  }

  async stop(tenantId: string) {
    const child = this.tenants.get(tenantId)?.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async destroy(tenantId: string) {
    await this.stop(tenantId);
    this.tenants.delete(tenantId);
  }

  async status(tenantId: string): Promise<RuntimeStatus> {
    const tenant = this.tenants.get(tenantId);
    if (!tenant) return { state: 'missing', backend: this.backend, runtimeId: null, healthy: false };
    const running = Boolean(tenant.child);
    let healthy = false;
    if (running) {
      const client = createRuntimeClient({ socketPath: tenant.socketPath, token: tenant.token });
      healthy = await client.health().then(
        (h) => h.ok,
        () => false,
      );
      await client.close();
    }
    return { state: running ? 'running' : 'stopped', backend: this.backend, runtimeId: `proc_${tenantId}`, healthy };
  }

  async exec(): Promise<never> {
    throw new Error('not part of the process test double');
  }

  async openTerminal(): Promise<never> {
    throw new Error('not part of the process test double');
  }

  async runtimeEndpoint(tenantId: string) {
    const tenant = this.must(tenantId);
    return { socketPath: tenant.socketPath, token: tenant.token };
  }

  async writeWorkspaceFile(tenantId: string, relativePath: string, data: Uint8Array) {
    const path = join(tenantWorkspaceDir(this.options.tenantDataDir, tenantId), relativePath);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, data);
  }

  async close() {
    await Promise.all([...this.tenants.keys()].map((id) => this.stop(id)));
  }

  /** Kills a tenant's runtime behind the platform's back (a crash). */
  async crash(tenantId: string) {
    const child = this.tenants.get(tenantId)?.child;
    if (!child) throw new Error(`${tenantId} has no running runtime to crash`);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async removeAll() {
    await this.close();
    for (const id of this.tenants.keys())
      await rm(join(this.options.tenantDataDir, id), { recursive: true, force: true });
  }

  private must(tenantId: string) {
    const tenant = this.tenants.get(tenantId);
    if (!tenant) throw new Error(`no runtime for ${tenantId}`);
    return tenant;
  }
}
