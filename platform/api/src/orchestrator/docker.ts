import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { chmod, chown, lchown, lstat, mkdir, open, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, Socket } from 'node:net';
import { join, posix } from 'node:path';
import { PassThrough } from 'node:stream';
import { AppError, type Logger, listenRelay, type SocketRelay } from '@agentstack/core';
import { UidRegistry } from '@agentstack/sandbox';
import Docker from 'dockerode';
import { tenantDir, tenantWorkspaceDir } from '../tenants.js';
import { tenantSeccompProfile } from './docker-seccomp.js';
import { gatewayRuntimeEnv, INSIDE, type TenantGateway } from './gateway.js';
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

export const DEFAULT_TENANT_IMAGE = 'agentsquads/tenant:dev';

/** Labels on every tenant container (Docker's reverse-DNS convention). */
export const LABELS = {
  tenant: 'org.agentsquads.tenant',
  uid: 'org.agentsquads.uid',
  backend: 'org.agentsquads.backend',
} as const;

/** What the runtime must never hand to a command it runs for the platform or the terminal. */
const SECRET_ENV = ['RUNTIME_AUTH_TOKEN', 'PLATFORM_API_KEY'];
const MAX_EXEC_OUTPUT = 16 * 1024 * 1024;

/**
 * Run inside a tenant (python3 of the image): writes stdin to /workspace/<argv[1]>, creating directories,
 * never following a symlink (openat + O_NOFOLLOW per component). Exit 3: the path is refused.
 */
const CONFINED_WRITE = `
import os, sys
parts = sys.argv[1].split('/')
fd = os.open('/workspace', os.O_RDONLY | os.O_DIRECTORY)
try:
    for part in parts[:-1]:
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = next_fd
    out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=fd)
except (NotADirectoryError, IsADirectoryError) as e:
    sys.stderr.write('a component is not a directory or is a symbolic link' if e.errno == 20 else 'is a directory')
    sys.exit(3)
except OSError as e:
    if e.errno == 40:
        sys.stderr.write('is a symbolic link')
        sys.exit(3)
    raise
with os.fdopen(out, 'wb') as f:
    while True:
        chunk = sys.stdin.buffer.read(1 << 20)
        if not chunk:
            break
        f.write(chunk)
`;

export interface DockerOrchestratorOptions {
  tenantDataDir: string;
  gateway: TenantGateway;
  log: Pick<Logger, 'info' | 'warn'>;
  /** Default: the engine at DOCKER_HOST or /var/run/docker.sock. */
  docker?: Docker;
  image?: string;
  /** Machine-wide uid reservations, shared with the sandbox backend (same registry, same range). */
  uids?: UidRegistry;
  limits?: Partial<TenantLimits>;
  /** Extra labels on every container (tests mark theirs to clean up exactly what they created). */
  labels?: Record<string, string>;
  /** Container name prefix; the name is `<prefix><tenantId>`. */
  namePrefix?: string;
  /** Size of the tenant's /tmp (tmpfs, counted against its memory limit). */
  tmpBytes?: number;
}

/**
 * Tenant runtimes as Docker containers (`agentsquads/tenant`, see deploy/tenant): one per tenant, running as
 * the tenant's own uid (reserved in the same registry as the sandbox backend), read-only root, no
 * capabilities, no_new_privs, a seccomp profile refusing ptrace/mount/namespaces (docker-seccomp.ts), no
 * network at all (`none`: loopback only) — the runtime reaches the LLM proxy, the platform and the egress
 * proxy through the gateway's sockets bound at /run/agentsquads — memory/CPU/pids limits, a tmpfs /tmp, and
 * the workspace bound at /workspace. The runtime's secrets are container env (visible to `docker inspect`,
 * i.e. to host root); commands run through `exec`/`openTerminal` do not get them.
 */
