import type { Logger } from '@agentstack/core';

/**
 * The seam between accounts and the tenant orchestrator (its own issue). The platform calls it after the
 * database change behind the request has committed; an implementation should accept the request quickly
 * and do slow work (create + start a sandbox) in the background, recording the runtime id with
 * `PlatformStore.setRuntimeId`.
 */
export interface TenantRuntimeRequester {
  /**
   * A tenant was just provisioned. `apiKey` is its LLM-proxy key in plaintext, which exists only here:
   * hand it to the runtime (env) and forget it. To get a fresh one later, call `issueApiKey` (revokes the old).
   * Failures are logged and do not undo the sign-up.
   */
  create(request: { tenantId: string; userId: string; apiKey: string }): Promise<void>;
  /** The tenant was suspended: stop its runtime (keep its workspace). */
  stop(request: { tenantId: string; runtimeId: string | null; reason: string }): Promise<void>;
  /** The tenant was unsuspended: start its runtime again. */
  start(request: { tenantId: string; runtimeId: string | null }): Promise<void>;
  /**
   * The account is being deleted: remove the runtime for good. Called *before* anything is deleted and
   * awaited; if it throws, the deletion stops there and can be retried.
   */
  destroy(request: { tenantId: string; runtimeId: string | null }): Promise<void>;
}

/** The default until an orchestrator is configured: says what would have happened, does nothing. */
export class LoggingRuntimeRequester implements TenantRuntimeRequester {
  constructor(private readonly log: Pick<Logger, 'info'>) {}

  async create({ tenantId, userId }: { tenantId: string; userId: string }): Promise<void> {
    this.log.info({ tenantId, userId }, 'runtime requested (no orchestrator configured)');
  }
  async stop({ tenantId, reason }: { tenantId: string; reason: string }): Promise<void> {
    this.log.info({ tenantId, reason }, 'runtime stop requested (no orchestrator configured)');
  }
  async start({ tenantId }: { tenantId: string }): Promise<void> {
    this.log.info({ tenantId }, 'runtime start requested (no orchestrator configured)');
  }
  async destroy({ tenantId }: { tenantId: string }): Promise<void> {
    this.log.info({ tenantId }, 'runtime destroy requested (no orchestrator configured)');
  }
}
