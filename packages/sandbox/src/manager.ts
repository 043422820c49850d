import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Controller, listCgroupChildren } from './cgroups.js';
import { checkHost, DEFAULT_TOOLS, type HostReport, type HostTools, SandboxUnavailableError } from './host.js';
import { etcFiles, NODE_PATH_INSIDE } from './rootfs.js';
import { Sandbox } from './sandbox.js';
import { checkBinds, type SandboxSpec, type SandboxSpecInput, sandboxSpecSchema } from './spec.js';
import { DEFAULT_REGISTRY_DIR, DEFAULT_UID_RANGE, type UidRange, UidRegistry } from './uids.js';

export interface SandboxManagerOptions {
  /** Root-owned directory for the sandboxes' files (each sandbox's writable directory lives below). */
  stateDir: string;
  /** Machine-wide uid reservations, shared by every manager on the host. */
  registryDir?: string;
  uidRange?: UidRange;
  /** Name of the cgroup (under the manager's own, per controller) that holds the sandboxes' cgroups. */
  cgroupGroup?: string;
  tools?: Partial<HostTools>;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

/** What `list()` returns for each sandbox on disk, running or not. */
export interface SandboxInfo {
  id: string;
  uid: number;
  user: string;
  labels: Record<string, string>;
  status: Sandbox['status'];
  createdAt: string;
}

interface StoredSandbox {
  uid: number;
  createdAt: string;
  spec: SandboxSpec;
}

const AGENT_SOURCE = fileURLToPath(new URL('../agent/agent.mjs', import.meta.url));

/**
 * Creates sandboxes and finds them again after a restart. Checks the host first and refuses to start
 * (listing every problem) rather than run sandboxes with a wall missing.
 */
export async function createSandboxManager(options: SandboxManagerOptions): Promise<SandboxManager> {
  const tools: HostTools = { ...DEFAULT_TOOLS, ...options.tools };
  const group = options.cgroupGroup ?? 'agentstack-sandbox';
  const host = checkHost({ tools, cgroupGroup: group });
  if (!host.ok) throw new SandboxUnavailableError(host.problems);
  const stateDir = resolve(options.stateDir);
  // The sandbox uids must be able to pass through (never list or read) to their own directories.
  await mkdir(join(stateDir, 'sandboxes'), { recursive: true });
  await chmod(stateDir, 0o711);
  await chmod(join(stateDir, 'sandboxes'), 0o711);
  for (const dir of new Set(host.cgroupParents.values())) await mkdir(dir, { recursive: true });
  const agentPath = join(stateDir, 'agent.mjs');
  await copyFile(AGENT_SOURCE, agentPath);
  await chmod(agentPath, 0o644);
  const nodePath = await nodeForSandboxes(tools.node, stateDir);
  return new SandboxManager({
    stateDir,
    tools,
    host,
    registry: new UidRegistry(options.registryDir ?? DEFAULT_REGISTRY_DIR, options.uidRange ?? DEFAULT_UID_RANGE),
    agentPath,
    nodePath,
    ...(options.log ? { log: options.log } : {}),
  });
}

/** Node from /usr is visible inside as it is; one installed elsewhere (e.g. under /root) is copied once. */
async function nodeForSandboxes(node: string, stateDir: string): Promise<string> {
  if (node.startsWith('/usr/')) return node;
  const copy = join(stateDir, 'node');
  const [source, existing] = await Promise.all([stat(node), stat(copy).catch(() => undefined)]);
  if (!existing || existing.size !== source.size || existing.mtimeMs < source.mtimeMs) {
    await copyFile(node, copy);
    await chmod(copy, 0o755);
  }
  return NODE_PATH_INSIDE;
}

export class SandboxManager {
  private readonly loaded = new Map<string, Sandbox>();

  constructor(
    private readonly deps: {
      stateDir: string;
      tools: HostTools;
      host: HostReport;
      registry: UidRegistry;
      agentPath: string;
      nodePath: string;
      log?: SandboxManagerOptions['log'];
    },
  ) {}

  get host(): HostReport {
    return this.deps.host;
  }
  get registry(): UidRegistry {
    return this.deps.registry;
  }
  get stateDir(): string {
    return this.deps.stateDir;
  }
  /** The node binary as seen inside a sandbox (for a main command that is a Node program). */
  get nodePath(): string {
    return this.deps.nodePath;
  }
  /** Per controller, the directory holding this manager's sandbox cgroups. */
  get cgroupParents(): Map<Controller, string> {
    return this.deps.host.cgroupParents;
  }

  private dirOf(id: string): string {
    return join(this.deps.stateDir, 'sandboxes', id);
  }

