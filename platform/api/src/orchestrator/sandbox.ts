import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, cp, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { AppError, conflict, type Logger, type SecretBox } from '@agentstack/core';
import { type Sandbox, type SandboxExit, type SandboxManager, spawnPty } from '@agentstack/sandbox';
import { tenantDir, tenantWorkspaceDir } from '../tenants.js';
import { gatewayRuntimeEnv, INSIDE, type OpenGateway, type TenantGateway } from './gateway.js';
import { runtimeHealthy, waitForRuntimeHealth } from './health.js';
import { type RuntimeRecord, readRuntimeRecord, writeRuntimeRecord } from './runtime-record.js';
import {
  type CreateTenantRuntime,
  DEFAULT_TENANT_LIMITS,
  type RuntimeStatus,
  type TenantExecOptions,
  type TenantExecResult,
  type TenantLimits,
  type TenantOrchestrator,
  type TenantTerminal,
} from './types.js';
import {
  outsideWorkspace,
  WRITE_INSIDE_SCRIPT,
  workspaceRelativePath,
  writeIntoStoppedWorkspace,
} from './workspace-files.js';

/** Where things appear inside a tenant's sandbox. */
export const SANDBOX_INSIDE = {
  workspace: '/workspace',
  /** The runtime bundle and its Hands, read-only. */
  image: '/opt/agentsquads',
  runtime: '/opt/agentsquads/agentsquads-runtime.mjs',
  hands: '/opt/agentsquads/hands',
  user: 'agent',
  home: '/home/agent',
} as const;

export interface SandboxOrchestratorOptions {
  sandboxes: SandboxManager;
  gateway: Pick<TenantGateway, 'dirOf' | 'open' | 'close' | 'remove'>;
  paths: {
    /** `TENANT_DATA_DIR`: `<dir>/<tenant id>/workspace` is mounted at /workspace. */
    tenantDataDir: string;
    /** The one-file runtime (`pnpm --filter @agentsquads/runtime build`). */
    runtimeBundle: string;
    /** Directory of Hand manifests (`data/hands`). */
    handsDir: string;
    /**
     * Root-owned copy of the bundle and Hands that sandboxes mount (default `<tenantDataDir>/.runtime`): the
     * tenant uid must be able to reach what is mounted, and the repository may be a private directory.
     */
    imageDir?: string;
  };
  /** Seals what a restart needs (the tenant's API key); e.g. `createSecretBox(master, 'tenant-runtime')`. */
  secrets: SecretBox;
  log: Pick<Logger, 'info' | 'warn'>;
  defaultLimits?: TenantLimits;
  /** Environment every runtime gets (e.g. LOG_LEVEL); per-tenant `env` from create wins. */
  env?: Record<string, string>;
}

interface Tenant {
  record: RuntimeRecord;
  sandbox: Sandbox;
  /** Issued at each start, kept only in memory (a restarted platform starts the runtime again anyway). */
  token?: string;
  gateway?: OpenGateway;
  starting: boolean;
  lastExit?: SandboxExit;
  onExit?: (exit: SandboxExit) => void;
}

const MAX_START_TIMEOUT_MS = 120_000;

/**
 * Tenant runtimes in bubblewrap sandboxes (`@agentstack/sandbox`): per tenant its own uid, namespaces with
 * only loopback, seccomp, cgroup limits; the workspace, the gateway's sockets and the read-only runtime are
 * the only host paths inside. The platform reaches the runtime through the sandbox's `runtime` forward: a
 * socket in a root-only directory, bridged by the in-sandbox agent (as the tenant) to
 * `/run/agentsquads/runtime.sock`, so the host never connects to a path the tenant can replace.
 */
export class SandboxOrchestrator implements TenantOrchestrator {
  readonly backend = 'sandbox' as const;
  private readonly tenants = new Map<string, Tenant>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private image: Promise<string> | undefined;

  constructor(private readonly options: SandboxOrchestratorOptions) {}

  private get limits(): TenantLimits {
    return this.options.defaultLimits ?? DEFAULT_TENANT_LIMITS;
  }

