import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { type Controller, cgroupParents } from './cgroups.js';

export interface HostTools {
  bwrap: string;
  setpriv: string;
  /** Runs the launcher that joins the cgroups and closes stray fds before exec'ing the sandbox. */
  bash: string;
  /** The node binary that runs the in-sandbox agent (the host's own, read-only). */
  node: string;
}

export const DEFAULT_TOOLS: HostTools = {
  bwrap: '/usr/bin/bwrap',
  setpriv: '/usr/bin/setpriv',
  bash: '/bin/bash',
  node: process.execPath,
};

export interface HostReport {
  ok: boolean;
  /** One sentence per problem, each naming what to fix. Empty when sandboxes can run. */
  problems: string[];
  root: boolean;
  bwrapVersion: string | null;
  /** Parent cgroup directory per controller (sandboxes go below). */
  cgroupParents: Map<Controller, string>;
}

/** Raised when the host cannot run sandboxes with every wall in place; lists every problem at once. */
export class SandboxUnavailableError extends Error {
  constructor(readonly problems: string[]) {
    super(`sandboxes cannot run on this host:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SandboxUnavailableError';
  }
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * What a sandbox needs from the host, checked up front so nothing is silently skipped: root (to give each
 * sandbox its own uid and cgroups), bubblewrap ≥ 0.8 (`--disable-userns`), setpriv, unprivileged user
 * namespaces (bwrap runs as the sandbox's uid), and the cgroup v1 memory, cpu, cpuacct and pids controllers.
 */
export function checkHost({
  tools = DEFAULT_TOOLS,
  cgroupGroup = 'agentstack-sandbox',
}: {
  tools?: HostTools;
  cgroupGroup?: string;
} = {}): HostReport {
  const problems: string[] = [];
  if (process.platform !== 'linux') problems.push(`sandboxes need Linux (this is ${process.platform})`);
  const root = process.getuid?.() === 0;
  if (!root) {
    problems.push(
      'not running as root: each sandbox runs as its own uid in cgroups with memory/CPU/pids limits, which only root can set up (run the service as root, or use a provider that needs no sandbox)',
    );
  }
  let bwrapVersion: string | null = null;
  if (!executable(tools.bwrap)) {
    problems.push(`bubblewrap not found at ${tools.bwrap} (apt-get install bubblewrap)`);
  } else {
    const out = spawnSync(tools.bwrap, ['--version'], { encoding: 'utf8' });
    bwrapVersion = /(\d+\.\d+\.\d+)/.exec(out.stdout ?? '')?.[1] ?? null;
    const [major = 0, minor = 0] = (bwrapVersion ?? '0.0').split('.').map(Number);
    if (major === 0 && minor < 8) {
      problems.push(
        `bubblewrap ${bwrapVersion ?? '(unknown version)'} is too old: 0.8 or newer is needed for --disable-userns`,
      );
    }
  }
  if (!executable(tools.setpriv)) problems.push(`setpriv not found at ${tools.setpriv} (apt-get install util-linux)`);
  if (!executable(tools.bash)) problems.push(`bash not found at ${tools.bash}`);
  if (!executable(tools.node)) problems.push(`node not found at ${tools.node}`);
  const maxUserNs = readSysctl('/proc/sys/user/max_user_namespaces');
  if (maxUserNs !== undefined && Number(maxUserNs) === 0) {
    problems.push('user namespaces are disabled (sysctl user.max_user_namespaces=0); bubblewrap needs them');
  }
  if (readSysctl('/proc/sys/kernel/unprivileged_userns_clone') === '0') {
    problems.push('unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=1 is needed)');
  }
  if (readSysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1') {
    problems.push(
      'AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=0)',
    );
  }
  const { parents, missing } = cgroupParents(cgroupGroup);
  if (missing.length > 0) {
    problems.push(
      `cgroup v1 controller${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not mounted under /sys/fs/cgroup (memory, cpu, cpuacct and pids limits are required)`,
    );
  }
  if (root) {
    for (const [controller, dir] of parents) {
      const parent = dir.slice(0, dir.lastIndexOf('/'));
      if (existsSync(parent)) {
        try {
          accessSync(parent, constants.W_OK);
        } catch {
          problems.push(`cannot create cgroups under ${parent} (${controller} controller is read-only here)`);
        }
      }
    }
  }
  return { ok: problems.length === 0, problems, root, bwrapVersion, cgroupParents: parents };
}
