import { execFile } from 'node:child_process';
import { lchown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PortInUseError, type Sandbox, type SandboxManager } from '@agentstack/sandbox';
import type { Catalog, ServerType } from '../catalog.js';
import {
  type ComputeProvider,
  type CreatedServer,
  type CreateServerInput,
  LABEL_MANAGED,
  LABEL_TYPE,
  MANAGED_BY,
  ProviderError,
  type ProviderOffer,
  type ProviderServer,
  type ProviderSshKey,
  type ServerStatus,
} from './provider.js';

/**
 * Servers as sandboxes on this machine (`@agentstack/sandbox`). Each is its own uid with the host's Debian
 * 12 userland read-only and a writable home; SSH is dropbear, run per connection inside the sandbox as the
 * server's uid (so the login name `root` is that unprivileged uid), reached on a host loopback port. The
 * sandbox has no network: it cannot reach the host's services or the other servers.
 *
 * State lives with the sandbox: its labels record the owner, type, image, SSH port and whether it should be
 * running, so a restarted service finds its servers again (and starts those that were on).
 */
export const LOCAL_IMAGE = 'debian-12';
export const LOCAL_LOCATION = 'local';
const LOGIN = 'root';
const HOST_KEY = '/root/.ssh/ssh_host_ed25519_key';
const LABEL_IMAGE = 'spawn-image';
const LABEL_POWER = 'spawn-power';
const LABEL_PORT = 'spawn-ssh-port';
const GiB = 1024 * 1024 * 1024;
const run = promisify(execFile);

export interface LocalProviderOptions {
  /** Undefined when sandboxes cannot run here; `unavailable` says why. */
  manager: SandboxManager | undefined;
  unavailable?: string;
  catalog: Catalog;
  /** The address reported for SSH (the forwards listen on 127.0.0.1). */
  sshHost?: string;
  /** user_data gets this long at first boot. */
  userDataTimeoutMs?: number;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

/**
 * Runs inside at boot, before SSH is served: makes sure the host key exists (the user may have removed it),
 * and at first boot runs user_data (stdin) once, with a timeout, output in ~/.spawn/.
 */
const BOOT_SCRIPT = `set -u
umask 077
[ -s ${HOST_KEY} ] || { mkdir -p ~/.ssh && dropbearkey -t ed25519 -f ${HOST_KEY} >/dev/null 2>&1; } || { echo "cannot create the host key" >&2; exit 70; }
if [ -n "\${SPAWN_USER_DATA_TIMEOUT:-}" ]; then
  mkdir -p ~/.spawn
  cat > ~/.spawn/user-data
  chmod 700 ~/.spawn/user-data
  if [ "$(head -c 2 ~/.spawn/user-data)" = '#!' ]; then run=~/.spawn/user-data; else run="/bin/sh $HOME/.spawn/user-data"; fi
  (cd ~ && timeout --kill-after=5 "$SPAWN_USER_DATA_TIMEOUT" $run) > ~/.spawn/user-data.log 2>&1 < /dev/null
  echo $? > ~/.spawn/user-data.exit
fi
exit 0
`;

function statusOf(sandbox: Sandbox): ServerStatus {
  switch (sandbox.status) {
    case 'running':
      return 'running';
    case 'starting':
      return 'initializing';
    case 'stopping':
      return 'stopping';
    case 'stopped':
      return 'off';
    default:
      return 'unknown';
  }
}

export class LocalProvider implements ComputeProvider {
  readonly name = 'local' as const;
  private readonly arch = process.arch === 'arm64' ? 'arm' : 'x86';
  /** Serialises operations per server (a power action and a destroy must not interleave). */
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly watched = new WeakSet<Sandbox>();
  private listener: ((providerId: string) => void) | undefined;

  constructor(private readonly options: LocalProviderOptions) {}

  offer(): ProviderOffer {
    return {
      types: Object.values(this.options.catalog.types)
        .filter((t) => t.arch === this.arch)
        .map((t) => t.slug),
      images: [LOCAL_IMAGE],
      locations: [LOCAL_LOCATION],
      passwordLogin: false,
      userData: 'shell',
    };
  }

  unavailableReason(): string | undefined {
    return this.options.manager ? undefined : (this.options.unavailable ?? 'local sandboxes are unavailable');
  }

  private get manager(): SandboxManager {
    const manager = this.options.manager;
    if (!manager) throw new ProviderError(this.unavailableReason() ?? 'unavailable', 'provider_unavailable');
    return manager;
  }

  private limitsFor(type: ServerType) {
    return { memoryBytes: Math.round(type.memoryGb * GiB), cpus: type.cores, pids: 256 * type.cores };
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(id) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.queues.set(id, settled);
    void settled.then(() => {
      if (this.queues.get(id) === settled) this.queues.delete(id);
    });
    return next;
  }

  watch(listener: (providerId: string) => void): void {
    this.listener = listener;
  }