  /** One lifecycle operation per tenant at a time (create/start/stop/destroy/host-side writes). */
  private serial<T>(tenantId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(tenantId) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.locks.set(tenantId, settled);
    void settled.then(() => {
      if (this.locks.get(tenantId) === settled) this.locks.delete(tenantId);
    });
    return next;
  }

  /** Copies the runtime bundle and Hands into the image directory (once per orchestrator). */
  private prepareImage(): Promise<string> {
    this.image ??= (async () => {
      const { runtimeBundle, handsDir, tenantDataDir } = this.options.paths;
      const dir = this.options.paths.imageDir ?? join(tenantDataDir, '.runtime');
      if (!(await stat(runtimeBundle).catch(() => undefined))?.isFile()) {
        throw new Error(`runtime bundle ${runtimeBundle} is missing (pnpm --filter @agentsquads/runtime build)`);
      }
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await chmod(dir, 0o755);
      // Replaced by rename: a running runtime keeps the file it started with.
      const bundle = join(dir, 'agentsquads-runtime.mjs');
      await copyFile(runtimeBundle, `${bundle}.tmp`);
      await chmod(`${bundle}.tmp`, 0o644);
      await rename(`${bundle}.tmp`, bundle);
      await rm(join(dir, 'hands.tmp'), { recursive: true, force: true });
      await cp(handsDir, join(dir, 'hands.tmp'), { recursive: true });
      await rm(join(dir, 'hands'), { recursive: true, force: true });
      await rename(join(dir, 'hands.tmp'), join(dir, 'hands'));
      return dir;
    })().catch((err) => {
      this.image = undefined;
      throw err;
    });
    return this.image;
  }

  /** The tenant as loaded in memory, or from disk (after a platform restart); undefined when missing. */
  private async load(tenantId: string): Promise<Tenant | undefined> {
    const known = this.tenants.get(tenantId);
    if (known) return known;
    const dir = tenantDir(this.options.paths.tenantDataDir, tenantId);
    const record = await readRuntimeRecord(dir, tenantId, this.options.secrets);
    if (!record) return undefined;
    const sandbox = await this.options.sandboxes.open(record.sandboxId).catch(() => undefined);
    if (!sandbox) return undefined;
    return this.remember({ record, sandbox, starting: false });
  }

  private remember(tenant: Tenant): Tenant {
    const onExit = (exit: SandboxExit) => {
      tenant.lastExit = exit;
      tenant.token = undefined;
      if (exit.reason !== 'stopped') {
        this.options.log.warn(
          { tenantId: tenant.record.tenantId, reason: exit.reason, code: exit.code, signal: exit.signal },
          'tenant runtime exited',
        );
      }
    };
    tenant.onExit = onExit;
    tenant.sandbox.on('exit', onExit);
    this.tenants.set(tenant.record.tenantId, tenant);
    return tenant;
  }

  private forget(tenantId: string): void {
    const tenant = this.tenants.get(tenantId);
    if (tenant?.onExit) tenant.sandbox.off('exit', tenant.onExit);
    this.tenants.delete(tenantId);
  }

  private async require(tenantId: string): Promise<Tenant> {
    const tenant = await this.load(tenantId);
    if (!tenant) throw new AppError('runtime_missing', `tenant ${tenantId} has no runtime`, 404);
    return tenant;
  }

  private async requireRunning(tenantId: string): Promise<Tenant> {
    const tenant = await this.require(tenantId);
    if (tenant.sandbox.status !== 'running' || tenant.starting) {
      throw new AppError('runtime_not_running', `the runtime of ${tenantId} is not running`, 409);
    }
    return tenant;
  }

