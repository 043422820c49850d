import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type Duplex, PassThrough, type Readable, Writable } from 'node:stream';
import { CgroupSet, type Controller, type SandboxStats } from './cgroups.js';
import { AgentChannel, type AgentMessage } from './channel.js';
import { createListeningSocket, type ListeningSocket, startTcpForwarder, type TcpForwarder } from './forward.js';
import type { HostTools } from './host.js';
import { bwrapArgs } from './rootfs.js';
import { seccompFilterBytes } from './seccomp.js';
import { type ExecOptions, type ExecResult, type Limits, limitsSchema, type SandboxSpec } from './spec.js';
import { processesOfUid, type UidRegistry } from './uids.js';

export type SandboxStatus = 'stopped' | 'starting' | 'running' | 'stopping' | 'destroyed';

export interface SandboxExit {
  /** `stopped`: by stop()/destroy(); `main-exited`: the main command ended; `crashed`: the agent died. */
  reason: 'stopped' | 'main-exited' | 'crashed' | 'start-failed';
  code: number | null;
  signal: string | null;
}

export interface StartOptions {
  /**
   * A command run to completion inside before the main command starts and before forwarded connections are
   * served (e.g. first-boot provisioning). Its result is returned by `start()`.
   */
  before?: ExecOptions & { argv: string[] };
  /** How long the sandbox may take to come up, not counting `before` (default 15 s). */
  timeoutMs?: number;
  /** Host loopback port per forward for this run, overriding the spec's `tcpPort` (0: any free port). */
  tcpPorts?: Record<string, number>;
  /**
   * Extra environment of the main command for this run only: never written to disk and not seen by
   * `exec`/`spawn` (for secrets such as API keys the caller keeps encrypted itself).
   */
  env?: Record<string, string>;
}

export interface StartResult {
  before?: ExecResult;
  /** Host loopback TCP port per forward that has one. */
  tcpPorts: Record<string, number>;
}

/** A process started with `sandbox.spawn()`: streams in and out, the exit as a promise. */
export interface SandboxProcess {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Everything a sandbox needs from its manager. */
export interface SandboxContext {
  dir: string;
  uid: number;
  spec: SandboxSpec;
  tools: HostTools;
  cgroupParents: Map<Controller, string>;
  agentPath: string;
  nodePath: string;
  registry: UidRegistry;
  persist: (spec: SandboxSpec) => Promise<void>;
  onGone: (id: string) => void;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

// fds of the launched process: 0-2 stdio, 3 control, 4 seccomp program, 5 info, 6… listening sockets.
const FD_CONTROL = 3;
const FD_SECCOMP = 4;
const FD_INFO = 5;
const FD_FIRST_LISTENER = 6;

/**
 * Runs as root: joins the sandbox's cgroups (before anything inside can fork, so nothing escapes the
 * limits), closes every fd it was not told to keep (the service's own fds must not leak inside), then
 * becomes setpriv → bwrap under the same pid.
 */
const LAUNCHER = [
  'keep=" $1 "; shift',
  'while [ "$1" != "--" ]; do echo $$ > "$1" || { echo "launcher: cannot join cgroup $1" >&2; exit 125; }; shift; done; shift',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template.
  'for f in /proc/$$/fd/*; do n=${f##*/}; case "$keep" in *" $n "*) ;; *) eval "exec $n>&-" 2>/dev/null;; esac; done',
  'exec "$@"',
].join('\n');

const OUTPUT_KEEP = 64 * 1024;

export class Sandbox extends EventEmitter {
  private state: SandboxStatus = 'stopped';
  private child: ChildProcess | undefined;
  private channel: AgentChannel | undefined;
  private cgroups: CgroupSet;
  private forwarders: TcpForwarder[] = [];
  private ports: Record<string, number> = {};
  private nsInitPid: number | undefined;
  private exitPromise: Promise<SandboxExit> | undefined;
  private stopRequested = false;
  private mainExit: { code: number | null; signal: string | null } | undefined;
  private console = '';
  private sequence = 0;
  private lifecycle: Promise<unknown> = Promise.resolve();
  private reachedRunning = false;

