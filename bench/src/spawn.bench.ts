import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { freePort, newId, startProcess, waitFor } from '@agentstack/core';
import { createSandboxManager, findCgroupMounts, ownCgroups } from '@agentstack/sandbox';
import { DEFAULT_CATALOG, type ServerType } from '@agentstack/spawn/catalog';
import { LocalProvider } from '@agentstack/spawn/providers/local';
import { percentile, report, SMOKE } from './lib.js';

const run = promisify(execFile);
const small = DEFAULT_CATALOG.types.small as ServerType;

/**
 * Create-to-SSH-ready: spawn.sh's local provider (a bubblewrap sandbox, first boot writing the keys, dropbear
 * per connection) versus the Docker Engine starting a comparable container (same limits, dropbear as its
 * command, host loopback port) on the same machine, with a private dockerd started here. Both are timed
 * from the create call to the first successful command over SSH with the same OpenSSH client.
 */
export async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench spawn needs root (sandboxes and dockerd)');
  const work = await mkdtemp(join(tmpdir(), 'bench-spawn-'));
  await chmod(work, 0o711);
  const id = `${process.pid}${randomBytes(3).toString('hex')}`;
  const cleanups: (() => Promise<unknown>)[] = [() => rm(work, { recursive: true, force: true })];
  try {
    const key = join(work, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', key]);
    const publicKey = (await readFile(`${key}.pub`, 'utf8')).trim();

    const manager = await createSandboxManager({
      stateDir: join(work, 'sandboxes'),
      cgroupGroup: `agentstack-bench-${id}`,
    });
    cleanups.unshift(() => manager.close());
    const provider = new LocalProvider({ manager, catalog: DEFAULT_CATALOG });

    const docker = await startDockerd(work, id);
    cleanups.unshift(docker.stop);
    await importImage(docker, work, publicKey);

    const ours = async (i: number) => {
      const started = performance.now();
      const created = await provider.create({
        serverId: newId('srv'),
        name: `bench-${i}`,
        type: small,
        image: 'debian-12',
        location: 'local',
        sshKeys: [{ id: 'key_bench', name: 'bench', publicKey, md5: '' }],
        labels: {},
      });
      const ssh = created.server.ssh as { port: number };
      await sshReady(key, ssh.port);
      const ready = performance.now() - started;
      const command = await timeCommand(key, ssh.port);
      const destroyStarted = performance.now();
      await provider.delete(created.server.providerId);
      return { ready, command, destroy: performance.now() - destroyStarted };
    };

    const peer = async () => {
      const port = await freePort();
      const started = performance.now();
      const created = (await docker.call('POST', '/containers/create', {
        Image: 'spawn-bench:latest',
        Cmd: ['/usr/sbin/dropbear', '-F', '-E', '-s', '-p', `127.0.0.1:${port}`, '-r', '/etc/dropbear/key'],
        HostConfig: {
          NetworkMode: 'host',
          Memory: small.memoryGb * 1024 ** 3,
          NanoCpus: small.cores * 1e9,
          PidsLimit: 256 * small.cores,
        },
      })) as { Id: string };
      await docker.call('POST', `/containers/${created.Id}/start`);
      await sshReady(key, port);
      const ready = performance.now() - started;
      const command = await timeCommand(key, port);
      const destroyStarted = performance.now();
      await docker.call('DELETE', `/containers/${created.Id}?force=1`);
      return { ready, command, destroy: performance.now() - destroyStarted };
    };

    // One of each first, untimed (page cache, JIT, image layers).
    await ours(0);
    await peer();
    const iterations = SMOKE ? 2 : 12;
    type Run = { ready: number; command: number; destroy: number };
    const results = { ours: [] as Run[], peer: [] as Run[] };
    for (let i = 1; i <= iterations; i++) {
      // Alternate who goes first, so neither always runs on a quieter machine.
      if (i % 2) {
        results.ours.push(await ours(i));
        results.peer.push(await peer());
      } else {
        results.peer.push(await peer());
        results.ours.push(await ours(i));
      }
    }
    const p = (xs: number[], q: number) => percentile(xs, q);
    const ready = { ours: results.ours.map((r) => r.ready), peer: results.peer.map((r) => r.ready) };
    const destroy = { ours: results.ours.map((r) => r.destroy), peer: results.peer.map((r) => r.destroy) };
    const command = { ours: results.ours.map((r) => r.command), peer: results.peer.map((r) => r.command) };
    await report({
      name: 'spawn',
      ours: 'spawn.sh local provider (bubblewrap sandbox, dropbear per connection)',
      peer: 'Docker Engine (container running dropbear, host network)',
      figures: [
        {
          label: 'create → SSH ready, p50',
          ours: p(ready.ours, 50),
          peer: p(ready.peer, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'create → SSH ready, p90',
          ours: p(ready.ours, 90),
          peer: p(ready.peer, 90),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'one SSH command on a ready server, p50',
          ours: p(command.ours, 50),
          peer: p(command.peer, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'destroy, p50',
          ours: p(destroy.ours, 50),
          peer: p(destroy.peer, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
      ],
      notes: [
        `${iterations} servers each, ${small.cores} CPUs / ${small.memoryGb} GB / ${256 * small.cores} pids limits on both sides.`,
        'Ours includes first boot (authorized_keys written, an ed25519 host key generated inside); the container image has both baked in.',
        `create → SSH ready ratio (peer/ours, > 1 means ours is faster): ${(p(ready.peer, 50) / p(ready.ours, 50)).toFixed(2)}`,
      ],
    });
  } finally {
    for (const cleanup of cleanups) await cleanup().catch((err) => console.error('cleanup:', err));
  }
}

/** One `ssh … true` on a server that is ready (connection, key exchange, login, command). */
async function timeCommand(key: string, port: number): Promise<number> {
  const started = performance.now();
  await sshReady(key, port);
  return performance.now() - started;
}

/** Retries `ssh … true` until it succeeds. */
async function sshReady(key: string, port: number): Promise<void> {
  await waitFor(
    async () => {
      try {
        await run(
          'ssh',
          [
            '-i',
            key,
            '-p',
            String(port),
            '-o',
            'StrictHostKeyChecking=no',
            '-o',
            'UserKnownHostsFile=/dev/null',
            '-o',
            'BatchMode=yes',
            '-o',
            'ConnectTimeout=5',
            '-o',
            'LogLevel=ERROR',
            'root@127.0.0.1',
            'true',
          ],
          { timeout: 10_000 },
        );
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, intervalMs: 10, what: `SSH on port ${port}` },
  );
}

interface Dockerd {
  call(method: string, path: string, body?: unknown, raw?: Buffer): Promise<unknown>;
  stop(): Promise<void>;
}

/**
 * A private dockerd: its own mount namespace (`unshare -m --propagation private`), data and exec roots,
 * socket, containerd namespace and cgroup parent, no bridge and no iptables changes; stopped by pid.
 */
async function startDockerd(work: string, id: string): Promise<Dockerd> {
  if (!existsSync('/usr/sbin/dockerd')) throw new Error('dockerd not found: apt-get install docker.io');
  const socket = join(work, 'docker.sock');
  const cgroupParent = `agentstack-bench-docker-${id}`;
  const proc = startProcess('unshare', [
    '-m',
    '--propagation',
    'private',
    '/usr/sbin/dockerd',
    '--data-root',
    join(work, 'docker-data'),
    '--exec-root',
    join(work, 'docker-exec'),
    '--pidfile',
    join(work, 'docker.pid'),
    '-H',
    `unix://${socket}`,
    '--bridge=none',
    '--iptables=false',
    '--ip6tables=false',
    `--cgroup-parent=${cgroupParent}`,
    '--containerd-namespace',
    `bench-${id}`,
    '--containerd-plugins-namespace',
    `bench-${id}-plugins`,
  ]);
  const call = (method: string, path: string, body?: unknown, raw?: Buffer) =>
    new Promise<unknown>((resolve, reject) => {
      const payload = raw ?? (body !== undefined ? Buffer.from(JSON.stringify(body)) : undefined);
      const req = request(
        {
          socketPath: socket,
          method,
          path: `/v1.41${path}`,
          headers: payload
            ? { 'content-type': raw ? 'application/x-tar' : 'application/json', 'content-length': payload.length }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if ((res.statusCode ?? 500) >= 400)
              reject(new Error(`docker ${method} ${path}: ${res.statusCode} ${text}`));
            else resolve(text && res.headers['content-type']?.includes('json') && !raw ? JSON.parse(text) : text);
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  try {
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`dockerd exited: ${proc.output().slice(-2000)}`);
        return existsSync(socket) && (await call('GET', '/_ping')) === 'OK';
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'dockerd' },
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    call,
    async stop() {
      await proc.stop(15_000);
      // The containers' cgroups (cgroupfs driver) are left empty under the parent, which dockerd puts below
      // its own cgroup in each hierarchy: remove them by name.
      const own = ownCgroups();
      for (const [controller, mount] of findCgroupMounts()) {
        const inside = relative(mount.root, own.get(controller) ?? '/');
        const base = inside.startsWith('..') ? mount.mountPoint : join(mount.mountPoint, inside);
        await removeTree(join(base, cgroupParent));
      }
      // …and in the cgroup v2 hierarchy, when one is mounted beside v1.
      const unified = (await readFile('/proc/self/mountinfo', 'utf8'))
        .split('\n')
        .find((line) => line.includes(' - cgroup2 '))
        ?.split(' ')[4];
      const ownV2 = /^0::(.*)$/m.exec(await readFile('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
      if (unified) await removeTree(join(unified, ownV2, cgroupParent));
    },
  };
}

async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await removeTree(join(dir, entry.name));
  }
  await rmdir(dir).catch(() => undefined);
}

/**
 * No registry here: the image is imported from a rootfs of the host's own binaries (dropbear, bash and
 * their libraries), with the key and a host key baked in.
 */
async function importImage(docker: Dockerd, work: string, publicKey: string): Promise<void> {
  const root = join(work, 'rootfs');
  const binaries = [
    '/usr/sbin/dropbear',
    '/bin/bash',
    '/bin/sh',
    '/usr/bin/id',
    '/bin/cat',
    '/bin/true',
    '/usr/bin/env',
  ];
  const files = new Set<string>();
  for (const binary of binaries) {
    files.add(binary);
    const ldd = execFileSync('ldd', [binary], { encoding: 'utf8' });
    for (const match of ldd.matchAll(/(\/[^\s]+)/g)) files.add(match[1] as string);
  }
  for (const file of files) {
    await mkdir(join(root, dirname(file)), { recursive: true });
    await copyFile(file, join(root, file));
    await chmod(join(root, file), 0o755);
  }
  for (const dir of ['etc/dropbear', 'root/.ssh', 'tmp', 'dev', 'proc', 'sys'])
    await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
  await writeFile(join(root, 'etc/shells'), '/bin/bash\n/bin/sh\n');
  await writeFile(join(root, 'root/.ssh/authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
  await chmod(join(root, 'root'), 0o700);
  await chmod(join(root, 'root/.ssh'), 0o700);
  execFileSync('dropbearkey', ['-t', 'ed25519', '-f', join(root, 'etc/dropbear/key')], { stdio: 'ignore' });
  execFileSync('tar', ['-C', root, '-cf', join(work, 'rootfs.tar'), '.']);
  await docker.call(
    'POST',
    '/images/create?fromSrc=-&repo=spawn-bench&tag=latest',
    undefined,
    await readFile(join(work, 'rootfs.tar')),
  );
}