  create(request: CreateTenantRuntime): Promise<{ runtimeId: string }> {
    const { tenantId } = request;
    return this.serial(tenantId, async () => {
      const dir = tenantDir(this.options.paths.tenantDataDir, tenantId);
      const secrets = { apiKey: request.apiKey, env: request.env ?? {} };
      const limits = { ...this.limits, ...request.limits };
      const existing = await this.load(tenantId);
      if (existing) {
        // The same sandbox and workspace; the new key, env and limits apply from the next start.
        existing.token = undefined;
        await existing.sandbox.stop({ graceMs: 5_000 });
        await this.options.gateway.close(tenantId);
        existing.lastExit = undefined;
        existing.record = { ...existing.record, secrets };
        await writeRuntimeRecord(dir, existing.record, this.options.secrets);
        await existing.sandbox.setLimits(limits);
        return { runtimeId: existing.sandbox.id };
      }
      const imageDir = await this.prepareImage();
      await mkdir(this.options.paths.tenantDataDir, { recursive: true, mode: 0o711 });
      await chmod(this.options.paths.tenantDataDir, 0o711);
      await mkdir(dir, { recursive: true, mode: 0o711 });
      await chmod(dir, 0o711);
      const workspace = tenantWorkspaceDir(this.options.paths.tenantDataDir, tenantId);
      const gatewayDir = this.options.gateway.dirOf(tenantId);
      // A sandbox left by a crash between its creation and our record is replaced.
      await this.options.sandboxes
        .open(tenantId)
        .then((stale) => stale.destroy())
        .catch(() => undefined);
      const sandbox = await this.options.sandboxes.create({
        id: tenantId,
        user: SANDBOX_INSIDE.user,
        hostname: 'agentsquads',
        limits: { memoryBytes: limits.memoryBytes, cpus: limits.cpus, pids: limits.pids },
        env: {
          ...gatewayRuntimeEnv(),
          TENANT_ID: tenantId,
          WORKSPACE_DIR: SANDBOX_INSIDE.workspace,
          HANDS_DIR: SANDBOX_INSIDE.hands,
          TERM: 'xterm-256color',
        },
        command: [this.options.sandboxes.nodePath, SANDBOX_INSIDE.runtime, 'serve'],
        forwards: [{ name: 'runtime', target: { kind: 'unix', path: INSIDE.runtimeSocket } }],
        binds: [
          { hostPath: workspace, at: SANDBOX_INSIDE.workspace, readOnly: false },
          { hostPath: gatewayDir, at: INSIDE.dir, readOnly: false },
          { hostPath: imageDir, at: SANDBOX_INSIDE.image, readOnly: true },
        ],
        labels: { tenantId, role: 'agentsquads-runtime' },
      });
      try {
        await mkdir(workspace, { recursive: true, mode: 0o700 });
        await chown(workspace, sandbox.uid, sandbox.uid);
        await chmod(workspace, 0o700);
        const record: RuntimeRecord = {
          tenantId,
          sandboxId: sandbox.id,
          createdAt: new Date().toISOString(),
          secrets,
        };
        await writeRuntimeRecord(dir, record, this.options.secrets);
        this.remember({ record, sandbox, starting: false });
      } catch (err) {
        await sandbox.destroy().catch(() => undefined);
        throw err;
      }
      this.options.log.info({ tenantId, uid: sandbox.uid, limits }, 'tenant runtime created');
      return { runtimeId: sandbox.id };
    });
  }

  start(tenantId: string, { timeoutMs = 30_000 }: { timeoutMs?: number } = {}): Promise<void> {
    return this.serial(tenantId, async () => {
      const tenant = await this.require(tenantId);
      if (tenant.sandbox.status === 'running' && tenant.token) {
        if (await runtimeHealthy(tenant.sandbox.socketPath('runtime'))) return;
      }
      // Running but unhealthy (or without a token we issued): start it afresh.
      if (tenant.sandbox.status !== 'stopped') await tenant.sandbox.stop({ graceMs: 2_000 });
      const started = Date.now();
      const deadline = Math.min(timeoutMs, MAX_START_TIMEOUT_MS);
      tenant.starting = true;
      tenant.lastExit = undefined;
      try {
        await this.prepareImage();
        // Sockets are opened (and chowned) while nothing of the tenant runs.
        tenant.gateway = await this.options.gateway.open(tenantId, {
          uid: tenant.sandbox.uid,
          gid: tenant.sandbox.uid,
        });
        const bound = tenant.sandbox.spec.binds.find((b) => b.at === INSIDE.dir)?.hostPath;
        if (bound !== tenant.gateway.dir)
          throw new Error(`gateway directory ${tenant.gateway.dir} is not the one mounted (${bound})`);
        const token = randomBytes(32).toString('base64url');
        const { apiKey, env } = tenant.record.secrets;
        await tenant.sandbox.start({
          timeoutMs: deadline,
          env: { ...this.options.env, ...env, PLATFORM_API_KEY: apiKey, RUNTIME_AUTH_TOKEN: token },
        });
        tenant.token = token;
        await waitForRuntimeHealth(tenant.sandbox.socketPath('runtime'), {
          timeoutMs: Math.max(1_000, deadline - (Date.now() - started)),
          gone: () =>
            tenant.sandbox.status === 'running'
              ? undefined
              : `${tenant.lastExit?.reason ?? 'stopped'} (code ${tenant.lastExit?.code ?? 'none'}): ${lastLines(tenant.sandbox.output())}`,
        });
        this.options.log.info({ tenantId, ms: Date.now() - started }, 'tenant runtime healthy');
      } catch (err) {
        tenant.token = undefined;
        await tenant.sandbox.stop({ graceMs: 0 }).catch(() => undefined);
        await this.options.gateway.close(tenantId).catch(() => undefined);
        throw new AppError(
          'runtime_start_failed',
          `the runtime of ${tenantId} did not start: ${(err as Error).message}`,
          503,
          {
            cause: err,
          },
        );
      } finally {
        tenant.starting = false;
      }
    });
  }