  constructor(private readonly ctx: SandboxContext) {
    super();
    this.cgroups = CgroupSet.forSandbox(ctx.cgroupParents, ctx.spec.id);
  }

  get id(): string {
    return this.ctx.spec.id;
  }
  get uid(): number {
    return this.ctx.uid;
  }
  get user(): string {
    return this.ctx.spec.user;
  }
  get status(): SandboxStatus {
    return this.state;
  }
  get spec(): Readonly<SandboxSpec> {
    return this.ctx.spec;
  }
  get labels(): Readonly<Record<string, string>> {
    return this.ctx.spec.labels;
  }
  get limits(): Readonly<Limits> {
    return this.ctx.spec.limits;
  }
  /** Host path of the writable directory (mounted at `spec.mountAt` inside). */
  get dataDir(): string {
    return join(this.ctx.dir, 'data');
  }
  /** Host pid of the sandbox's init (bwrap's pid 1 inside its pid namespace), while running. */
  get pid(): number | undefined {
    return this.nsInitPid;
  }
  /** Host path of a forward's unix socket (in a root-only directory). */
  socketPath(name: string): string {
    return join(this.ctx.dir, 'sock', `${name}.sock`);
  }
  /** Host loopback port of a forward, while running. */
  tcpPort(name: string): number | undefined {
    return this.ports[name];
  }
  /** The last 64 KiB the sandbox wrote to its console (launcher errors, the main command's output). */
  output(): string {
    return this.console;
  }
  /** cgroup directories of this sandbox (they exist only while it runs). */
  cgroupDirs(): string[] {
    return [...new Set(Object.values(this.cgroups.dirs))];
  }

