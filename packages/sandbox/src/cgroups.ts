import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Limits } from './spec.js';

/**
 * cgroup v1 (what these machines have: v2 is mounted without the memory and cpu controllers). Each sandbox
 * gets one directory per controller, named after its id and nested under the manager's own cgroup, so its
 * usage still counts against whatever limits the manager itself runs under.
 */
export const REQUIRED_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids'] as const;
/** Used when present: freezing makes killing a fork bomb race-free. */
export const OPTIONAL_CONTROLLERS = ['freezer'] as const;
export type Controller = (typeof REQUIRED_CONTROLLERS)[number] | (typeof OPTIONAL_CONTROLLERS)[number];

export interface CgroupMount {
  /** Where the hierarchy is mounted (e.g. /sys/fs/cgroup/memory). */
  mountPoint: string;
  /** Which cgroup of the hierarchy that mount shows (not "/" inside some containers). */
  root: string;
}

export interface SandboxStats {
  memory: { usageBytes: number; maxUsageBytes: number; limitBytes: number; failCount: number; oomKills: number };
  cpu: { usageNanos: number; quotaCores: number | null; shares: number; throttledPeriods: number };
  pids: { current: number; limit: number; refusedForks: number };
}

/** Parses /proc/self/mountinfo for cgroup v1 hierarchies: controller → mount. */
export function findCgroupMounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): Map<string, CgroupMount> {
  const found = new Map<string, CgroupMount>();
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const [fstype, , superOptions] = right.split(' ');
    if (fstype !== 'cgroup' || !superOptions) continue;
    const fields = left.split(' ');
    const root = unescapeMount(fields[3] ?? '/');
    const mountPoint = unescapeMount(fields[4] ?? '');
    for (const option of superOptions.split(',')) {
      if (!found.has(option)) found.set(option, { mountPoint, root });
    }
  }
  return found;
}

const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** The cgroup this process is in, per v1 controller (from /proc/self/cgroup). */
export function ownCgroups(procCgroup = readFileSync('/proc/self/cgroup', 'utf8')): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of procCgroup.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match?.[1]) continue;
    for (const controller of match[1].split(',')) own.set(controller, match[2] ?? '/');
  }
  return own;
}

/**
 * Where sandboxes' cgroups go for each controller: `<own cgroup>/<group>`. Missing controllers are returned
 * in `missing` so the caller can say exactly what is wrong.
 */
export function cgroupParents(group: string): { parents: Map<Controller, string>; missing: string[] } {
  const mounts = findCgroupMounts();
  const own = ownCgroups();
  const parents = new Map<Controller, string>();
  const missing: string[] = [];
  for (const controller of [...REQUIRED_CONTROLLERS, ...OPTIONAL_CONTROLLERS]) {
    const mount = mounts.get(controller);
    if (!mount || !existsSync(mount.mountPoint)) {
      if ((REQUIRED_CONTROLLERS as readonly string[]).includes(controller)) missing.push(controller);
      continue;
    }
    const ownPath = own.get(controller) ?? '/';
    const inside = relative(mount.root, ownPath);
    const base = inside.startsWith('..') ? mount.mountPoint : join(mount.mountPoint, inside);
    parents.set(controller, join(base, group));
  }
  return { parents, missing };
}

async function write(path: string, value: string | number): Promise<void> {
  await writeFile(path, String(value));
}

async function readNumber(path: string): Promise<number> {
  const text = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (text === 'max') return Number.POSITIVE_INFINITY;
  const n = Number(text);
  return Number.isFinite(n) ? n : 0;
}

async function readKeyed(path: string): Promise<Map<string, number>> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined) map.set(key, Number(value));
  }
  return map;
}

const CFS_PERIOD_US = 100_000;

/** One sandbox's cgroups: a directory per controller. */
export class CgroupSet {
  constructor(readonly dirs: Partial<Record<Controller, string>>) {}

  static forSandbox(parents: Map<Controller, string>, name: string): CgroupSet {
    const dirs: Partial<Record<Controller, string>> = {};
    for (const [controller, parent] of parents) dirs[controller] = join(parent, name);
    return new CgroupSet(dirs);
  }

  /** The `cgroup.procs` files a launcher writes its pid into before exec'ing the sandbox. */
  procsFiles(): string[] {
    return this.uniqueDirs().map((dir) => join(dir, 'cgroup.procs'));
  }

  /** Controllers mounted together (e.g. `cpu,cpuacct`) share one directory. */
  private uniqueDirs(): string[] {
    return [...new Set(Object.values(this.dirs))];
  }