  /**
   * Creates a sandbox (stopped): reserves its uid, creates its writable directory (owned by that uid,
   * mode 0700) and its generated account files. `start()` runs it.
   */
  async create(input: SandboxSpecInput): Promise<Sandbox> {
    const parsed = sandboxSpecSchema.parse(input);
    const id =
      parsed.id ??
      `sbx_${randomBytes(9)
        .toString('base64url')
        .replace(/[^A-Za-z0-9]/g, 'x')}`;
    const spec: SandboxSpec = {
      ...parsed,
      id,
      hostname:
        parsed.hostname ??
        id
          .toLowerCase()
          .replace(/[^a-z0-9-]/g, '-')
          .slice(0, 63)
          .replace(/-+$/, ''),
      mountAt: parsed.mountAt ?? `/home/${parsed.user}`,
    };
    checkBinds(spec.binds, spec.mountAt);
    const names = new Set<string>();
    for (const forward of spec.forwards) {
      if (names.has(forward.name)) throw new Error(`forward ${forward.name} is listed twice`);
      names.add(forward.name);
    }
    const dir = this.dirOf(id);
    await mkdir(dir, { mode: 0o711 }).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EEXIST' ? new Error(`a sandbox with id ${id} already exists`) : err;
    });
    try {
      await chmod(dir, 0o711);
      const uid = await this.deps.registry.reserve(id, dir);
      const stored: StoredSandbox = { uid, createdAt: new Date().toISOString(), spec };
      await this.writeStored(id, stored);
      await writeEtc(dir, spec, uid);
      const data = join(dir, 'data');
      await mkdir(data, { mode: 0o700 });
      await chown(data, uid, uid);
      await chmod(data, 0o700);
      return this.instantiate(stored);
    } catch (err) {
      const stored = await this.readStored(id).catch(() => undefined);
      if (stored) await this.deps.registry.release(stored.uid, id);
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A sandbox this manager has loaded (created or opened). */
  get(id: string): Sandbox | undefined {
    return this.loaded.get(id);
  }

  /** Loads a sandbox from disk (e.g. after a restart; it is stopped: sandboxes die with their manager). */
  async open(id: string): Promise<Sandbox> {
    const existing = this.loaded.get(id);
    if (existing) return existing;
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$/.test(id) || !existsSync(this.dirOf(id))) {
      throw new Error(`no sandbox ${id}`);
    }
    return this.instantiate(await this.readStored(id));
  }

  /** Every sandbox on disk, running or not. */
  async list(): Promise<SandboxInfo[]> {
    const ids = await readdir(join(this.deps.stateDir, 'sandboxes')).catch(() => [] as string[]);
    const infos: SandboxInfo[] = [];
    for (const id of ids.sort()) {
      const stored = await this.readStored(id).catch(() => undefined);
      if (!stored) continue;
      infos.push({
        id,
        uid: stored.uid,
        user: stored.spec.user,
        labels: stored.spec.labels,
        status: this.loaded.get(id)?.status ?? 'stopped',
        createdAt: stored.createdAt,
      });
    }
    return infos;
  }

  /** Ids of sandbox cgroups present under this manager's cgroup (for checking nothing is left behind). */
  async cgroupsOnHost(): Promise<string[]> {
    const names = new Set<string>();
    for (const parent of this.cgroupParents.values())
      for (const name of await listCgroupChildren(parent)) names.add(name);
    return [...names];
  }

  /**
   * Stops every running sandbox this manager loaded (they are kept; `destroy` removes them) and removes the
   * group cgroup directories if no other manager still uses them.
   */
  async close({ graceMs = 2_000 }: { graceMs?: number } = {}): Promise<void> {
    await Promise.all([...this.loaded.values()].map((s) => s.stop({ graceMs }).catch(() => undefined)));
    for (const dir of new Set(this.cgroupParents.values())) await rmdir(dir).catch(() => undefined);
  }

  private instantiate(stored: StoredSandbox): Sandbox {
    const id = stored.spec.id;
    const sandbox = new Sandbox({
      dir: this.dirOf(id),
      uid: stored.uid,
      spec: stored.spec,
      tools: this.deps.tools,
      cgroupParents: this.deps.host.cgroupParents,
      agentPath: this.deps.agentPath,
      nodePath: this.deps.nodePath,
      registry: this.deps.registry,
      persist: (spec) => this.writeStored(id, { ...stored, spec }),
      onGone: (gone) => this.loaded.delete(gone),
      ...(this.deps.log ? { log: this.deps.log } : {}),
    });
    this.loaded.set(id, sandbox);
    return sandbox;
  }

  private async readStored(id: string): Promise<StoredSandbox> {
    return JSON.parse(await readFile(join(this.dirOf(id), 'sandbox.json'), 'utf8')) as StoredSandbox;
  }

  private async writeStored(id: string, stored: StoredSandbox): Promise<void> {
    const path = join(this.dirOf(id), 'sandbox.json');
    await writeFile(`${path}.tmp`, JSON.stringify(stored, null, 2), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
}

async function writeEtc(dir: string, spec: SandboxSpec, uid: number): Promise<void> {
  const etc = join(dir, 'etc');
  await mkdir(etc, { mode: 0o755 });
  await chmod(etc, 0o755);
  const files = etcFiles({ user: spec.user, uid, home: spec.mountAt, hostname: spec.hostname });
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(etc, name), content, { mode: 0o644 });
  }
}
