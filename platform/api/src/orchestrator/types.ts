import type { Duplex } from 'node:stream';

/**
 * Tenant runtimes: one isolated `@agentsquads/runtime` per tenant, behind one interface with two backends
 * (`sandbox`: bubblewrap via @agentstack/sandbox, the default; `docker`: Docker Engine via dockerode).
 *
 * What every backend guarantees, and what the isolation tests check for each:
 * - the tenant's files are `<TENANT_DATA_DIR>/<tenantId>/workspace`, mounted at `/workspace`, writable only
 *   by the tenant's own uid;
 * - no network of its own: the runtime reaches exactly three host endpoints, each a unix socket in the
 *   tenant's gateway directory (see `TenantGateway`) mounted at `/run/agentsquads`: the LLM proxy, the
 *   platform API and the egress proxy (public addresses only). The runtime bridges them to loopback ports
 *   inside (`RUNTIME_BRIDGES`) so shell tools can use `HTTP_PROXY`;
 * - the runtime listens on `/run/agentsquads/runtime.sock`; the platform reaches it through
 *   `runtimeSocket(tenantId)` with the per-tenant `RUNTIME_AUTH_TOKEN`;
 * - memory / CPU / pids limits (default 512 MiB, 0.5 CPU, 256 pids), no capabilities, no_new_privs,
 *   seccomp (ptrace, mount, new user namespaces refused);
 * - `destroy` leaves no process, mount, cgroup, socket or file of the tenant behind.
 */
export type RuntimeBackend = 'sandbox' | 'docker';

export interface TenantLimits {
  memoryBytes: number;
  /** CPU quota in cores. */
  cpus: number;
  pids: number;
}

export const DEFAULT_TENANT_LIMITS: TenantLimits = { memoryBytes: 512 * 1024 * 1024, cpus: 0.5, pids: 256 };

export interface CreateTenantRuntime {
  tenantId: string;
  /** The tenant's LLM-proxy / platform API key, plaintext; handed to the runtime's env, never stored by us. */
  apiKey: string;
  limits?: Partial<TenantLimits>;
  /** Extra runtime env (e.g. RUNTIME_DEFAULT_MODEL=demo in demo mode). */
  env?: Record<string, string>;
}

export type RuntimeState = 'missing' | 'stopped' | 'starting' | 'running' | 'error';

export interface RuntimeStatus {
  state: RuntimeState;
  backend: RuntimeBackend;
  /** Backend id (sandbox id / container id); null when missing. */
  runtimeId: string | null;
  /** True when `GET /health` answered 200 just now. */
  healthy: boolean;
  message?: string;
}

export interface TenantExecOptions {
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string | Buffer;
  timeoutMs?: number;
}

export interface TenantExecResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** An interactive shell inside the tenant (tmux session `main`), as a byte stream with a pty behind it. */
export interface TenantTerminal {
  stream: Duplex;
  resize(cols: number, rows: number): void;
  close(): Promise<void>;
}

export interface TenantOrchestrator {
  readonly backend: RuntimeBackend;
  /**
   * Prepares workspace, gateway and the sandbox/container (stopped). Called again for an existing tenant
   * (e.g. the platform issued a new API key after a restart), it replaces key and env, stops a running
   * runtime, and keeps the workspace.
   */
  create(request: CreateTenantRuntime): Promise<{ runtimeId: string }>;
  /** Starts it and resolves once the runtime's `/health` answers 200 (rejects after `timeoutMs`, default 30 s). */
  start(tenantId: string, options?: { timeoutMs?: number }): Promise<void>;
  /** Stops every process of the tenant; the workspace stays. */
  stop(tenantId: string): Promise<void>;
  /** Removes the runtime, its gateway, its workspace and every trace of it. Idempotent. */
  destroy(tenantId: string): Promise<void>;
  status(tenantId: string): Promise<RuntimeStatus>;
  /** Runs a command inside the tenant's isolation (as the tenant's uid, cwd /workspace). */
  exec(tenantId: string, argv: string[], options?: TenantExecOptions): Promise<TenantExecResult>;
  openTerminal(tenantId: string, size: { cols: number; rows: number }): Promise<TenantTerminal>;
  /** Host path of the runtime's unix socket, and the token it expects. */
  runtimeEndpoint(tenantId: string): Promise<{ socketPath: string; token: string }>;
  /** Writes a file into the tenant's workspace, owned by the tenant; `relativePath` must stay inside it. */
  writeWorkspaceFile(tenantId: string, relativePath: string, data: Uint8Array): Promise<void>;
  /** Stops every runtime this orchestrator started (platform shutdown). */
  close(): Promise<void>;
}