  stop(tenantId: string): Promise<void> {
    return this.serial(tenantId, async () => {
      const tenant = await this.load(tenantId);
      if (!tenant) return;
      tenant.token = undefined;
      await tenant.sandbox.stop({ graceMs: 5_000 });
      await this.options.gateway.close(tenantId);
      this.options.log.info({ tenantId }, 'tenant runtime stopped');
    });
  }

  destroy(tenantId: string): Promise<void> {
    return this.serial(tenantId, async () => {
      const dir = tenantDir(this.options.paths.tenantDataDir, tenantId);
      const tenant = await this.load(tenantId).catch(() => undefined);
      const sandbox =
        tenant?.sandbox ??
        (await this.options.sandboxes.open(tenant?.record.sandboxId ?? tenantId).catch(() => undefined));
      // destroy kills every process of the uid, removes its cgroups, sockets and files, releases the uid.
      if (sandbox) await sandbox.destroy();
      await this.options.gateway.remove(tenantId);
      await rm(dir, { recursive: true, force: true });
      this.forget(tenantId);
      this.options.log.info({ tenantId }, 'tenant runtime destroyed');
    });
  }

  async status(tenantId: string): Promise<RuntimeStatus> {
    const tenant = await this.load(tenantId);
    if (!tenant) return { state: 'missing', backend: 'sandbox', runtimeId: null, healthy: false };
    const base = { backend: 'sandbox' as const, runtimeId: tenant.sandbox.id };
    if (tenant.starting || tenant.sandbox.status === 'starting') return { ...base, state: 'starting', healthy: false };
    if (tenant.sandbox.status === 'running') {
      const healthy = await runtimeHealthy(tenant.sandbox.socketPath('runtime'));
      return { ...base, state: 'running', healthy, ...(healthy ? {} : { message: 'GET /health did not answer 200' }) };
    }
    const exit = tenant.lastExit;
    if (exit && exit.reason !== 'stopped') {
      return {
        ...base,
        state: 'error',
        healthy: false,
        message: `the runtime exited (${exit.reason}, code ${exit.code})`,
      };
    }
    return { ...base, state: 'stopped', healthy: false };
  }

