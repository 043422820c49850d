import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { type Devnet, startDevnet } from '@agentstack/chain';
import { newId } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestOverSocket } from '../../src/orchestrator/health.js';
import type { TenantOrchestrator } from '../../src/orchestrator/types.js';

/**
 * The isolation guarantees of `TenantOrchestrator` (see types.ts), checked against a real backend by trying
 * to break them from inside one tenant. Every backend runs the same suite:
 *
 *   describeIsolation('sandbox', () => createSandboxTarget());
 *
 * The target starts its own stand-ins for the two endpoints tenants are given (LLM proxy, platform API)
 * and reports what of a tenant is left on the host; the suite starts the host services a tenant must not
 * reach (PostgreSQL, an anvil devnet, a facilitator-like HTTP server on every interface).
 */
export interface IsolationTarget {
  orchestrator: TenantOrchestrator;
  /** Requests the stand-in LLM proxy and platform API have answered so far. */
  endpointHits(): { llm: number; platform: number };
  /**
   * Called before `destroy`; the function it returns lists what of the tenant is still on the host
   * afterwards (processes, cgroups, containers, sockets, files, uid reservations…), empty when nothing.
   */
  traces(tenantId: string): Promise<() => Promise<string[]>>;
  /** Host paths of a tenant (its workspace, socket directories…) another tenant will try to reach. */
  hostPaths(tenantId: string): Promise<string[]>;
  cleanup(): Promise<void>;
}

const apiKey = (tenant: string) => `sk_test_${tenant.slice(4)}${'x'.repeat(16)}`;

/** Host IPv4 addresses other than loopback (the tenant must not reach the host through them either). */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => a?.address as string);
}