  async create(limits: Limits): Promise<void> {
    for (const dir of this.uniqueDirs()) await mkdir(dir, { recursive: true });
    await this.apply(limits);
  }

  async apply(limits: Limits): Promise<void> {
    const memory = this.dirs.memory;
    if (memory) {
      // memsw (RAM + swap) must stay ≥ the RAM limit: raise it first when growing, lower it last when shrinking.
      const memsw = join(memory, 'memory.memsw.limit_in_bytes');
      const hasMemsw = existsSync(memsw);
      const current = await readNumber(join(memory, 'memory.limit_in_bytes'));
      if (hasMemsw && limits.memoryBytes > current) await write(memsw, limits.memoryBytes);
      await write(join(memory, 'memory.limit_in_bytes'), limits.memoryBytes);
      if (hasMemsw && limits.memoryBytes <= current) await write(memsw, limits.memoryBytes);
      await write(join(memory, 'memory.swappiness'), 0).catch(() => {});
    }
    const cpu = this.dirs.cpu;
    if (cpu) {
      await write(join(cpu, 'cpu.shares'), limits.cpuShares ?? 1024);
      await write(join(cpu, 'cpu.cfs_period_us'), CFS_PERIOD_US);
      await write(
        join(cpu, 'cpu.cfs_quota_us'),
        limits.cpus === undefined ? -1 : Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US)),
      );
    }
    if (this.dirs.pids) await write(join(this.dirs.pids, 'pids.max'), limits.pids);
  }

  async processes(): Promise<number[]> {
    const pids = new Set<number>();
    for (const dir of this.uniqueDirs()) {
      const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (line.trim()) pids.add(Number(line));
    }
    return [...pids];
  }

  /** Kills every process in the sandbox's cgroups (frozen first when the freezer is there) until none is left. */
  async killAll(timeoutMs = 5_000): Promise<void> {
    const freezer = this.dirs.freezer;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pids = await this.processes();
      if (pids.length === 0) break;
      if (Date.now() > deadline) throw new Error(`processes ${pids.join(', ')} survived SIGKILL`);
      if (freezer) await write(join(freezer, 'freezer.state'), 'FROZEN').catch(() => {});
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (freezer) await write(join(freezer, 'freezer.state'), 'THAWED').catch(() => {});
      await sleep(10);
    }
  }

  /** Removes the directories (they must be empty of processes; exiting ones are waited for briefly). */
  async remove(): Promise<void> {
    for (const dir of this.uniqueDirs()) {
      for (let attempt = 0; ; attempt++) {
        try {
          await rmdir(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code === 'EBUSY' && attempt < 100) {
            await sleep(20);
            continue;
          }
          throw err;
        }
      }
    }
  }

  existing(): string[] {
    return this.uniqueDirs().filter((dir) => existsSync(dir));
  }

  async stats(): Promise<SandboxStats> {
    const memory = this.dirs.memory ?? '';
    const cpu = this.dirs.cpu ?? '';
    const pids = this.dirs.pids ?? '';
    const oom = await readKeyed(join(memory, 'memory.oom_control'));
    const cpuStat = await readKeyed(join(cpu, 'cpu.stat'));
    const pidEvents = await readKeyed(join(pids, 'pids.events'));
    const quota = await readNumber(join(cpu, 'cpu.cfs_quota_us'));
    const period = (await readNumber(join(cpu, 'cpu.cfs_period_us'))) || CFS_PERIOD_US;
    return {
      memory: {
        usageBytes: await readNumber(join(memory, 'memory.usage_in_bytes')),
        maxUsageBytes: await readNumber(join(memory, 'memory.max_usage_in_bytes')),
        limitBytes: await readNumber(join(memory, 'memory.limit_in_bytes')),
        failCount: await readNumber(join(memory, 'memory.failcnt')),
        oomKills: oom.get('oom_kill') ?? 0,
      },
      cpu: {
        usageNanos: await readNumber(join(this.dirs.cpuacct ?? '', 'cpuacct.usage')),
        quotaCores: quota > 0 ? quota / period : null,
        shares: await readNumber(join(cpu, 'cpu.shares')),
        throttledPeriods: cpuStat.get('nr_throttled') ?? 0,
      },
      pids: {
        current: await readNumber(join(pids, 'pids.current')),
        limit: await readNumber(join(pids, 'pids.max')),
        refusedForks: pidEvents.get('max') ?? 0,
      },
    };
  }
}

/** Names of the sandbox cgroups currently under `parent` (for listing what is left behind). */
export async function listCgroupChildren(parent: string): Promise<string[]> {
  const entries = await readdir(parent, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}