  async exec(tenantId: string, argv: string[], options: TenantExecOptions = {}): Promise<TenantExecResult> {
    if (!Array.isArray(argv) || argv.length === 0) throw new AppError('invalid_request', 'argv must not be empty', 400);
    const tenant = await this.requireRunning(tenantId);
    const result = await tenant.sandbox.exec(argv, {
      cwd: options.cwd ?? SANDBOX_INSIDE.workspace,
      ...(options.env ? { env: options.env } : {}),
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    });
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, timedOut: result.timedOut };
  }

  async openTerminal(tenantId: string, size: { cols: number; rows: number }): Promise<TenantTerminal> {
    for (const [name, value] of Object.entries(size)) {
      if (!Number.isInteger(value) || value < 1 || value > 1000) {
        throw new AppError('invalid_request', `${name} must be an integer from 1 to 1000`, 400, { field: name });
      }
    }
    const tenant = await this.requireRunning(tenantId);
    const pty = spawnPty(tenant.sandbox, ['tmux', 'new-session', '-A', '-s', 'main'], {
      cols: size.cols,
      rows: size.rows,
      cwd: SANDBOX_INSIDE.workspace,
    });
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      // The tmux session stays: the next terminal attaches to it again.
      pty.kill('SIGTERM');
      await pty.exited;
      if (!stream.destroyed) stream.destroy();
    };
    const stream = new Duplex({
      read: () => {
        pty.stdout.resume();
      },
      write: (chunk: Buffer, _encoding, callback) => {
        pty.stdin.write(chunk, callback);
      },
      final: (callback) => {
        pty.stdin.end();
        callback();
      },
      // A consumer that just drops the stream (a closed WebSocket) ends the terminal too.
      destroy: (err, callback) => {
        void close();
        callback(err);
      },
    });
    pty.stdout.on('data', (chunk: Buffer) => {
      if (!stream.push(chunk)) pty.stdout.pause();
    });
    pty.stdout.on('end', () => stream.push(null));
    return {
      stream,
      resize: (cols, rows) => {
        pty
          .resize(cols, rows)
          .catch((err) => this.options.log.warn({ tenantId, err: (err as Error).message }, 'resize failed'));
      },
      close,
    };
  }

  async runtimeEndpoint(tenantId: string): Promise<{ socketPath: string; token: string }> {
    const tenant = await this.requireRunning(tenantId);
    if (!tenant.token) throw new AppError('runtime_not_running', `the runtime of ${tenantId} is not running`, 409);
    return { socketPath: tenant.sandbox.socketPath('runtime'), token: tenant.token };
  }

  async writeWorkspaceFile(tenantId: string, relativePath: string, data: Uint8Array): Promise<void> {
    const path = workspaceRelativePath(relativePath);
    const tenant = await this.require(tenantId);
    if (tenant.sandbox.status === 'running') {
      const result = await streamInto(
        tenant.sandbox,
        ['/bin/sh', '-c', WRITE_INSIDE_SCRIPT, 'write', `${SANDBOX_INSIDE.workspace}/${path}`],
        data,
      );
      if (result.exitCode === 3) throw outsideWorkspace(path);
      if (result.exitCode !== 0) {
        throw new AppError(
          'write_failed',
          `could not write ${path}: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
          400,
          {
            field: 'path',
          },
        );
      }
      return;
    }
    await this.serial(tenantId, async () => {
      if (tenant.sandbox.status !== 'stopped') throw conflict(`the runtime of ${tenantId} is starting or stopping`);
      const workspace = tenantWorkspaceDir(this.options.paths.tenantDataDir, tenantId);
      await writeIntoStoppedWorkspace(workspace, path, data, tenant.sandbox.uid);
    });
  }

  async close(): Promise<void> {
    const ids = [...this.tenants.keys()];
    await Promise.all(
      ids.map((id) =>
        this.serial(id, async () => {
          const tenant = this.tenants.get(id);
          if (tenant) await tenant.sandbox.stop({ graceMs: 2_000 }).catch(() => undefined);
          await this.options.gateway.close(id).catch(() => undefined);
        }),
      ),
    );
  }
}

/**
 * Runs `argv` inside with `data` on its stdin in 256 KiB pieces: one exec message holding a whole upload
 * would have the in-sandbox agent (48 MB heap) parse it at once.
 */
async function streamInto(
  sandbox: Sandbox,
  argv: string[],
  data: Uint8Array,
): Promise<{ exitCode: number | null; stderr: string }> {
  const proc = sandbox.spawn(argv, { cwd: SANDBOX_INSIDE.workspace, timeoutMs: 120_000 });
  let stderr = '';
  proc.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2_000);
  });
  proc.stdout.resume();
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const PIECE = 256 * 1024;
  for (let at = 0; at < bytes.length; at += PIECE) {
    await new Promise<void>((resolve, reject) =>
      proc.stdin.write(bytes.subarray(at, at + PIECE), (err) => (err ? reject(err) : resolve())),
    );
  }
  proc.stdin.end();
  const { code } = await proc.exited;
  return { exitCode: code, stderr };
}

const lastLines = (text: string) => text.trim().split('\n').slice(-3).join(' | ').slice(-500);
