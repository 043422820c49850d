import { AppError, type Logger } from '@agentstack/core';
import { issueApiKey } from './api-keys.js';
import type { TransactionScopedKysely } from './db.js';
import type { RuntimeStatus, TenantLimits, TenantOrchestrator } from './orchestrator/types.js';
import type { TenantRuntimeRequester } from './runtime-requester.js';
import { PlatformStore } from './store.js';

export interface RuntimeEndpoint {
  socketPath: string;
  token: string;
}

export const runtimeUnavailable = (message: string) => new AppError('runtime_unavailable', message, 503);

/**
 * The platform's side of tenant runtimes, on top of an orchestrator backend: sign-up creates and starts
 * one in the background, suspension stops it, deletion destroys it, and chat asks `ensureRunning` before
 * each run — which starts a stopped runtime (e.g. after a platform restart) and re-creates a missing one
 * with a freshly issued API key (the plaintext of the old one is gone by then).
 *
 * Starts of one tenant are collapsed into one promise, so a burst of messages starts it once.
 */
export class TenantRuntimes implements TenantRuntimeRequester {
  private readonly starting = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, string>();

  constructor(
    private readonly deps: {
      orchestrator: TenantOrchestrator;
      db: TransactionScopedKysely;
      log: Logger;
      /** Runtime env for every tenant (e.g. the default model in demo mode). */
      env?: Record<string, string>;
      limits?: Partial<TenantLimits>;
      startTimeoutMs?: number;
    },
  ) {}

  get backend() {
    return this.deps.orchestrator.backend;
  }

  // ---- TenantRuntimeRequester: the account lifecycle's calls -----------------------------------------

  async create({ tenantId, apiKey }: { tenantId: string; userId: string; apiKey: string }): Promise<void> {
    // Sign-up answers at once; the runtime comes up in the background (chat waits for it if needed).
    void this.collapse(tenantId, () => this.createAndStart(tenantId, apiKey)).catch(() => undefined);
  }

  async stop({ tenantId }: { tenantId: string }): Promise<void> {
    await this.deps.orchestrator.stop(tenantId);
  }

  async start({ tenantId }: { tenantId: string }): Promise<void> {
    void this.ensureRunning(tenantId).catch(() => undefined);
  }

  async destroy({ tenantId }: { tenantId: string }): Promise<void> {
    await this.starting.get(tenantId)?.catch(() => undefined);
    await this.deps.orchestrator.destroy(tenantId);
    this.failures.delete(tenantId);
  }

  // ---- for chat and the dashboard -------------------------------------------------------------------

  async status(tenantId: string): Promise<RuntimeStatus> {
    const status = await this.deps.orchestrator.status(tenantId);
    if (this.starting.has(tenantId) && status.state !== 'running') return { ...status, state: 'starting' };
    const failure = this.failures.get(tenantId);
    if (failure && status.state !== 'running') return { ...status, state: 'error', message: failure };
    return status;
  }

  /**
   * Resolves with the runtime's endpoint once it is healthy. `onStarting` is called (once) when the caller
   * has to wait for a start, so chat can tell the user.
   */
  async ensureRunning(tenantId: string, onStarting?: () => void): Promise<RuntimeEndpoint> {
    const status = await this.deps.orchestrator.status(tenantId);
    if (status.state !== 'running' || !status.healthy) {
      onStarting?.();
      await this.collapse(tenantId, async () => {
        const current = await this.deps.orchestrator.status(tenantId);
        if (current.state === 'running' && current.healthy) return;
        if (current.state === 'missing') {
          await this.createAndStart(tenantId, await this.reissueKey(tenantId));
          return;
        }
        await this.deps.orchestrator.start(tenantId, this.timeout());
      });
    }
    return this.deps.orchestrator.runtimeEndpoint(tenantId);
  }

  /**
   * Starts the runtimes of every active tenant that had one (a platform restart ends them all), a few at a
   * time and most recently active first, in the background; failures are logged and retried on first use.
   */
  async resumeAll({ concurrency = 4 }: { concurrency?: number } = {}): Promise<{ started: number; failed: number }> {
    const queue = await new PlatformStore(this.deps.db).activeTenantsWithRuntime();
    let started = 0;
    let failed = 0;
    const worker = async () => {
      for (let tenantId = queue.shift(); tenantId; tenantId = queue.shift()) {
        await this.ensureRunning(tenantId).then(
          () => started++,
          () => failed++,
        );
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (started || failed) this.deps.log.info({ started, failed }, 'tenant runtimes resumed');
    return { started, failed };
  }

  async writeWorkspaceFile(tenantId: string, relativePath: string, data: Uint8Array): Promise<void> {
    if ((await this.deps.orchestrator.status(tenantId)).state === 'missing') {
      await this.ensureRunning(tenantId);
    }
    await this.deps.orchestrator.writeWorkspaceFile(tenantId, relativePath, data);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.starting.values()]);
    await this.deps.orchestrator.close();
  }

  // ---- internals ------------------------------------------------------------------------------------

  private timeout() {
    return this.deps.startTimeoutMs ? { timeoutMs: this.deps.startTimeoutMs } : {};
  }

  private async createAndStart(tenantId: string, apiKey: string): Promise<void> {
    const started = Date.now();
    const { runtimeId } = await this.deps.orchestrator.create({
      tenantId,
      apiKey,
      ...(this.deps.env ? { env: this.deps.env } : {}),
      ...(this.deps.limits ? { limits: this.deps.limits } : {}),
    });
    await new PlatformStore(this.deps.db).setRuntimeId(tenantId, runtimeId);
    await this.deps.orchestrator.start(tenantId, this.timeout());
    this.deps.log.info(
      { tenantId, runtimeId, backend: this.backend, ms: Date.now() - started },
      'tenant runtime healthy',
    );
  }

  private async reissueKey(tenantId: string): Promise<string> {
    const store = new PlatformStore(this.deps.db);
    const tenant = await store.findTenant(tenantId);
    if (!tenant) throw runtimeUnavailable('this account no longer exists');
    return issueApiKey(store, tenantId);
  }

  /** One start per tenant at a time; its failure is remembered for `status` until the next attempt. */
  private collapse(tenantId: string, work: () => Promise<void>): Promise<void> {
    const running = this.starting.get(tenantId);
    if (running) return running;
    this.failures.delete(tenantId);
    const promise = work()
      .catch((err: Error) => {
        const message = `your agent could not be started: ${err.message.split('\n')[0]}`;
        this.failures.set(tenantId, message);
        this.deps.log.error({ err, tenantId }, 'tenant runtime start failed');
        throw runtimeUnavailable(message);
      })
      .finally(() => this.starting.delete(tenantId));
    this.starting.set(tenantId, promise);
    return promise;
  }
}
