import { existsSync, lstatSync, readlinkSync } from 'node:fs';

/**
 * The sandbox's filesystem: the host's Debian userland read-only (`/usr` and the merged-usr links), a
 * short allow-list of harmless `/etc` entries, generated `passwd`/`group`/`hosts`/`hostname`, private tmpfs
 * for `/tmp`, `/run`, `/var/tmp` and `/dev/shm`, a fresh `/proc` (own pid namespace) and a minimal `/dev`.
 * The only writable host directories are the sandbox's own and the binds its spec asks for. Nothing else of the host is visible: no `/sys`,
 * no `/home`, no host sockets.
 */

/** `/etc` entries safe to show (no host secrets, no host-specific service config). */
export const ETC_ALLOWLIST = [
  'alternatives',
  'bash.bashrc',
  'ca-certificates',
  'ca-certificates.conf',
  'debian_version',
  'gai.conf',
  'host.conf',
  'inputrc',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'locale.alias',
  'localtime',
  'login.defs',
  'magic',
  'magic.mime',
  'mime.types',
  'nanorc',
  'nsswitch.conf',
  'os-release',
  'profile',
  'profile.d',
  'protocols',
  'services',
  'shells',
  'skel',
  'ssl',
  'terminfo',
  'timezone',
  'vim',
  'xattr.conf',
];

/** Top-level entries that merged-usr Debian makes links into /usr (bound as real dirs where they are not). */
const USR_LINKS = ['bin', 'sbin', 'lib', 'lib64', 'lib32', 'libx32'];

export interface RootfsPlan {
  hostname: string;
  /** Where the writable directory appears inside, e.g. `/home/agent` or `/workspace`. */
  mountAt: string;
  /** The sandbox's writable directory on the host. */
  dataDir: string;
  /** Host directory with the generated passwd, group, hosts and hostname. */
  etcDir: string;
  /** Host path of the agent script (readable by the sandbox uid). */
  agentPath: string;
  /** Node binary as seen inside: the host path when it lies under /usr, else bound at `/run/sandbox/node`. */
  nodePath: string;
  env: Record<string, string>;
  /** Extra host paths, mounted after the writable directory (validated by `bindSchema`/`checkBinds`). */
  binds?: readonly { hostPath: string; at: string; readOnly: boolean }[];
  seccompFd: number;
  infoFd: number;
}

export const AGENT_PATH_INSIDE = '/run/sandbox/agent.mjs';
export const NODE_PATH_INSIDE = '/run/sandbox/node';

function bindUsrLink(name: string): string[] {
  const host = `/${name}`;
  if (!existsSync(host)) return [];
  const stat = lstatSync(host);
  if (stat.isSymbolicLink()) return ['--symlink', readlinkSync(host), host];
  if (stat.isDirectory()) return ['--ro-bind', host, host];
  return [];
}

function bindEtc(name: string): string[] {
  const host = `/etc/${name}`;
  if (!existsSync(host)) return [];
  const stat = lstatSync(host);
  // Relative links into /usr (os-release → ../usr/lib/os-release) work as links; others are bound as files.
  if (stat.isSymbolicLink()) {
    const target = readlinkSync(host);
    if (target.startsWith('../usr/') || target.startsWith('/usr/')) return ['--symlink', target, host];
  }
  return ['--ro-bind', host, host];
}

/** bubblewrap's arguments (after the executable), ending with the agent's command line. */
export function bwrapArgs(plan: RootfsPlan): string[] {
  const args: string[] = [
    '--unshare-all',
    '--unshare-user',
    '--disable-userns',
    '--die-with-parent',
    '--new-session',
    '--hostname',
    plan.hostname,
    '--seccomp',
    String(plan.seccompFd),
    '--info-fd',
    String(plan.infoFd),
    '--clearenv',
  ];
  for (const [name, value] of Object.entries(plan.env)) args.push('--setenv', name, value);
  args.push('--ro-bind', '/usr', '/usr');
  for (const name of USR_LINKS) args.push(...bindUsrLink(name));
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/dev/shm');
  args.push(
    '--tmpfs',
    '/tmp',
    '--tmpfs',
    '/run',
    '--dir',
    '/var',
    '--tmpfs',
    '/var/tmp',
    '--symlink',
    '../run',
    '/var/run',
  );
  args.push('--dir', '/etc');
  for (const name of ETC_ALLOWLIST) args.push(...bindEtc(name));
  for (const name of ['passwd', 'group', 'hosts', 'hostname']) {
    args.push('--ro-bind', `${plan.etcDir}/${name}`, `/etc/${name}`);
  }
  args.push('--symlink', '../proc/self/mounts', '/etc/mtab');
  args.push('--ro-bind', plan.agentPath, AGENT_PATH_INSIDE);
  if (plan.nodePath === NODE_PATH_INSIDE) args.push('--ro-bind', process.execPath, NODE_PATH_INSIDE);
  args.push('--bind', plan.dataDir, plan.mountAt);
  for (const bind of plan.binds ?? []) args.push(bind.readOnly ? '--ro-bind' : '--bind', bind.hostPath, bind.at);
  // Everything outside the tmpfs mounts and the sandbox's own directory is read-only, the root included.
  args.push('--remount-ro', '/');
  args.push('--chdir', plan.mountAt);
  args.push('--', plan.nodePath, '--max-old-space-size=48', AGENT_PATH_INSIDE);
  return args;
}

/** The generated account files: the sandbox user, and nobody, so tools that look names up work. */
export function etcFiles(options: { user: string; uid: number; home: string; hostname: string }) {
  const { user, uid, home, hostname } = options;
  return {
    passwd: `${user}:x:${uid}:${uid}:${user}:${home}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `${user}:x:${uid}:\nnogroup:x:65534:\n`,
    hosts: `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    hostname: `${hostname}\n`,
  };
}