  /** Serialises start/stop/destroy so they never interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lifecycle.then(fn, fn);
    this.lifecycle = next.catch(() => {});
    return next;
  }

  start(options: StartOptions = {}): Promise<StartResult> {
    return this.serial(() => this.doStart(options));
  }

  private async doStart(options: StartOptions): Promise<StartResult> {
    if (this.state === 'destroyed') throw new Error(`sandbox ${this.id} was destroyed`);
    if (this.state !== 'stopped') throw new Error(`sandbox ${this.id} is ${this.state}`);
    this.state = 'starting';
    this.reachedRunning = false;
    this.stopRequested = false;
    this.mainExit = undefined;
    this.console = '';
    const listeners: ListeningSocket[] = [];
    try {
      await this.removeRuntimeLeftovers();
      await this.checkBindSources();
      await this.cgroups.create(this.ctx.spec.limits);
      await mkdir(join(this.ctx.dir, 'sock'), { recursive: true, mode: 0o700 });
      for (const forward of this.ctx.spec.forwards)
        listeners.push(await createListeningSocket(this.socketPath(forward.name)));
      const child = this.launch(listeners.map((l) => l.fd));
      this.child = child;
      // The child has its own copies now.
      await Promise.all(listeners.map((l) => l.release()));
      listeners.length = 0;

      const channel = new AgentChannel((child.stdio as unknown as Duplex[])[FD_CONTROL] as Duplex, (m) =>
        this.onAgentEvent(m),
      );
      this.channel = channel;
      const exited = this.watchExit(child, channel);
      this.exitPromise = exited;

      const timeoutMs = options.timeoutMs ?? 15_000;
      const info = await this.readInfo(child, timeoutMs);
      this.nsInitPid = info;
      await this.waitFor(channel, 'hello', timeoutMs, exited);

      const beforeId = options.before ? this.nextId() : undefined;
      const beforeResult = options.before
        ? new Promise<AgentMessage>((resolve) => channel.stream(beforeId as string, (m) => m.t !== 'out' && resolve(m)))
        : undefined;
      channel.send({
        t: 'start',
        forwards: this.ctx.spec.forwards.map((f, i) => ({
          name: f.name,
          fd: FD_FIRST_LISTENER + i,
          mode: f.target.kind,
          ...(f.target.kind === 'exec' ? { argv: f.target.argv } : {}),
          ...(f.target.kind === 'tcp' ? { port: f.target.port } : {}),
          ...(f.target.kind === 'unix' ? { path: f.target.path } : {}),
        })),
        ...(this.ctx.spec.command
          ? { main: { argv: this.ctx.spec.command, ...(options.env ? { env: options.env } : {}) } }
          : {}),
        ...(options.before
          ? { before: this.execMessage(beforeId as string, options.before.argv, options.before) }
          : {}),
      });
      const beforeTimeout = options.before ? (options.before.timeoutMs ?? 60_000) : 0;
      const ready = await this.waitFor(channel, 'ready', timeoutMs + beforeTimeout, exited);
      void ready;
      const result: StartResult = { tcpPorts: {} };
      if (beforeResult) result.before = toExecResult(await beforeResult);

      for (const forward of this.ctx.spec.forwards) {
        const port = options.tcpPorts?.[forward.name] ?? forward.tcpPort;
        if (port === undefined) continue;
        const forwarder = await startTcpForwarder(port, this.socketPath(forward.name)).catch(
          (err: NodeJS.ErrnoException) => {
            throw err.code === 'EADDRINUSE' ? new PortInUseError(forward.name, port) : err;
          },
        );
        this.forwarders.push(forwarder);
        this.ports[forward.name] = forwarder.port;
      }
      result.tcpPorts = { ...this.ports };
      await writeFile(
        join(this.ctx.dir, 'runtime.json'),
        JSON.stringify({ pid: child.pid, nsInitPid: this.nsInitPid, cgroups: this.cgroups.dirs, ports: this.ports }),
        { mode: 0o600 },
      );
      this.state = 'running';
      this.reachedRunning = true;
      this.ctx.log?.info({ sandbox: this.id, uid: this.uid, pid: this.nsInitPid }, 'sandbox started');
      return result;
    } catch (err) {
      for (const l of listeners) await l.release().catch(() => {});
      await this.forceStop();
      this.emit('exit', { reason: 'start-failed', code: null, signal: null } satisfies SandboxExit);
      const tail = this.console.trim().split('\n').slice(-5).join('\n');
      throw new Error(`sandbox ${this.id} failed to start: ${(err as Error).message}${tail ? `\n${tail}` : ''}`, {
        cause: err,
      });
    }
  }

  /**
   * bwrap mounts the binds as the sandbox's uid: each source must exist and every directory above it must
   * let that uid pass. Said here, by name, rather than as bwrap's bare "Permission denied".
   */
  private async checkBindSources(): Promise<void> {
    for (const bind of this.ctx.spec.binds) {
      const info = await stat(bind.hostPath).catch(() => undefined);
      if (!info) throw new Error(`bind source ${bind.hostPath} does not exist`);
      for (let dir = dirname(bind.hostPath); ; dir = dirname(dir)) {
        const d = await stat(dir);
        const passable = d.uid === this.uid ? (d.mode & 0o100) !== 0 : (d.mode & 0o001) !== 0;
        if (!passable)
          throw new Error(`bind source ${bind.hostPath}: uid ${this.uid} cannot enter ${dir} (chmod o+x it)`);
        if (dir === '/') break;
      }
    }
  }