export class DockerOrchestrator implements TenantOrchestrator {
  readonly backend = 'docker' as const;
  private readonly docker: Docker;
  private readonly image: string;
  private readonly uids: UidRegistry;
  private readonly limits: TenantLimits;
  private readonly prefix: string;
  private readonly seccomp = tenantSeccompProfile();
  /** Tenants this orchestrator started (stopped again by `close`). */
  private readonly started = new Set<string>();
  private readonly starting = new Set<string>();
  /** One operation per tenant at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Per running tenant: the root-only socket the platform connects to, relayed to the runtime's socket. */
  private readonly relays = new Map<string, SocketRelay>();

  constructor(private readonly options: DockerOrchestratorOptions) {
    this.docker = options.docker ?? new Docker();
    this.image = options.image ?? DEFAULT_TENANT_IMAGE;
    this.uids = options.uids ?? new UidRegistry();
    this.limits = { ...DEFAULT_TENANT_LIMITS, ...options.limits };
    this.prefix = options.namePrefix ?? 'agentsquads-';
  }

  containerName(tenantId: string): string {
    tenantDir(this.options.tenantDataDir, tenantId); // validates the id
    return `${this.prefix}${tenantId}`;
  }

  create(request: CreateTenantRuntime): Promise<{ runtimeId: string }> {
    return this.locked(request.tenantId, async () => {
      const { tenantId } = request;
      const name = this.containerName(tenantId);
      const owner = `docker:${tenantId}`;
      const home = tenantDir(this.options.tenantDataDir, tenantId);
      await mkdir(home, { recursive: true, mode: 0o711 });
      // An existing tenant gets a new container (a container's env is fixed: new key, new token) on the
      // same uid and workspace; a running runtime is stopped.
      const existing = await this.inspect(tenantId);
      if (existing) {
        await ignore(this.docker.getContainer(existing.Id).remove({ force: true }), 404);
        this.started.delete(tenantId);
        await this.closeRelay(tenantId);
        await this.options.gateway.close(tenantId);
      }
      const uid =
        (existing ? Number(existing.Config.Labels[LABELS.uid]) : undefined) ??
        (await this.reservationOf(owner)) ??
        (await this.uids.reserve(owner, home));
      try {
        const workspace = tenantWorkspaceDir(this.options.tenantDataDir, tenantId);
        await mkdir(workspace, { recursive: true, mode: 0o700 });
        await chownTree(workspace, uid);
        const limits = { ...this.limits, ...request.limits };
        const token = randomBytes(32).toString('base64url');
        const env: Record<string, string> = {
          ...request.env,
          ...gatewayRuntimeEnv(),
          TENANT_ID: tenantId,
          PLATFORM_API_KEY: request.apiKey,
          RUNTIME_AUTH_TOKEN: token,
          WORKSPACE_DIR: '/workspace',
          HOME: '/workspace',
        };
        const container = await this.docker.createContainer({
          name,
          Image: this.image,
          User: `${uid}:${uid}`,
          WorkingDir: '/workspace',
          Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
          Labels: {
            ...this.options.labels,
            [LABELS.tenant]: tenantId,
            [LABELS.uid]: String(uid),
            [LABELS.backend]: 'docker',
          },
          HostConfig: {
            Init: true,
            ReadonlyRootfs: true,
            CapDrop: ['ALL'],
            SecurityOpt: ['no-new-privileges', `seccomp=${this.seccomp}`],
            NetworkMode: 'none',
            IpcMode: 'private',
            Memory: limits.memoryBytes,
            MemorySwap: limits.memoryBytes,
            NanoCpus: Math.round(limits.cpus * 1e9),
            PidsLimit: limits.pids,
            Tmpfs: { '/tmp': `rw,nosuid,nodev,size=${this.options.tmpBytes ?? 64 * 1024 * 1024}` },
            Binds: [`${workspace}:/workspace`, `${this.options.gateway.dirOf(tenantId)}:${INSIDE.dir}`],
            RestartPolicy: { Name: 'no' },
            LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '2' } },
          },
        });
        this.options.log.info({ tenantId, runtimeId: container.id, uid }, 'tenant container created');
        return { runtimeId: container.id };
      } catch (err) {
        if (!existing) await this.uids.release(uid, owner);
        throw err;
      }
    });
  }

  start(tenantId: string, options: { timeoutMs?: number } = {}): Promise<void> {
    return this.locked(tenantId, async () => {
      const info = await this.inspect(tenantId);
      if (!info) throw missing(tenantId);
      const uid = Number(info.Config.Labels[LABELS.uid]);
      const container = this.docker.getContainer(info.Id);
      // A running container whose gateway is not open here (the platform restarted) holds a stale bind of
      // the gateway directory, which `open` replaces: restart it on the fresh one.
      if (!this.options.gateway.isOpen(tenantId) && info.State.Running) await ignore(container.stop({ t: 2 }), 304);
      await this.options.gateway.open(tenantId, { uid, gid: uid });
      const relay = await this.openRelay(tenantId, uid);
      this.starting.add(tenantId);
      const began = Date.now();
      try {
        await ignore(container.start(), 304);
        this.started.add(tenantId);
        const deadline = began + (options.timeoutMs ?? 30_000);
        for (;;) {
          if (await healthy(relay, 1_000)) break;
          const state = (await container.inspect()).State;
          if (!state.Running) {
            const why = state.OOMKilled
              ? 'was killed (out of memory)'
              : `exited before it was healthy (code ${state.ExitCode})`;
            throw new Error(`${why}: ${await this.logTail(container)}`);
          }
          if (Date.now() > deadline) throw new Error(`not healthy after ${Date.now() - began} ms`);
          await sleep(50);
        }
        this.options.log.info({ tenantId, ms: Date.now() - began }, 'tenant runtime healthy');
      } catch (err) {
        // Left stopped, with its reason in the container's state and logs.
        await ignore(container.stop({ t: 0 }), 304, 404).catch(() => undefined);
        this.started.delete(tenantId);
        await this.closeRelay(tenantId);
        await this.options.gateway.close(tenantId).catch(() => undefined);
        throw new AppError(
          'runtime_start_failed',
          `the runtime of ${tenantId} did not start: ${(err as Error).message}`,
          503,
          { cause: err },
        );
      } finally {
        this.starting.delete(tenantId);
      }
    });
  }

  stop(tenantId: string): Promise<void> {
    return this.locked(tenantId, async () => {
      const info = await this.inspect(tenantId);
      if (info) await ignore(this.docker.getContainer(info.Id).stop({ t: 3 }), 304, 404);
      this.started.delete(tenantId);
      await this.closeRelay(tenantId);
      await this.options.gateway.close(tenantId);
    });
  }

  destroy(tenantId: string): Promise<void> {
    return this.locked(tenantId, async () => {
      const owner = `docker:${tenantId}`;
      const info = await this.inspect(tenantId);
      if (info) await ignore(this.docker.getContainer(info.Id).remove({ force: true, v: true }), 404, 409);
      this.started.delete(tenantId);
      await this.closeRelay(tenantId);
      await this.options.gateway.remove(tenantId);
      await rm(tenantDir(this.options.tenantDataDir, tenantId), { recursive: true, force: true });
      const uid = info ? Number(info.Config.Labels[LABELS.uid]) : await this.reservationOf(owner);
      if (uid !== undefined) await this.uids.release(uid, owner);
    });
  }

  async status(tenantId: string): Promise<RuntimeStatus> {
    const info = await this.inspect(tenantId);
    if (!info) return { state: 'missing', backend: 'docker', runtimeId: null, healthy: false };
    const base = { backend: 'docker' as const, runtimeId: info.Id };
    const s = info.State;
    if (s.Running && !s.Paused) {
      if ((!this.options.gateway.isOpen(tenantId) || !this.relays.has(tenantId)) && !this.starting.has(tenantId)) {
        // Left running by an earlier platform process: its gateway sockets lead nowhere until `start`.
        return { ...base, state: 'running', healthy: false, message: 'gateway not open: start it again' };
      }
      const ok = await healthy(this.relayPath(tenantId), 1_000);
      return { ...base, state: ok || !this.starting.has(tenantId) ? 'running' : 'starting', healthy: ok };
    }
    if (s.Restarting) return { ...base, state: 'starting', healthy: false };
    // Stopped by us: the runtime exits 0 on SIGTERM. Anything else is a crash (or an OOM kill).
    if (s.Status === 'created' || (s.Status === 'exited' && s.ExitCode === 0 && !s.OOMKilled)) {
      return { ...base, state: 'stopped', healthy: false };
    }
    if (s.Status === 'exited') {
      const message = `exited with code ${s.ExitCode}${s.OOMKilled ? ' (killed: out of memory)' : ''}`;
      return { ...base, state: 'error', healthy: false, message };
    }
    return { ...base, state: 'error', healthy: false, message: s.Error || s.Status };
  }

  async exec(tenantId: string, argv: string[], options: TenantExecOptions = {}): Promise<TenantExecResult> {
    if (argv.length === 0) throw new AppError('invalid_request', 'argv is empty', 400);
    const { container, uid } = await this.running(tenantId);
    const timeoutMs = options.timeoutMs;
    const wrapped = [
      'env',
      ...SECRET_ENV.flatMap((k) => ['-u', k]),
      // In-tenant deadline: `timeout` kills the command's whole process group.
      ...(timeoutMs ? ['timeout', '-k', '1', `${Math.max(timeoutMs, 1) / 1000}`] : []),
      ...argv,
    ];
    const exec = await container.exec({
      Cmd: wrapped,
      User: `${uid}:${uid}`,
      WorkingDir: posix.resolve('/workspace', options.cwd ?? '.'),
      Env: Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
      AttachStdin: options.stdin !== undefined,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const began = Date.now();
    const stream = await exec.start({ hijack: true, stdin: options.stdin !== undefined });
    const stdout = collector();
    const stderr = collector();
    this.docker.modem.demuxStream(stream, stdout.sink, stderr.sink);
    if (options.stdin !== undefined) stream.end(options.stdin);
    let hostTimedOut = false;
    await new Promise<void>((resolve) => {
      const onTimeout = () => {
        hostTimedOut = true;
        stream.destroy();
      };
      const timer = timeoutMs ? setTimeout(onTimeout, timeoutMs + 5_000) : null;
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      stream.once('end', done).once('close', done).once('error', done);
    });
    let exitCode: number | null = null;
    for (let i = 0; i < 100 && !hostTimedOut; i++) {
      const state = await exec.inspect();
      if (!state.Running) {
        exitCode = state.ExitCode;
        break;
      }
      await sleep(20);
    }
    const timedOut =
      hostTimedOut ||
      (timeoutMs !== undefined && Date.now() - began >= timeoutMs && (exitCode === 124 || exitCode === 137));
    return { exitCode: timedOut ? null : exitCode, stdout: stdout.text(), stderr: stderr.text(), timedOut };
  }

  async openTerminal(tenantId: string, size: { cols: number; rows: number }): Promise<TenantTerminal> {
    const { container, uid } = await this.running(tenantId);
    const exec = await container.exec({
      Cmd: ['env', ...SECRET_ENV.flatMap((k) => ['-u', k]), 'tmux', 'new-session', '-A', '-s', 'main'],
      User: `${uid}:${uid}`,
      WorkingDir: '/workspace',
      Env: ['TERM=xterm-256color', 'SHELL=/bin/bash'],
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: true,
    });
    const stream = await exec.start({ hijack: true, stdin: true, Tty: true });
    const resize = async (cols: number, rows: number) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await exec.resize({ w: cols, h: rows });
          return;
        } catch {
          await sleep(20); // the exec's process may not have started yet
        }
      }
    };
    await resize(size.cols, size.rows);
    return {
      stream,
      resize: (cols, rows) => void resize(cols, rows),
      close: async () => {
        stream.end();
        stream.destroy();
      },
    };
  }

  async runtimeEndpoint(tenantId: string): Promise<{ socketPath: string; token: string }> {
    const info = await this.inspect(tenantId);
    if (!info) throw missing(tenantId);
    const entry = (info.Config.Env ?? []).find((e) => e.startsWith('RUNTIME_AUTH_TOKEN='));
    if (!entry) throw new AppError('runtime_missing', `the container of ${tenantId} has no runtime token`, 404);
    return {
      socketPath: this.relayPath(tenantId),
      token: entry.slice('RUNTIME_AUTH_TOKEN='.length),
    };
  }

  async writeWorkspaceFile(tenantId: string, relativePath: string, data: Uint8Array): Promise<void> {
    const parts = safeRelative(relativePath);
    const info = await this.inspect(tenantId);
    if (!info) throw missing(tenantId);
    const uid = Number(info.Config.Labels[LABELS.uid]);
    if (info.State.Running) {
      // Written by the tenant itself inside its container (owned by its uid, confined by its own walls),
      // walking the path with openat and O_NOFOLLOW so no symlink on it is followed.
      const result = await this.exec(tenantId, ['python3', '-c', CONFINED_WRITE, parts.join('/')], {
        stdin: Buffer.from(data),
        timeoutMs: 120_000,
      });
      if (result.exitCode === 3) {
        throw new AppError('invalid_request', `${relativePath}: ${result.stderr.trim()}`, 400, { field: 'path' });
      }
      if (result.exitCode !== 0) {
        throw new AppError('write_failed', `could not write ${relativePath}: ${result.stderr.trim()}`, 400, {
          field: 'path',
        });
      }
      return;
    }
    // Stopped: no tenant process can swap a path component under us; still refuse every symlink.
    let dir = tenantWorkspaceDir(this.options.tenantDataDir, tenantId);
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      const st = await lstat(dir).catch(() => null);
      if (!st) {
        await mkdir(dir, { mode: 0o755 });
        await chown(dir, uid, uid);
      } else if (!st.isDirectory()) {
        throw new AppError('invalid_request', `${relativePath}: ${part} is not a directory`, 400);
      }
    }
    const file = await open(
      join(dir, parts[parts.length - 1] as string),
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o644,
    ).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ELOOP') throw new AppError('invalid_request', `${relativePath} is a symbolic link`, 400);
      throw err;
    });
    try {
      await file.chown(uid, uid);
      await file.writeFile(data);
    } finally {
      await file.close();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.started].map((tenantId) => this.stop(tenantId).catch(() => undefined)));
  }

  /** Host path of the socket the platform connects to: in the tenant's root-owned directory (0711). */
  relayPath(tenantId: string): string {
    return join(tenantDir(this.options.tenantDataDir, tenantId), 'runtime.sock');
  }

  /**
   * The platform never connects to a path in a directory the tenant can write (the gateway directory is
   * the tenant's: a symlink swapped in for runtime.sock would lead a root client anywhere). It connects to
   * a root-only socket of ours instead; each connection is relayed to the runtime's socket opened with
   * O_PATH|O_NOFOLLOW, checked to be a socket owned by the tenant, and connected through /proc/self/fd.
   */
  private async openRelay(tenantId: string, uid: number): Promise<string> {
    const path = this.relayPath(tenantId);
    if (this.relays.has(tenantId)) return path;
    const target = join(this.options.gateway.dirOf(tenantId), 'runtime.sock');
    await rm(path, { force: true });
    const relay = await listenRelay({ path }, () => connectToTenantSocket(target, uid));
    await chmod(path, 0o600);
    this.relays.set(tenantId, relay);
    return path;
  }

  private async closeRelay(tenantId: string): Promise<void> {
    const relay = this.relays.get(tenantId);
    if (!relay) return;
    this.relays.delete(tenantId);
    await relay.close();
  }

  /** The tenant's container, or undefined. */
  async inspect(tenantId: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.docker.getContainer(this.containerName(tenantId)).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  private async running(tenantId: string): Promise<{ container: Docker.Container; uid: number }> {
    const info = await this.inspect(tenantId);
    if (!info) throw missing(tenantId);
    if (!info.State.Running) {
      throw new AppError('runtime_not_running', `the runtime of ${tenantId} is not running`, 409);
    }
    return { container: this.docker.getContainer(info.Id), uid: Number(info.Config.Labels[LABELS.uid]) };
  }

  private async reservationOf(owner: string): Promise<number | undefined> {
    for (const uid of await this.uids.reserved()) if ((await this.uids.owner(uid)) === owner) return uid;
    return undefined;
  }

  private async logTail(container: Docker.Container): Promise<string> {
    const buf = (await container.logs({ stdout: true, stderr: true, tail: 5 }).catch(() => Buffer.alloc(0))) as Buffer;
    // Frames of an 8-byte header (stream, 0, 0, 0, uint32 size) and the payload; keep the text short.
    const parts: Buffer[] = [];
    for (let at = 0; at + 8 <= buf.length; ) {
      const size = buf.readUInt32BE(at + 4);
      parts.push(buf.subarray(at + 8, at + 8 + size));
      at += 8 + size;
    }
    return Buffer.concat(parts).toString('utf8').trim().slice(-600);
  }

  private locked<T>(tenantId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(tenantId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.locks.set(tenantId, next);
    const cleanup = () => {
      if (this.locks.get(tenantId) === next) this.locks.delete(tenantId);
    };
    next.then(cleanup, cleanup);
    return next;
  }
}

const missing = (tenantId: string) => new AppError('runtime_missing', `tenant ${tenantId} has no runtime`, 404);

/** Path segments of a workspace-relative path; refuses absolute paths, `..`, empty names and NULs. */
function safeRelative(relativePath: string): string[] {
  const parts = relativePath.split('/').filter((p) => p !== '' && p !== '.');
  if (
    relativePath.startsWith('/') ||
    relativePath.includes('\0') ||
    parts.length === 0 ||
    parts.some((p) => p === '..')
  ) {
    throw new AppError('invalid_request', `not a path inside the workspace: ${JSON.stringify(relativePath)}`, 400);
  }
  return parts;
}

/** Gives a tree to `uid` (a workspace kept from an earlier runtime of the tenant); never follows symlinks. */
async function chownTree(path: string, uid: number): Promise<void> {
  const st = await lstat(path);
  if (st.uid !== uid || st.gid !== uid) await lchown(path, uid, uid);
  if (!st.isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), uid);
}