  /** Reports every exit of a server's sandbox (its status went to off) to the watcher. */
  private observe(sandbox: Sandbox): Sandbox {
    if (!this.watched.has(sandbox)) {
      this.watched.add(sandbox);
      sandbox.on('exit', () => this.listener?.(sandbox.id));
    }
    return sandbox;
  }

  private async sandbox(providerId: string): Promise<Sandbox> {
    try {
      return this.observe(await this.manager.open(providerId));
    } catch (err) {
      if (err instanceof ProviderError) throw err;
      throw new ProviderError(`server ${providerId} does not exist on the local provider`, 'not_found');
    }
  }

  private describe(sandbox: Sandbox): ProviderServer {
    const labels = { ...sandbox.labels };
    const port = sandbox.tcpPort('ssh') ?? (Number(labels[LABEL_PORT]) || undefined);
    return {
      providerId: sandbox.id,
      status: statusOf(sandbox),
      labels,
      ipv4: this.options.sshHost ?? '127.0.0.1',
      ipv6: null,
      ssh: port ? { host: this.options.sshHost ?? '127.0.0.1', port, user: LOGIN } : null,
      type: labels[LABEL_TYPE] ?? null,
      image: labels[LABEL_IMAGE] ?? LOCAL_IMAGE,
      location: LOCAL_LOCATION,
    };
  }

