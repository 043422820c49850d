import { once } from 'node:events';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerOrchestrator, healthy } from '@agentsquads/api/src/orchestrator/docker.js';
import { ensureTenantImage } from '@agentsquads/api/src/orchestrator/docker-image.js';
import { TenantGateway } from '@agentsquads/api/src/orchestrator/gateway.js';
import { newId } from '@agentstack/core';
import Docker from 'dockerode';
import { percentile, report, SMOKE } from './lib.js';

const SEED_HEALTHY_MS = 10_000; // P1-04: `docker run` boots, health check 200 within 10 s
const SEED_TENANTS = 50; // the seed's capacity target for one machine
const MiB = 1024 * 1024;

/**
 * Tenant runtimes: create → healthy (`GET /health` 200 over the runtime's socket) with the Docker backend
 * (own uid, read-only root, no capabilities, seccomp, no network, limits, gateway sockets) against the
 * Docker Engine running the same image as a plain container (no orchestrator, no hardening, a bind for the
 * socket) on the same machine; then a fleet of idle tenants: memory per tenant (the container's cgroup, and
 * what the machine's available memory dropped by per tenant, shim included) and how many would fit.
 */
export async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench tenants needs root (tenant uids, dockerd)');
  const docker = new Docker();
  const image = await ensureTenantImage({ docker });
  const work = await mkdtemp(join(tmpdir(), 'bench-tenants-'));
  const id = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const label = { 'org.agentsquads.bench': id };
  const stub = createServer((_req, res) => res.end('{}'));
  stub.listen(0, '127.0.0.1');
  await once(stub, 'listening');
  const target = { host: '127.0.0.1', port: (stub.address() as AddressInfo).port };
  const gateway = new TenantGateway({
    rootDir: join(work, 'gateways'),
    llmProxy: target,
    platformApi: target,
    log: { info() {}, warn() {} },
  });
  const orchestrator = new DockerOrchestrator({
    tenantDataDir: join(work, 'tenants'),
    gateway,
    docker,
    image,
    labels: label,
    namePrefix: `agentsquads-bench-${id}-`,
    log: { info() {}, warn() {} },
  });
  try {
    const ours = async () => {
      const tenantId = newId('ten');
      const t0 = performance.now();
      await orchestrator.create({ tenantId, apiKey: 'sk_bench_0123456789abcdef' });
      await orchestrator.start(tenantId);
      return { tenantId, ms: performance.now() - t0 };
    };
    const peer = async () => {
      const dir = await mkdtemp(join(work, 'peer-'));
      await chown(dir, 65534, 65534); // the image's default user
      const t0 = performance.now();
      const container = await docker.createContainer({
        Image: image,
        Labels: label,
        Env: [
          'TENANT_ID=ten_bench',
          'PLATFORM_API_URL=http://127.0.0.1:3001',
          'PLATFORM_API_KEY=sk_bench',
          'LLM_PROXY_URL=http://127.0.0.1:8090/v1',
          'RUNTIME_AUTH_TOKEN=0123456789abcdef0123',
        ],
        HostConfig: { NetworkMode: 'none', Binds: [`${dir}:/run/agentsquads`, `${dir}:/workspace`] },
      });
      await container.start();
      while (!(await healthy(join(dir, 'runtime.sock'), 1_000))) await sleep(50);
      return { container, ms: performance.now() - t0 };
    };

    // One of each first, untimed (page cache, image layers).
    await orchestrator.destroy((await ours()).tenantId);
    await (await peer()).container.remove({ force: true });

    const iterations = SMOKE ? 2 : 15;
    const ready = { ours: [] as number[], peer: [] as number[] };
    const destroy = { ours: [] as number[], peer: [] as number[] };
    for (let i = 0; i < iterations; i++) {
      const runOurs = async () => {
        const { tenantId, ms } = await ours();
        ready.ours.push(ms);
        const t0 = performance.now();
        await orchestrator.destroy(tenantId);
        destroy.ours.push(performance.now() - t0);
      };
      const runPeer = async () => {
        const { container, ms } = await peer();
        ready.peer.push(ms);
        const t0 = performance.now();
        await container.remove({ force: true });
        destroy.peer.push(performance.now() - t0);
      };
      // Alternate who goes first, so neither always runs on a quieter machine.
      if (i % 2) await runOurs().then(runPeer);
      else await runPeer().then(runOurs);
    }

    // A fleet of idle tenants, started 4 at a time; then a few plain containers for comparison.
    const fleetSize = SMOKE ? 3 : 20;
    const available = await memAvailable();
    const fleet: string[] = [];
    for (let i = 0; i < fleetSize; i += 4) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(4, fleetSize - i) }, () => ours().then((r) => r.tenantId)),
      );
      fleet.push(...batch);
    }
    await sleep(SMOKE ? 2_000 : 10_000); // let start-up garbage settle
    const oursMemory = await Promise.all(
      fleet.map(async (tenantId) => containerMemory(docker, (await orchestrator.inspect(tenantId))!.Id)),
    );
    const peers = await Promise.all(Array.from({ length: SMOKE ? 2 : 5 }, () => peer().then((p) => p.container)));
    await sleep(SMOKE ? 2_000 : 10_000);
    const peerMemory = await Promise.all(peers.map((c) => containerMemory(docker, c.id)));
    await Promise.all(peers.map((c) => c.remove({ force: true })));
    await Promise.all(fleet.map((tenantId) => orchestrator.destroy(tenantId)));

    const workingSet = {
      ours: median(oursMemory.map((m) => m.workingSet)),
      peer: median(peerMemory.map((m) => m.workingSet)),
    };
    const rss = { ours: median(oursMemory.map((m) => m.rss)), peer: median(peerMemory.map((m) => m.rss)) };
    const shim = { ours: median(oursMemory.map((m) => m.shimPss)), peer: median(peerMemory.map((m) => m.shimPss)) };
    // What one more idle tenant costs the machine: its cgroup plus its containerd shim (proportional share).
    const perTenant = workingSet.ours + shim.ours;
    const fitIdle = Math.floor(available / perTenant);
    const fitLimit = Math.floor(available / (512 * MiB));
    const p = percentile;
    await report({
      name: 'tenants',
      ours: 'Docker backend (own uid, read-only root, no caps, seccomp, no network, limits, gateway sockets)',
      peer: 'Docker Engine, the same image as a plain container',
      figures: [
        {
          label: 'create → healthy, p50',
          ours: p(ready.ours, 50),
          peer: p(ready.peer, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'create → healthy, p99',
          ours: p(ready.ours, 99),
          peer: p(ready.peer, 99),
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
        {
          label: 'idle memory per tenant (cgroup, working set)',
          ours: workingSet.ours / MiB,
          peer: workingSet.peer / MiB,
          unit: 'MiB',
          higherIsBetter: false,
        },
        {
          label: 'idle memory per tenant (cgroup, anonymous RSS)',
          ours: rss.ours / MiB,
          peer: rss.peer / MiB,
          unit: 'MiB',
          higherIsBetter: false,
        },
      ],
      notes: [
        `Seed targets: healthy within ${SEED_HEALTHY_MS / 1000} s — Docker backend p99 ${(p(ready.ours, 99) / 1000).toFixed(2)} s ` +
          `(${p(ready.ours, 99) < SEED_HEALTHY_MS ? 'met' : 'missed'}; ${iterations} tenants one after another).`,
        `${fleetSize} idle tenants running at once: ${(perTenant / MiB).toFixed(1)} MiB each (cgroup working set ` +
          `${(workingSet.ours / MiB).toFixed(1)} MiB + containerd shim ${(shim.ours / MiB).toFixed(1)} MiB PSS); ` +
          `${(available / MiB / 1024).toFixed(1)} GiB available → ≈ ${fitIdle} idle tenants fit on this machine ` +
          `(seed: ${SEED_TENANTS}, ${fitIdle >= SEED_TENANTS ? 'met' : 'missed'}); ${fitLimit} if every tenant used its whole 512 MiB limit.`,
      ],
    });
  } finally {
    await orchestrator.close().catch(() => undefined);
    const mine = await docker.listContainers({ all: true, filters: { label: [`org.agentsquads.bench=${id}`] } });
    for (const c of mine) {
      const tenantId = c.Labels['org.agentsquads.tenant'];
      if (tenantId) await orchestrator.destroy(tenantId).catch(() => undefined);
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    }
    await gateway.closeAll();
    stub.close();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * A container's memory: its cgroup's usage minus inactive page cache (what `docker stats` shows), its
 * anonymous RSS, and the proportional set size of the containerd shim that babysits it (a host process per
 * container, outside the cgroup).
 */
async function containerMemory(
  docker: Docker,
  containerId: string,
): Promise<{ workingSet: number; rss: number; shimPss: number }> {
  const container = docker.getContainer(containerId);
  const stats = (await container.stats({ stream: false })) as {
    memory_stats: { usage?: number; stats?: Record<string, number> };
  };
  const usage = stats.memory_stats.usage ?? 0;
  const s = stats.memory_stats.stats ?? {};
  const inactiveFile = s.total_inactive_file ?? s.inactive_file ?? 0;
  const initPid = (await container.inspect()).State.Pid;
  const status = await readFile(`/proc/${initPid}/status`, 'utf8');
  const shimPid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
  const rollup = await readFile(`/proc/${shimPid}/smaps_rollup`, 'utf8').catch(() => '');
  const shimPss = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024;
  return { workingSet: usage - inactiveFile, rss: s.total_rss ?? s.rss ?? s.anon ?? 0, shimPss };
}

async function memAvailable(): Promise<number> {
  const text = await readFile('/proc/meminfo', 'utf8');
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(text)?.[1]) * 1024;
}

const median = (xs: number[]) => percentile(xs, 50);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