const O_PATH = 0o10000000;

/**
 * Connects to a unix socket in a tenant-writable directory without following a symlink the tenant put there
 * (anything but a socket owned by the tenant: a socket that fails at once).
 */
function connectToTenantSocket(path: string, uid: number): Socket {
  let fd: number;
  try {
    fd = openSync(path, O_PATH | constants.O_NOFOLLOW);
  } catch (err) {
    return failed(err as Error);
  }
  const st = fstatSync(fd);
  if (!st.isSocket() || st.uid !== uid) {
    closeSync(fd);
    return failed(new Error(`${path} is not the tenant's socket`));
  }
  const socket = connect({ path: `/proc/self/fd/${fd}`, allowHalfOpen: true });
  let closed = false;
  const release = () => {
    if (!closed) closeSync(fd);
    closed = true;
  };
  socket.once('connect', release).once('error', release).once('close', release);
  return socket;
}

function failed(err: Error): Socket {
  const socket = new Socket();
  process.nextTick(() => socket.destroy(err));
  return socket;
}

/** `GET /health` over the runtime's unix socket answered 200. */
export function healthy(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/health', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function collector() {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => {
    if (size >= MAX_EXEC_OUTPUT) return;
    chunks.push(chunk);
    size += chunk.length;
  });
  return { sink, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function ignore<T>(promise: Promise<T>, ...statusCodes: number[]): Promise<T | undefined> {
  try {
    return await promise;
  } catch (err) {
    if (statusCodes.includes((err as { statusCode?: number }).statusCode ?? -1)) return undefined;
    throw err;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