  /**
   * A fresh server's home (just created: nothing has run in it, so nothing can be planted there) gets its
   * SSH files from the host: `authorized_keys` and a new host key, owned by the server's uid. Exclusive
   * creates refuse anything that is already there.
   */
  private async provision(sandbox: Sandbox, keys: ProviderSshKey[]): Promise<void> {
    const dir = join(sandbox.dataDir, '.ssh');
    const authorized = join(dir, 'authorized_keys');
    const hostKey = join(sandbox.dataDir, HOST_KEY.replace(/^\/root\//, ''));
    await mkdir(dir, { mode: 0o700 });
    await writeFile(authorized, `${keys.map((k) => k.publicKey).join('\n')}\n`, { flag: 'wx', mode: 0o600 });
    await run('dropbearkey', ['-t', 'ed25519', '-f', hostKey]);
    for (const path of [dir, authorized, hostKey]) await lchown(path, sandbox.uid, sandbox.uid);
  }

  /** Starts the sandbox on its recorded port (a new one if another process took it meanwhile). */
  private async boot(sandbox: Sandbox, first?: { userData?: string }): Promise<void> {
    const timeoutMs = this.options.userDataTimeoutMs ?? 300_000;
    // A first boot without user_data has nothing to do inside: its keys were provisioned from the host.
    const before =
      first && !first.userData
        ? undefined
        : {
            argv: ['/bin/bash', '-c', BOOT_SCRIPT],
            env: (first?.userData ? { SPAWN_USER_DATA_TIMEOUT: `${Math.ceil(timeoutMs / 1000)}s` } : {}) as Record<
              string,
              string
            >,
            ...(first?.userData ? { stdin: first.userData } : {}),
            timeoutMs: timeoutMs + 30_000,
          };
    const recorded = Number(sandbox.labels[LABEL_PORT]) || 0;
    let result: Awaited<ReturnType<Sandbox['start']>>;
    try {
      result = await sandbox.start({ ...(before ? { before } : {}), tcpPorts: { ssh: recorded } });
    } catch (err) {
      if (!(err instanceof Error && err.cause instanceof PortInUseError)) throw err;
      this.options.log?.warn({ server: sandbox.id, port: recorded }, 'SSH port taken; moving the server to a new port');
      result = await sandbox.start({ ...(before ? { before } : {}), tcpPorts: { ssh: 0 } });
    }
    if (result.before && result.before.exitCode !== 0) {
      await sandbox.stop({ graceMs: 0 });
      throw new ProviderError(
        `boot failed: ${result.before.stderr.trim().slice(0, 300) || `exit ${result.before.exitCode}`}`,
        'boot_failed',
      );
    }
    await sandbox.setLabels({ ...sandbox.labels, [LABEL_POWER]: 'on', [LABEL_PORT]: String(result.tcpPorts.ssh) });
  }

  async create(input: CreateServerInput): Promise<CreatedServer> {
    const offer = this.offer();
    if (!offer.images.includes(input.image) || !offer.types.includes(input.type.slug)) {
      throw new ProviderError(`the local provider cannot provide ${input.type.slug}/${input.image}`, 'invalid_input');
    }
    if (input.sshKeys.length === 0) {
      throw new ProviderError(
        'the local provider needs at least one SSH key (there is no password login)',
        'invalid_input',
      );
    }
    return this.serial(input.serverId, async () => {
      const sandbox = await this.manager.create({
        id: input.serverId,
        user: LOGIN,
        mountAt: '/root',
        hostname: input.name,
        limits: this.limitsFor(input.type),
        forwards: [
          {
            name: 'ssh',
            tcpPort: 0,
            target: { kind: 'exec', argv: ['/usr/sbin/dropbear', '-i', '-s', '-T', '5', '-r', HOST_KEY] },
          },
        ],
        labels: {
          ...input.labels,
          [LABEL_MANAGED]: MANAGED_BY,
          [LABEL_TYPE]: input.type.slug,
          [LABEL_IMAGE]: input.image,
          [LABEL_POWER]: 'on',
          [LABEL_PORT]: '0',
        },
      });
      this.observe(sandbox);
      try {
        await this.provision(sandbox, input.sshKeys);
        await this.boot(sandbox, input.userData ? { userData: input.userData } : {});
      } catch (err) {
        await sandbox.destroy().catch(() => undefined);
        throw err instanceof ProviderError ? err : new ProviderError((err as Error).message, 'create_failed');
      }
      return { server: this.describe(sandbox) };
    });
  }

  async get(providerId: string): Promise<ProviderServer | undefined> {
    if (!this.options.manager) return undefined;
    try {
      return this.describe(await this.options.manager.open(providerId));
    } catch {
      return undefined;
    }
  }

  async list(): Promise<ProviderServer[]> {
    const manager = this.manager;
    const servers: ProviderServer[] = [];
    for (const info of await manager.list()) {
      if (info.labels[LABEL_MANAGED] !== MANAGED_BY) continue;
      servers.push(this.describe(this.observe(await manager.open(info.id))));
    }
    return servers;
  }

  powerOn(providerId: string): Promise<void> {
    return this.serial(providerId, async () => {
      const sandbox = await this.sandbox(providerId);
      if (sandbox.status === 'running') return;
      await this.boot(sandbox);
    });
  }

  shutdown(providerId: string): Promise<void> {
    return this.serial(providerId, async () => {
      const sandbox = await this.sandbox(providerId);
      await sandbox.stop({ graceMs: 10_000 });
      await sandbox.setLabels({ ...sandbox.labels, [LABEL_POWER]: 'off' });
    });
  }

  reboot(providerId: string): Promise<void> {
    return this.serial(providerId, async () => {
      const sandbox = await this.sandbox(providerId);
      await sandbox.stop({ graceMs: 10_000 });
      await this.boot(sandbox);
    });
  }

  changeType(providerId: string, type: ServerType): Promise<void> {
    return this.serial(providerId, async () => {
      if (type.arch !== this.arch)
        throw new ProviderError(`the local provider cannot run ${type.slug}`, 'invalid_input');
      const sandbox = await this.sandbox(providerId);
      await sandbox.setLimits(this.limitsFor(type));
      await sandbox.setLabels({ ...sandbox.labels, [LABEL_TYPE]: type.slug });
    });
  }

  /** Wipes the server: a new sandbox under the same id and port, first-booted with the keys (and user_data). */
  rebuild(providerId: string, image: string, sshKeys: ProviderSshKey[], userData?: string): Promise<void> {
    return this.serial(providerId, async () => {
      if (image !== LOCAL_IMAGE)
        throw new ProviderError(`the local provider offers only ${LOCAL_IMAGE}`, 'invalid_input');
      const old = await this.sandbox(providerId);
      const spec = old.spec;
      const labels = { ...old.labels };
      await old.destroy();
      const fresh = this.observe(
        await this.manager.create({
          id: spec.id,
          user: spec.user,
          mountAt: spec.mountAt,
          hostname: spec.hostname,
          limits: spec.limits,
          forwards: spec.forwards,
          labels: { ...labels, [LABEL_IMAGE]: image },
        }),
      );
      await this.provision(fresh, sshKeys);
      await this.boot(fresh, userData ? { userData } : {});
    });
  }

  delete(providerId: string): Promise<void> {
    return this.serial(providerId, async () => {
      if (!this.options.manager)
        throw new ProviderError(this.unavailableReason() ?? 'unavailable', 'provider_unavailable');
      const sandbox = await this.options.manager.open(providerId).catch(() => undefined);
      await sandbox?.destroy({ graceMs: 2_000 });
    });
  }

  async removeSshKey(): Promise<void> {
    // Keys live in each server's authorized_keys (as on Hetzner, removing a key does not touch servers).
  }

  /** Servers that were on when the service stopped (their sandboxes died with it) are started again. */
  async init(): Promise<void> {
    if (!this.options.manager) {
      this.options.log?.warn({ reason: this.unavailableReason() }, 'local provider unavailable');
      return;
    }
    for (const server of await this.list()) {
      if (server.labels[LABEL_POWER] !== 'on' || server.status === 'running') continue;
      await this.powerOn(server.providerId).catch((err) =>
        this.options.log?.warn({ err, server: server.providerId }, 'could not restart a local server'),
      );
    }
  }

  async close(): Promise<void> {
    // Sandboxes die with the service (--die-with-parent); stop them cleanly without changing their power label.
    await this.options.manager?.close({ graceMs: 2_000 });
  }
}