  private launch(listenerFds: number[]): ChildProcess {
    const { tools, spec, uid } = this.ctx;
    const keep = [0, 1, 2, FD_CONTROL, FD_SECCOMP, FD_INFO, ...listenerFds.map((_, i) => FD_FIRST_LISTENER + i)];
    const args = bwrapArgs({
      hostname: spec.hostname,
      mountAt: spec.mountAt,
      dataDir: this.dataDir,
      etcDir: join(this.ctx.dir, 'etc'),
      agentPath: this.ctx.agentPath,
      nodePath: this.ctx.nodePath,
      binds: spec.binds,
      env: {
        PATH: '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
        HOME: spec.mountAt,
        USER: spec.user,
        LOGNAME: spec.user,
        SHELL: '/bin/bash',
        LANG: 'C.UTF-8',
        ...spec.env,
      },
      seccompFd: FD_SECCOMP,
      infoFd: FD_INFO,
    });
    const child = spawn(
      tools.bash,
      [
        '-c',
        LAUNCHER,
        'sandbox-launcher',
        keep.join(' '),
        ...this.cgroups.procsFiles(),
        '--',
        tools.setpriv,
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--',
        tools.bwrap,
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', ...listenerFds],
        env: { PATH: '/usr/bin:/bin' },
        detached: true,
      },
    );
    const collect = (chunk: Buffer) => {
      this.console = (this.console + chunk.toString('utf8')).slice(-OUTPUT_KEEP);
      this.emit('output', chunk);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const seccomp = (child.stdio as unknown as (Writable | null)[])[FD_SECCOMP] ?? null;
    seccomp?.on('error', () => {});
    seccomp?.end(seccompFilterBytes());
    return child;
  }

  /** bwrap writes `{"child-pid": N, …}` to the info fd once the sandbox's init exists. */
  private readInfo(child: ChildProcess, timeoutMs: number): Promise<number> {
    const stream = (child.stdio as unknown as (Readable | null)[])[FD_INFO] ?? null;
    return new Promise((resolve, reject) => {
      if (!stream) {
        reject(new Error('no info fd'));
        return;
      }
      let text = '';
      const timer = setTimeout(() => finish(new Error('bwrap did not report its child pid in time')), timeoutMs);
      const finish = (err?: Error, pid?: number) => {
        clearTimeout(timer);
        stream.removeAllListeners('data');
        if (err) reject(err);
        else resolve(pid as number);
      };
      stream.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        try {
          const parsed = JSON.parse(text) as { 'child-pid'?: number };
          if (typeof parsed['child-pid'] === 'number') finish(undefined, parsed['child-pid']);
        } catch {
          // wait for the rest of the document
        }
      });
      stream.on('error', () => {});
      child.once('exit', () => finish(new Error('the sandbox exited during start')));
    });
  }