/** Resolves true when a TCP connection from the host succeeds (the positive control of every probe). */
function reachableFromHost(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 3_000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** `name=open|closed` per probe: a plain TCP connect from inside, 3 s at most each. */
const PROBE = `probe() { if timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then echo "$1=open"; else echo "$1=closed"; fi; }`;

/**
 * `req NAME HOST PORT METHOD TARGET [HEADER]`: one HTTP request over bash's /dev/tcp (no curl needed inside),
 * printing `NAME=<status> <"code":"…" of an error envelope>`; `000` when the connection failed.
 * With the egress proxy as HOST:PORT and an absolute URL as TARGET it is a proxied request.
 */
export const REQ = String.raw`req() {
  local out status
  out=$(timeout 20 bash -c '
    exec 3<>/dev/tcp/$1/$2 || exit 1
    { printf "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" "$3" "$4"; [ -z "$5" ] || printf "%s\r\n" "$5"; printf "\r\n"; } >&3
    if [ "$3" = CONNECT ]; then head -c 4096 <&3; else cat <&3; fi' _ "$2" "$3" "$4" "$5" "$6" 2>/dev/null | tr -d "\r")
  status=$(printf "%s\n" "$out" | head -1 | cut -d" " -f2); [ -n "$status" ] || status=000
  echo "$1=$status $(printf "%s" "$out" | grep -o '"code":"[a-z_]*"' | head -1) $(printf "%s" "$out" | grep -i -o "^x-egress-refused: [a-z_]*" | head -1)" | sed "s/ *$//; s/  */ /g"
}`;

/** `unixreq NAME PATH`: GET /health over a unix socket with perl (in every Debian), `NAME=<body>` or `NAME=closed`. */
export const UNIXREQ = `unixreq() { perl -MIO::Socket::UNIX -e '$c = IO::Socket::UNIX->new(Peer => $ARGV[1]) or do { print "$ARGV[0]=closed\\n"; exit }; print $c "GET /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n"; local $/; $r = <$c>; $r =~ s/^.*\\r\\n\\r\\n//s; print "$ARGV[0]=$r\\n"' "$1" "$2"; }`;

const lines = (text: string) =>
  Object.fromEntries(
    text
      .trim()
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

export function describeIsolation(name: string, makeTarget: () => Promise<IsolationTarget>): void {
  describe(`tenant isolation: ${name}`, () => {
    let target: IsolationTarget;
    let orchestrator: TenantOrchestrator;
    let devnet: Devnet;
    let facilitator: Server;
    let facilitatorPort: number;
    let facilitatorHits = 0;
    let database: { host: string; port: number };
    const a = newId('ten');
    const b = newId('ten');

    const sh = (tenant: string, script: string, timeoutMs = 60_000) =>
      orchestrator.exec(tenant, ['/bin/bash', '-c', script], { timeoutMs });
    const healthy = async (tenant: string) => (await orchestrator.status(tenant)).healthy;

    beforeAll(async () => {
      target = await makeTarget();
      orchestrator = target.orchestrator;
      // Host services a tenant must never reach, each first shown reachable from the host.
      const url = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres');
      database = { host: url.hostname, port: Number(url.port || 5432) };
      devnet = await startDevnet({ host: '0.0.0.0' });
      facilitator = createServer((req, res) => {
        facilitatorHits++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ kinds: [{ x402Version: 2, scheme: 'exact', network: 'eip155:8453' }], url: req.url }));
      });
      facilitator.listen(0, '0.0.0.0');
      await once(facilitator, 'listening');
      facilitatorPort = (facilitator.address() as AddressInfo).port;
      await Promise.all([
        orchestrator.create({ tenantId: a, apiKey: apiKey(a) }),
        orchestrator.create({ tenantId: b, apiKey: apiKey(b) }),
      ]);
      await Promise.all([orchestrator.start(a), orchestrator.start(b)]);
    }, 180_000);

    afterAll(async () => {
      for (const tenant of [a, b]) await orchestrator?.destroy(tenant).catch(() => undefined);
      await devnet?.stop();
      facilitator?.close();
      await target?.cleanup();
    }, 120_000);

    it('starts each runtime healthy; it answers through its own socket with its own token only', async () => {
      for (const tenant of [a, b]) {
        expect(await orchestrator.status(tenant)).toMatchObject({ state: 'running', healthy: true });
        const { socketPath } = await orchestrator.runtimeEndpoint(tenant);
        const health = await requestOverSocket(socketPath, '/health');
        expect(health.status).toBe(200);
        expect(JSON.parse(health.body).tenantId).toBe(tenant);
      }
      const endpointA = await orchestrator.runtimeEndpoint(a);
      const endpointB = await orchestrator.runtimeEndpoint(b);
      expect(endpointA.token).not.toBe(endpointB.token);
      const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
      expect((await requestOverSocket(endpointA.socketPath, '/v1/tools', auth(endpointA.token))).status).toBe(200);
      expect((await requestOverSocket(endpointA.socketPath, '/v1/tools', auth(endpointB.token))).status).toBe(401);
    });

    it('runs commands as an unprivileged user with no capabilities, no_new_privs and seccomp', async () => {
      const result = await sh(a, 'id -u; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status');
      const [uid, ...status] = result.stdout.trim().split('\n');
      expect(Number(uid)).toBeGreaterThan(0);
      expect(status).toEqual([
        'CapEff:\t0000000000000000',
        'CapBnd:\t0000000000000000',
        'NoNewPrivs:\t1',
        'Seccomp:\t2',
      ]);
    });

    it("cannot read or write another tenant's workspace, even knowing its host paths", async () => {
      await orchestrator.writeWorkspaceFile(b, 'secret/b.txt', new TextEncoder().encode('only-b-may-read\n'));
      expect((await sh(b, 'cat secret/b.txt')).stdout).toBe('only-b-may-read\n');
      const paths = await target.hostPaths(b);
      expect(paths.length).toBeGreaterThan(0);
      const attempts = paths
        .map(
          (p, i) =>
            `cat ${p}/secret/b.txt 2>/dev/null && echo "read${i}=yes"; ls ${p} 2>/dev/null && echo "list${i}=yes"; echo x > ${p}/from-a 2>/dev/null && echo "write${i}=yes"`,
        )
        .join('; ');
      const result = await sh(
        a,
        `${attempts}; grep -rl only-b-may-read / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr --exclude-dir=dev 2>/dev/null | head -3; echo done`,
      );
      expect(result.stdout.trim()).toBe('done');
      // And B's workspace is as B left it.
      expect((await sh(b, 'ls -A; cat secret/b.txt')).stdout).toBe('secret\nonly-b-may-read\n');
    });

    it("cannot reach another tenant's runtime: its socket, its loopback ports, its abstract sockets", async () => {
      // B serves on a loopback port and an abstract unix socket inside its own namespace.
      const serve = (listen: string) =>
        `nohup perl -MIO::Socket::INET -MIO::Socket::UNIX -e '$s = ${listen} or die "$!"; while ($c = $s->accept) { print $c "b-secret"; close $c }' >/dev/null 2>&1 &`;
      await sh(
        b,
        [
          serve('IO::Socket::INET->new(LocalAddr => "127.0.0.1:4999", Listen => 5, ReuseAddr => 1)'),
          serve('IO::Socket::UNIX->new(Local => "\\0agentsquads-b", Listen => 5)'),
          'sleep 0.5',
        ].join('\n'),
      );
      const abstract = `perl -MIO::Socket::UNIX -e '$c = IO::Socket::UNIX->new(Peer => "\\0agentsquads-b"); print "abstract=", ($c ? <$c> : "$!"), "\\n"'`;
      expect(lines((await sh(b, `${PROBE}; probe own 127.0.0.1 4999; ${abstract}`)).stdout)).toEqual({
        own: 'open',
        abstract: 'b-secret',
      });
      const { socketPath } = await orchestrator.runtimeEndpoint(b);
      const result = await sh(
        a,
        [
          PROBE,
          UNIXREQ,
          'probe port 127.0.0.1 4999',
          abstract,
          `unixreq socket ${socketPath} | cut -c1-13`,
          // Its own runtime socket leads to its own runtime.
          'unixreq own /run/agentsquads/runtime.sock | grep -o \'"tenantId":"[^"]*"\' | sed "s/^/own=/"',
        ].join('\n'),
      );
      expect(lines(result.stdout)).toEqual({
        port: 'closed',
        abstract: 'Connection refused',
        socket: 'closed',
        own: `"tenantId":"${a}"`,
      });
    });

    it('reaches only the two endpoints it is given: no database, devnet, facilitator or host address', async () => {
      const devnetPort = Number(new URL(devnet.rpcUrl).port);
      const hosts = ['127.0.0.1', ...hostAddresses()];
      // The positive control: every one of them answers from the host.
      expect(await reachableFromHost(database.host, database.port)).toBe(true);
      for (const host of hosts) {
        expect(await reachableFromHost(host, devnetPort)).toBe(true);
        expect(await reachableFromHost(host, facilitatorPort)).toBe(true);
      }
      const before = { facilitator: facilitatorHits, endpoints: target.endpointHits() };
      const probes = [
        `probe db ${database.host} ${database.port}`,
        'probe pg5432 127.0.0.1 5432',
        ...hosts.flatMap((h, i) => [
          `probe devnet${i} ${h} ${devnetPort}`,
          `probe facilitator${i} ${h} ${facilitatorPort}`,
        ]),
      ];
      const result = await sh(
        a,
        [
          PROBE,
          ...probes,
          'ls /var/run/postgresql /run/postgresql 2>/dev/null | grep -q . && echo pgsocket=visible || echo pgsocket=none',
          REQ,
          `req rpc 127.0.0.1 ${devnetPort} GET /`,
          'req llm 127.0.0.1 8090 GET /v1/models',
          'req platform 127.0.0.1 3001 GET /api/health',
        ].join('\n'),
        120_000,
      );
      const seen = lines(result.stdout);
      for (const probe of probes) expect(seen[probe.split(' ')[1] as string], probe).toBe('closed');
      expect(seen).toMatchObject({ pgsocket: 'none', rpc: '000', llm: '200', platform: '200' });
      expect(facilitatorHits).toBe(before.facilitator);
      const after = target.endpointHits();
      expect(after.llm).toBe(before.endpoints.llm + 1);
      expect(after.platform).toBe(before.endpoints.platform + 1);
    });

    it('the egress proxy refuses private and host destinations and tries public ones', async () => {
      const devnetPort = Number(new URL(devnet.rpcUrl).port);
      const refused = [
        `http://127.0.0.1:${devnetPort}/`,
        `http://localhost:${facilitatorPort}/`,
        `http://[::1]:${facilitatorPort}/`,
        `http://${database.host}:${database.port}/`,
        ...hostAddresses().map((h) => `http://${h}:${facilitatorPort}/`),
        'http://10.0.0.1/',
        'http://172.16.0.1/',
        'http://192.168.1.1/',
        'http://169.254.169.254/latest/meta-data/',
        'http://100.64.0.1/',
        'http://0.0.0.0/',
      ];
      // Every request goes to the tenant's egress proxy (what HTTP_PROXY names inside).
      const proxy = '127.0.0.1 3128';
      const tries = [REQ, ...refused.map((url, i) => `req r${i} ${proxy} GET ${url}`)];
      // CONNECT (what HTTPS uses) to the database is refused the same way.
      tries.push(`req connect ${proxy} CONNECT ${database.host}:${database.port}`);
      // A public address is tried (there is no internet here: any answer but the proxy's refusal will do).
      tries.push(`req public ${proxy} GET http://1.1.1.1/`);
      const result = await sh(a, tries.join('\n'), 180_000);
      const seen = lines(result.stdout);
      refused.forEach((url, i) => {
        // Loopback and private ranges are not public; the host's own addresses are denied even when public.
        expect(seen[`r${i}`], `${url}\n${result.stdout}\n${result.stderr}`).toMatch(
          /^403 "code":"egress_(not_public|denied)" x-egress-refused: (not_public|denied)$/i,
        );
      });
      expect(seen.connect).toMatch(/^403 "code":"egress_(not_public|denied)" x-egress-refused: /i);
      // The proxy answers every request: the upstream's status, or 502/504 when the connection failed.
      expect(seen.public).toMatch(/^\d{3}/);
      expect(seen.public).not.toMatch(/^(403|000)|x-egress-refused/i);
      expect(facilitatorHits).toBe(0);
    }, 240_000);

    it('cannot see host processes', async () => {
      const result = await sh(a, 'ps -e -o pid=,args= | wc -l; ps -e -o args=; ls /proc | grep -c "^[0-9]"');
      const [count, ...rest] = result.stdout.trim().split('\n');
      expect(Number(count)).toBeLessThan(20);
      const listing = rest.join('\n');
      expect(listing).not.toMatch(/vitest|postgres|anvil|dockerd|sshd/);
      expect(listing).toContain('agentsquads-runtime');
      const own = await sh(
        a,
        `cat /proc/${process.pid}/cmdline 2>/dev/null | tr "\\0" " "; echo; kill -0 ${devnet.pid} 2>&1 || echo no-such`,
      );
      expect(own.stdout).not.toContain('vitest');
      expect(own.stdout).toContain('no-such');
    });

    it('refuses ptrace, mount and new user namespaces', async () => {
      // x86-64 / arm64 syscall numbers of ptrace; PTRACE_ATTACH (16) to the runtime's own pid.
      const ptrace = process.arch === 'arm64' ? 117 : 101;
      const result = await sh(
        a,
        [
          'pid=$(pgrep -f agentsquads-runtime.mjs | head -1)',
          `echo "ptrace=$(perl -MErrno -e '$r = syscall(${ptrace}, 16, $ARGV[0], 0, 0); print $r == -1 ? ($!{EPERM} ? "EPERM" : $!+0) : "ok"' "$pid")"`,
          'unshare -U true 2>/dev/null && echo userns=ok || echo userns=refused',
          'unshare -Ur true 2>/dev/null && echo userns-root=ok || echo userns-root=refused',
          'mount -t tmpfs none /workspace 2>/dev/null && echo mount=ok || echo mount=refused',
          'umount /workspace 2>/dev/null && echo umount=ok || echo umount=refused',
        ].join('\n'),
      );
      expect(lines(result.stdout)).toEqual({
        ptrace: 'EPERM',
        userns: 'refused',
        'userns-root': 'refused',
        mount: 'refused',
        umount: 'refused',
      });
    });

    it('kills a memory bomb at the limit without harming the tenant runtime or any other tenant', async () => {
      const result = await orchestrator.exec(a, ['perl', '-e', 'my @a; while (1) { push @a, "x" x (1 << 20) }'], {
        timeoutMs: 90_000,
      });
      expect(result.timedOut).toBe(false);
      expect(result.exitCode === null || result.exitCode === 137).toBe(true);
      expect(await healthy(b)).toBe(true);
      expect(await healthy(a)).toBe(true);
      expect((await sh(a, 'echo alive')).stdout).toBe('alive\n');
    }, 120_000);

    it('stops a fork bomb at the pids limit', async () => {
      const result = await sh(
        a,
        `perl -e 'my ($n, @kids) = (0); while ($n < 5000) { my $p = fork(); if (!defined $p) { print "refused=$n $!\\n"; last } if ($p == 0) { sleep 60; exit } push @kids, $p; $n++ } print "forked=$n\\n"; kill 9, @kids'`,
        90_000,
      );
      const seen = lines(result.stdout);
      expect(seen.refused, result.stdout + result.stderr).toMatch(/^\d+ Resource temporarily unavailable$/);
      expect(Number(seen.refused?.split(' ')[0])).toBeLessThan(256);
      expect(await healthy(b)).toBe(true);
      expect(await healthy(a)).toBe(true);
    }, 120_000);

    it('confines workspace writes: no .., no absolute paths, no symlink escapes; files belong to the tenant', async () => {
      await sh(
        a,
        'ln -sfn /etc link-out; ln -sfn /run/agentsquads link-run; mkdir -p real; ln -sfn /etc/hostname real/file',
      );
      const write = (path: string) => orchestrator.writeWorkspaceFile(a, path, new TextEncoder().encode('data\n'));
      for (const bad of [
        '../x',
        '/etc/passwd',
        'a/../../x',
        '',
        '.',
        'link-out/passwd',
        'link-run/evil',
        'real/file',
      ]) {
        await expect(write(bad), bad).rejects.toMatchObject({ status: 400 });
      }
      await write('nested/dir/ok.txt');
      const check = await sh(a, 'stat -c "%u %U" nested/dir/ok.txt; cat nested/dir/ok.txt; id -u');
      const [owner, content, uid] = check.stdout.trim().split('\n');
      expect(owner?.split(' ')[0]).toBe(uid);
      expect(content).toBe('data');
      // The same while stopped (host side): links are refused there too.
      await orchestrator.stop(a);
      for (const bad of ['link-out/passwd', 'real/file', 'link-run/evil'])
        await expect(write(bad), bad).rejects.toMatchObject({ status: 400 });
      await write('nested/while-stopped.txt');
      await orchestrator.start(a);
      expect((await sh(a, 'stat -c %u nested/while-stopped.txt; id -u')).stdout.trim().split('\n')).toHaveLength(2);
      const [fileUid, ownUid] = (await sh(a, 'stat -c %u nested/while-stopped.txt; id -u')).stdout.trim().split('\n');
      expect(fileUid).toBe(ownUid);
      expect(readFileSync('/etc/hostname', 'utf8')).not.toBe('data\n');
    }, 120_000);

    it('destroy leaves no process, mount, cgroup, socket or file behind, and is idempotent', async () => {
      const tenant = newId('ten');
      const mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8');
      await orchestrator.create({ tenantId: tenant, apiKey: apiKey(tenant) });
      await orchestrator.start(tenant);
      await sh(
        tenant,
        'nohup sleep 1000 >/dev/null 2>&1 & (setsid sleep 999 &) ; echo data > kept.txt; tmux new-session -d -s bg sleep 900',
      );
      const remaining = await target.traces(tenant);
      await orchestrator.destroy(tenant);
      expect(await remaining()).toEqual([]);
      const mountsAfter = readFileSync('/proc/self/mountinfo', 'utf8');
      // Only what this tenant added must be gone: on a shared machine other sandboxes and containers mount
      // meanwhile (the target's `traces` checks the backend's own mounts, e.g. a container's overlay).
      const added = mountsAfter.split('\n').filter((line) => !mountsBefore.includes(line));
      expect(added.filter((line) => line.includes(tenant))).toEqual([]);
      expect(mountsAfter).not.toContain(tenant);
      expect(await orchestrator.status(tenant)).toMatchObject({ state: 'missing' });
      await orchestrator.destroy(tenant);
      expect(await remaining()).toEqual([]);
      // The other tenants did not notice.
      expect(await healthy(a)).toBe(true);
      expect(await healthy(b)).toBe(true);
    }, 120_000);
  });
}
