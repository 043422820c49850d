import { z } from 'zod';

const MiB = 1024 * 1024;

export const limitsSchema = z.object({
  /** Hard RAM limit; the in-sandbox agent itself uses ≈ 40 MiB of it. */
  memoryBytes: z
    .number()
    .int()
    .min(64 * MiB, 'at least 64 MiB (the agent alone needs ≈ 40 MiB)'),
  /** CPU quota in cores (0.1 … 1024); omitted: no quota, only shares. */
  cpus: z.number().min(0.01).max(1024).optional(),
  cpuShares: z.number().int().min(2).max(262_144).optional(),
  /** Processes + threads (the agent uses ≈ 12). */
  pids: z.number().int().min(16, 'at least 16 (the agent needs ≈ 12 threads)').max(4_194_304),
});

/**
 * How connections reach the sandbox. Each forward is a listening unix socket on the host (in a root-only
 * directory; `sandbox.socketPath(name)`), optionally also a TCP port on the host's loopback, and inside:
 * - `exec`: one process per connection, the connection on its stdin/stdout (e.g. `dropbear -i`);
 * - `tcp`: bridged to a port on the sandbox's own loopback (a server listening inside);
 * - `fd`: the listening socket handed to the main command as fd 3, 4, … (`LISTEN_FDS`/`LISTEN_FDNAMES`).
 */
export const forwardSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,23}$/, 'lowercase letters, digits and -, at most 24'),
  /** Also listen on this host loopback port (0: any free port; omitted: unix socket only). */
  tcpPort: z.number().int().min(0).max(65535).optional(),
  target: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('exec'), argv: z.array(z.string()).min(1) }),
    z.object({ kind: z.literal('tcp'), port: z.number().int().min(1).max(65535) }),
    z.object({ kind: z.literal('fd') }),
    // A unix socket inside (e.g. a server's RUNTIME_SOCKET). The agent connects to it as the sandbox's uid,
    // in the sandbox's mount namespace, so a symlink swapped in there can only point at what the sandbox
    // itself can reach; the host never connects to a path the sandbox can write.
    z.object({ kind: z.literal('unix'), path: z.string().regex(/^\/[A-Za-z0-9._\-/]*$/, 'an absolute path') }),
  ]),
});

const absolutePath = z
  .string()
  .regex(/^\/[A-Za-z0-9._\-/]*$/, 'an absolute path of letters, digits, . _ - /')
  .refine((p) => !p.split('/').includes('..'), 'no .. components')
  .refine((p) => !/^\/(usr|etc|proc|dev|tmp|run|var|bin|sbin|lib|lib64)?(\/|$)/.test(p) || p.startsWith('/var/lib/'), {
    message: 'must not hide a system directory (use e.g. /home/<user> or /workspace)',
  });

/** Directories no bind may cover or sit inside: the read-only userland, kernel interfaces, the agent's own. */
const SYSTEM_PREFIXES = [
  '/usr',
  '/etc',
  '/proc',
  '/dev',
  '/sys',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/boot',
  '/root',
  '/run/sandbox',
];
/** Directories a bind may sit inside (they are private tmpfs or empty inside) but not replace. */
const SYSTEM_DIRS = ['/', '/tmp', '/run', '/var', '/var/tmp', '/var/run', '/dev/shm', '/home', '/opt', '/srv', '/mnt'];
/** Host paths never shown to a sandbox: host sockets and kernel interfaces live there. */
const HOST_FORBIDDEN_PREFIXES = ['/proc', '/sys', '/dev', '/run', '/var/run', '/boot'];
const HOST_FORBIDDEN_DIRS = ['/', '/etc', '/usr', '/tmp', '/var', '/var/tmp', '/home', '/root', '/var/lib'];

const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);
const plainAbsolute = z
  .string()
  .regex(/^\/[A-Za-z0-9._\-/]*$/, 'an absolute path of letters, digits, . _ - /')
  .refine((p) => !p.split('/').includes('..') && !p.split('/').includes('.'), 'no . or .. components')
  .transform((p) => (p.length > 1 ? p.replace(/\/+$/, '').replace(/\/{2,}/g, '/') : p));

/**
 * An extra host directory (or file) shown inside, e.g. a tenant's workspace at `/workspace` or a read-only
 * program directory. Validated so a bind can never hide or replace the system directories nor expose the
 * host's sockets; the sandbox's uid must be able to reach `hostPath` (checked at start).
 */
export const bindSchema = z.object({
  hostPath: plainAbsolute.refine(
    (p) => !HOST_FORBIDDEN_DIRS.includes(p) && !HOST_FORBIDDEN_PREFIXES.some((prefix) => under(p, prefix)),
    'must not be a system directory or lie under /proc, /sys, /dev, /run',
  ),
  at: plainAbsolute.refine(
    (p) => !SYSTEM_DIRS.includes(p) && !SYSTEM_PREFIXES.some((prefix) => under(p, prefix)),
    'must not cover a system directory (use e.g. /workspace, /opt/<name> or /run/<name>)',
  ),
  readOnly: z.boolean().default(false),
});

export const sandboxSpecSchema = z.object({
  /** Unique id (also names its cgroups); default a random `sbx_…`. */
  id: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$/)
    .optional(),
  /** Login name inside. */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
    .default('sandbox'),
  hostname: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i)
    .optional(),
  /** Where the writable directory appears (also $HOME); default `/home/<user>`. */
  mountAt: absolutePath.optional(),
  limits: limitsSchema,
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names'), z.string()).default({}),
  /** The main process; the sandbox ends when it does. Omitted: the agent alone keeps it up. */
  command: z.array(z.string()).min(1).optional(),
  forwards: z.array(forwardSchema).default([]),
  /** Extra host paths mounted inside (see `bindSchema`); at most one per place, none inside another. */
  binds: z.array(bindSchema).max(16).default([]),
  /** Free-form metadata kept with the sandbox (e.g. who owns it), returned by `list()`. */
  labels: z.record(z.string(), z.string()).default({}),
});

export type Limits = z.infer<typeof limitsSchema>;
export type ForwardSpec = z.infer<typeof forwardSchema>;
export type BindSpec = z.output<typeof bindSchema>;

/** Cross-checks binds against each other and the writable directory (`mountAt`); throws naming the problem. */
export function checkBinds(binds: readonly BindSpec[], mountAt: string): void {
  for (const [i, bind] of binds.entries()) {
    if (under(bind.at, mountAt) || under(mountAt, bind.at)) {
      throw new Error(`binds.${i}.at: ${bind.at} overlaps the writable directory ${mountAt}`);
    }
    for (const [j, other] of binds.entries()) {
      if (j !== i && (under(bind.at, other.at) || under(other.at, bind.at))) {
        throw new Error(`binds.${i}.at: ${bind.at} overlaps binds.${j}.at ${other.at}`);
      }
    }
  }
}
export type SandboxSpecInput = z.input<typeof sandboxSpecSchema>;
export type SandboxSpec = z.output<typeof sandboxSpecSchema> & { id: string; hostname: string; mountAt: string };

export interface ExecOptions {
  env?: Record<string, string>;
  /** Working directory inside (default: the writable directory). */
  cwd?: string;
  /** Bytes for stdin (closed after). */
  stdin?: string | Buffer;
  /** Kill the command's process group after this long (default 60 s; 0: never). */
  timeoutMs?: number;
  /** Cap per stream; more is dropped and `truncated` set (default 1 MiB). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  truncated: boolean;
}