  private waitFor(channel: AgentChannel, type: string, timeoutMs: number, exited: Promise<SandboxExit>) {
    return new Promise<AgentMessage>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${type} from the sandbox agent in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.once(`agent:${type}`, (message: AgentMessage) => {
        clearTimeout(timer);
        resolve(message);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error('the sandbox exited during start'));
      });
      void channel;
    });
  }

  private onAgentEvent(message: AgentMessage): void {
    if (message.t === 'main-exit') {
      this.mainExit = {
        code: (message.code as number | null) ?? null,
        signal: (message.signal as string | null) ?? null,
      };
    }
    if (message.t === 'error')
      this.ctx.log?.warn({ sandbox: this.id, message: message.message }, 'sandbox agent error');
    // Everything inside has been stopped (or the main command ended): end the sandbox from outside.
    if ((message.t === 'shutdown-done' || message.t === 'main-exit') && this.nsInitPid !== undefined) {
      try {
        process.kill(this.nsInitPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.emit(`agent:${message.t}`, message);
  }

  /** Resolves when the launched process is gone and every runtime resource is cleaned up. */
  private watchExit(child: ChildProcess, channel: AgentChannel): Promise<SandboxExit> {
    return new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        void (async () => {
          channel.close();
          await this.cleanupRuntime();
          const exit: SandboxExit = this.stopRequested
            ? { reason: 'stopped', code, signal }
            : this.mainExit
              ? { reason: 'main-exited', code: this.mainExit.code, signal: this.mainExit.signal }
              : { reason: this.state === 'starting' ? 'start-failed' : 'crashed', code, signal };
          const wasRunning = this.reachedRunning;
          this.reachedRunning = false;
          if (this.state !== 'destroyed') this.state = 'stopped';
          this.child = undefined;
          this.channel = undefined;
          this.nsInitPid = undefined;
          if (wasRunning) this.emit('exit', exit);
          resolve(exit);
        })();
      });
    });
  }

  /** After the sandbox is gone: forwarders closed, stragglers killed, cgroups and sockets removed. */
  private async cleanupRuntime(): Promise<void> {
    for (const forwarder of this.forwarders.splice(0)) await forwarder.close().catch(() => {});
    this.ports = {};
    await this.cgroups.killAll().catch((err) => this.ctx.log?.warn({ err, sandbox: this.id }, 'kill failed'));
    await this.cgroups.remove().catch((err) => this.ctx.log?.warn({ err, sandbox: this.id }, 'cgroup removal failed'));
    await rm(join(this.ctx.dir, 'sock'), { recursive: true, force: true });
    await unlink(join(this.ctx.dir, 'runtime.json')).catch(() => {});
  }

  /** What a previous run of this sandbox (in a crashed manager) may have left: kill, then remove. */
  private async removeRuntimeLeftovers(): Promise<void> {
    if (this.cgroups.existing().length > 0) {
      await this.cgroups.killAll();
      await this.cgroups.remove();
    }
    await rm(join(this.ctx.dir, 'sock'), { recursive: true, force: true });
  }

  /**
   * Stops the sandbox: asks the agent to SIGTERM everything it started, waits up to `graceMs`, then kills
   * the sandbox's pid namespace (nothing inside survives: no double forks, no setsid). Resolves when the
   * processes, cgroups, sockets and port forwards are gone.
   */
  stop({ graceMs = 5_000 }: { graceMs?: number } = {}): Promise<SandboxExit | undefined> {
    return this.serial(async () => {
      if (this.state !== 'running' || !this.child) return undefined;
      this.state = 'stopping';
      this.stopRequested = true;
      const exited = this.exitPromise as Promise<SandboxExit>;
      for (const forwarder of this.forwarders.splice(0)) await forwarder.close().catch(() => {});
      if (graceMs > 0 && this.channel && !this.channel.isClosed) {
        try {
          this.channel.send({ t: 'shutdown', graceMs });
        } catch {
          // already gone
        }
        const done = await Promise.race([exited, delay(graceMs + 1_000).then(() => undefined)]);
        if (done) return done;
      }
      await this.forceStop();
      return exited;
    });
  }

  /** SIGKILL to the namespace's init and the launcher, then waits for the cleanup. */
  private async forceStop(): Promise<void> {
    this.stopRequested = true;
    const child = this.child;
    const kill = (pid: number | undefined) => {
      if (pid === undefined) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    };
    // Killing the namespace's init kills everything inside; bwrap outside reaps it and exits. Killing that
    // outer bwrap first would orphan the init to the host's pid 1 as a zombie, so it only comes second.
    kill(this.nsInitPid);
    if (child && this.exitPromise) {
      const exited = await Promise.race([this.exitPromise, delay(2_000).then(() => undefined)]);
      if (!exited) {
        kill(child.pid);
        await this.exitPromise;
      }
    } else await this.cleanupRuntime();
    if (this.state !== 'destroyed') this.state = 'stopped';
  }

  /**
   * Stops the sandbox and removes everything it had: its directory (the writable data included), its
   * cgroups, sockets and port forwards, and its uid reservation. Afterwards no process runs as its uid.
   */
  destroy({ graceMs = 0 }: { graceMs?: number } = {}): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'destroyed') return;
      if (this.child) {
        this.stopRequested = true;
        if (graceMs > 0 && this.channel && !this.channel.isClosed) {
          this.channel.send({ t: 'shutdown', graceMs });
          await Promise.race([this.exitPromise, delay(graceMs + 1_000)]);
        }
        await this.forceStop();
      } else {
        await this.removeRuntimeLeftovers();
      }
      // Nothing may keep running as this uid once it is handed back.
      for (const pid of await processesOfUid(this.uid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await rm(this.ctx.dir, { recursive: true, force: true });
      await this.ctx.registry.release(this.uid, this.id);
      this.state = 'destroyed';
      this.ctx.onGone(this.id);
      this.ctx.log?.info({ sandbox: this.id, uid: this.uid }, 'sandbox destroyed');
    });
  }

  private nextId(): string {
    this.sequence += 1;
    return `x${this.sequence}`;
  }

  private execMessage(id: string, argv: string[], options: ExecOptions, stream = false) {
    if (argv.length === 0) throw new Error('argv must not be empty');
    return {
      t: 'exec',
      id,
      argv,
      stream,
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.stdin !== undefined ? { stdin: Buffer.from(options.stdin).toString('base64') } : {}),
      timeoutMs: options.timeoutMs ?? 60_000,
      maxOutputBytes: options.maxOutputBytes ?? 1024 * 1024,
    };
  }

  /**
   * Runs a command inside, through the agent, so it has every restriction the sandbox has (uid, namespaces,
   * seccomp, cgroups). Collects its output; never throws for a failing command (see `exitCode`).
   */
  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const channel = this.runningChannel();
    const reply = await channel.request(this.execMessage(this.nextId(), argv, options));
    return toExecResult(reply);
  }

  /** Starts a command inside with streaming stdin/stdout/stderr (e.g. a terminal session through `script`). */
  spawn(argv: string[], options: Omit<ExecOptions, 'stdin' | 'maxOutputBytes'> = {}): SandboxProcess {
    const channel = this.runningChannel();
    const id = this.nextId();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      channel.stream(id, (message) => {
        if (message.t === 'out') {
          (message.fd === 2 ? stderr : stdout).write(Buffer.from(String(message.data), 'base64'));
          return;
        }
        stdout.end();
        stderr.end();
        resolve({ code: (message.code as number | null) ?? null, signal: (message.signal as string | null) ?? null });
      });
    });
    const stdin = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        try {
          channel.send({ t: 'stdin', id, data: Buffer.from(chunk).toString('base64') });
          callback();
        } catch (err) {
          callback(err as Error);
        }
      },
      final(callback) {
        try {
          channel.send({ t: 'stdin', id, data: null });
        } catch {
          // the process or sandbox is gone
        }
        callback();
      },
    });
    channel.send(this.execMessage(id, argv, { ...options, timeoutMs: options.timeoutMs ?? 0 }, true));
    return {
      stdin,
      stdout,
      stderr,
      exited,
      kill: (signal: NodeJS.Signals = 'SIGTERM') => {
        try {
          channel.send({ t: 'signal', id, signal });
        } catch {
          // gone
        }
      },
    };
  }

  private runningChannel(): AgentChannel {
    if (this.state !== 'running' || !this.channel || this.channel.isClosed) {
      throw new Error(`sandbox ${this.id} is not running (${this.state})`);
    }
    return this.channel;
  }

  /** Memory, CPU and process counts from the sandbox's cgroups (zeros while stopped). */
  async stats(): Promise<SandboxStats> {
    return this.cgroups.stats();
  }

  /** Replaces the sandbox's labels (kept on disk with it). */
  async setLabels(labels: Record<string, string>): Promise<void> {
    this.ctx.spec.labels = { ...labels };
    await this.ctx.persist(this.ctx.spec);
  }

  /** Changes the limits; applied at once while running (lowering memory below current use fails) and kept. */
  async setLimits(limits: Limits): Promise<void> {
    const parsed = limitsSchema.parse(limits);
    if (this.state === 'running') await this.cgroups.apply(parsed);
    this.ctx.spec.limits = parsed;
    await this.ctx.persist(this.ctx.spec);
  }

  /** Resolves with the next exit of a running sandbox. */
  waitForExit(): Promise<SandboxExit> {
    if (!this.exitPromise || this.state === 'stopped' || this.state === 'destroyed') {
      return Promise.resolve({ reason: 'stopped', code: null, signal: null });
    }
    return this.exitPromise;
  }

  /** True when runtime resources of this sandbox exist (for tests and `list`). */
  hasRuntimeLeftovers(): boolean {
    return this.cgroups.existing().length > 0 || existsSync(join(this.ctx.dir, 'sock'));
  }
}

/** A forward's host port is taken by another process (start again with another port, or 0). */
export class PortInUseError extends Error {
  constructor(
    readonly forward: string,
    readonly port: number,
  ) {
    super(`port ${port} for forward ${forward} is in use on the host`);
    this.name = 'PortInUseError';
  }
}

function toExecResult(message: AgentMessage): ExecResult {
  if (message.error && message.code === null && !message.signal) {
    return {
      exitCode: null,
      signal: null,
      stdout: '',
      stderr: String(message.error),
      timedOut: false,
      truncated: false,
    };
  }
  return {
    exitCode: (message.code as number | null) ?? null,
    signal: (message.signal as string | null) ?? null,
    stdout: Buffer.from(String(message.stdout ?? ''), 'base64').toString('utf8'),
    stderr: Buffer.from(String(message.stderr ?? ''), 'base64').toString('utf8'),
    timedOut: Boolean(message.timedOut),
    truncated: Boolean(message.truncated),
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
