import { once } from 'node:events';
import { chmod, chown, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerOrchestrator, healthy } from '@agentsquads/api/src/orchestrator/docker.js';
import { ensureTenantImage } from '@agentsquads/api/src/orchestrator/docker-image.js';
import { TenantGateway } from '@agentsquads/api/src/orchestrator/gateway.js';
import { SandboxOrchestrator } from '@agentsquads/api/src/orchestrator/sandbox.js';
import type { TenantOrchestrator } from '@agentsquads/api/src/orchestrator/types.js';
import { ensureRuntimeBundle, HANDS_DIR } from '@agentsquads/runtime/bundle';
import { createSecretBox, newId } from '@agentstack/core';
import { createSandboxManager } from '@agentstack/sandbox';
import Docker from 'dockerode';
import { percentile, report, SMOKE } from './lib.js';

const SEED_HEALTHY_MS = 10_000; // P1-04: `docker run` boots, health check 200 within 10 s
const SEED_TENANTS = 50; // the seed's capacity target for one machine
const MiB = 1024 * 1024;
const quiet = { info() {}, warn() {} };

interface Backend {
  name: string;
  orchestrator: TenantOrchestrator;
  uidOf(tenantId: string): Promise<number>;
  /** The tenant's memory cgroup usage (page cache included). */
  cgroupBytes(tenantId: string): Promise<number>;
  /** Host processes that serve the tenant outside its uid (Docker's containerd shim; bubblewrap's monitor). */
  helperPss(tenantId: string): Promise<number>;
}

/**
 * Tenant runtimes, both orchestrator backends on the same machine in the same run:
 * - create → healthy (`GET /health` 200 through the platform's socket) and destroy, one tenant after
 *   another: the sandbox backend (bubblewrap, the default) against the Docker backend; and the Docker
 *   backend against the Docker Engine running the same image as a plain container (no orchestrator, no
 *   hardening) — what our walls cost;
 * - a fleet of idle tenants per backend: memory per tenant (PSS of the tenant's processes + its host-side
 *   helpers; and its memory cgroup) and how many idle tenants fit in the available memory.
 */
export async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench tenants needs root (tenant uids, sandboxes, dockerd)');
  const docker = new Docker();
  const image = await ensureTenantImage({ docker });
  const work = await mkdtemp(join(tmpdir(), 'bench-tenants-'));
  await chmod(work, 0o711);
  const id = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const label = { 'org.agentsquads.bench': id };
  const stub = createServer((_req, res) => res.end('{}'));
  stub.listen(0, '127.0.0.1');
  await once(stub, 'listening');
  const target = { host: '127.0.0.1', port: (stub.address() as AddressInfo).port };
  const gateway = (name: string) =>
    new TenantGateway({ rootDir: join(work, name, 'gateways'), llmProxy: target, platformApi: target, log: quiet });

  const dockerOrchestrator = new DockerOrchestrator({
    tenantDataDir: join(work, 'docker', 'tenants'),
    gateway: gateway('docker'),
    docker,
    image,
    labels: label,
    namePrefix: `agentsquads-bench-${id}-`,
    log: quiet,
  });
  const sandboxes = await createSandboxManager({
    stateDir: join(work, 'sandbox', 'state'),
    cgroupGroup: `agentsquads-bench-${id}`,
  });
  const sandboxOrchestrator = new SandboxOrchestrator({
    sandboxes,
    gateway: gateway('sandbox'),
    paths: {
      tenantDataDir: join(work, 'sandbox', 'tenants'),
      runtimeBundle: await ensureRuntimeBundle(),
      handsDir: HANDS_DIR,
    },
    secrets: createSecretBox(new Uint8Array(32).fill(1), 'tenant-runtime'),
    log: quiet,
  });
  const dockerBackend: Backend = {
    name: 'Docker backend',
    orchestrator: dockerOrchestrator,
    uidOf: async (t) => Number((await dockerOrchestrator.inspect(t))?.Config.Labels['org.agentsquads.uid']),
    cgroupBytes: async (t) => {
      const stats = (await docker.getContainer((await dockerOrchestrator.inspect(t))!.Id).stats({ stream: false })) as {
        memory_stats: { usage?: number };
      };
      return stats.memory_stats.usage ?? 0;
    },
    helperPss: async (t) => {
      const pid = (await dockerOrchestrator.inspect(t))!.State.Pid;
      return pss(await parentOf(pid)); // docker-init's parent: the containerd shim
    },
  };
  const sandboxBackend: Backend = {
    name: 'sandbox backend',
    orchestrator: sandboxOrchestrator,
    uidOf: async (t) => (await sandboxes.list()).find((s) => s.id === t)?.uid as number,
    cgroupBytes: async (t) => (await sandboxes.get(t)!.stats()).memory.usageBytes,
    helperPss: async (t) => ancestorsPss(await sandboxBackend.uidOf(t)),
  };

  try {
    const createHealthy = async (backend: Backend) => {
      const tenantId = newId('ten');
      const t0 = performance.now();
      await backend.orchestrator.create({ tenantId, apiKey: 'sk_bench_0123456789abcdef' });
      await backend.orchestrator.start(tenantId);
      return { tenantId, ms: performance.now() - t0 };
    };
    const plain = async () => {
      const dir = await mkdtemp(join(work, 'plain-'));
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

    // One of each first, untimed (page cache, image layers, the sandbox's runtime copy).
    for (const backend of [sandboxBackend, dockerBackend]) {
      await backend.orchestrator.destroy((await createHealthy(backend)).tenantId);
    }
    await (await plain()).container.remove({ force: true });

    const iterations = SMOKE ? 2 : 15;
    type Samples = { ready: number[]; destroy: number[] };
    const samples: Record<'sandbox' | 'docker' | 'plain', Samples> = {
      sandbox: { ready: [], destroy: [] },
      docker: { ready: [], destroy: [] },
      plain: { ready: [], destroy: [] },
    };
    const once1 = {
      sandbox: () => oneTenant(sandboxBackend, samples.sandbox),
      docker: () => oneTenant(dockerBackend, samples.docker),
      plain: async () => {
        const { container, ms } = await plain();
        samples.plain.ready.push(ms);
        const t0 = performance.now();
        await container.remove({ force: true });
        samples.plain.destroy.push(performance.now() - t0);
      },
    };
    async function oneTenant(backend: Backend, into: Samples) {
      const { tenantId, ms } = await createHealthy(backend);
      into.ready.push(ms);
      const t0 = performance.now();
      await backend.orchestrator.destroy(tenantId);
      into.destroy.push(performance.now() - t0);
    }
    const order: (keyof typeof once1)[] = ['sandbox', 'docker', 'plain'];
    for (let i = 0; i < iterations; i++) {
      // Rotate who goes first, so none always runs on a quieter machine.
      for (let k = 0; k < order.length; k++) await once1[order[(i + k) % order.length] as keyof typeof once1]();
    }

    // A fleet of idle tenants per backend, started 4 at a time, measured after start-up settles.
    const fleetSize = SMOKE ? 3 : 20;
    const available = await memAvailable();
    const fleet = async (backend: Backend) => {
      const tenants: string[] = [];
      for (let i = 0; i < fleetSize; i += 4) {
        const n = Math.min(4, fleetSize - i);
        tenants.push(
          ...(await Promise.all(Array.from({ length: n }, () => createHealthy(backend)))).map((r) => r.tenantId),
        );
      }
      await sleep(SMOKE ? 2_000 : 10_000);
      const perTenant = await Promise.all(
        tenants.map(async (t) => {
          const uid = await backend.uidOf(t);
          return { pss: (await pssOfUid(uid)) + (await backend.helperPss(t)), cgroup: await backend.cgroupBytes(t) };
        }),
      );
      await Promise.all(tenants.map((t) => backend.orchestrator.destroy(t)));
      return { pss: median(perTenant.map((m) => m.pss)), cgroup: median(perTenant.map((m) => m.cgroup)) };
    };
    const memory = { sandbox: await fleet(sandboxBackend), docker: await fleet(dockerBackend) };
    const tenantsFitting = (bytes: number) => Math.floor(available / bytes);
    const p = percentile;
    const figure = (label: string, ours: number, peer: number, unit: string) => ({
      label,
      ours,
      peer,
      unit,
      higherIsBetter: false,
    });
    const verdict = (ms: number) => `${(ms / 1000).toFixed(2)} s (${ms < SEED_HEALTHY_MS ? 'met' : 'missed'})`;
    const capacity = (name: string, m: { pss: number; cgroup: number }) =>
      `${name}: ${(m.pss / MiB).toFixed(1)} MiB per idle tenant (PSS of its processes${name.startsWith('Docker') ? ' + containerd shim' : ''}; cgroup ${(m.cgroup / MiB).toFixed(1)} MiB with page cache) → ≈ ${tenantsFitting(m.pss)} idle tenants fit in the ${(available / MiB / 1024).toFixed(1)} GiB available (seed: ${SEED_TENANTS}, ${tenantsFitting(m.pss) >= SEED_TENANTS ? 'met' : 'missed'})`;
    const notes = [
      `Seed: healthy within ${SEED_HEALTHY_MS / 1000} s — p99 sandbox ${verdict(p(samples.sandbox.ready, 99))}, Docker ${verdict(p(samples.docker.ready, 99))}; ${iterations} tenants each, one after another.`,
      `${fleetSize} idle tenants at once per backend. ${capacity('sandbox backend', memory.sandbox)}; ${capacity('Docker backend', memory.docker)}; ${Math.floor(available / (512 * MiB))} if every tenant used its whole 512 MiB limit.`,
    ];
    await report({
      name: 'tenants',
      ours: 'sandbox backend (bubblewrap, the default)',
      peer: 'Docker backend (container per tenant)',
      figures: [
        figure('create → healthy, p50', p(samples.sandbox.ready, 50), p(samples.docker.ready, 50), 'ms'),
        figure('create → healthy, p99', p(samples.sandbox.ready, 99), p(samples.docker.ready, 99), 'ms'),
        figure('destroy, p50', p(samples.sandbox.destroy, 50), p(samples.docker.destroy, 50), 'ms'),
        figure('idle memory per tenant (PSS + host helpers)', memory.sandbox.pss / MiB, memory.docker.pss / MiB, 'MiB'),
        figure(
          'idle memory per tenant (memory cgroup)',
          memory.sandbox.cgroup / MiB,
          memory.docker.cgroup / MiB,
          'MiB',
        ),
      ],
      notes,
    });
    await report({
      name: 'tenants-docker',
      ours: 'Docker backend (own uid, read-only root, no caps, seccomp, no network, limits, gateway, relay)',
      peer: 'Docker Engine, the same image as a plain container',
      figures: [
        figure('create → healthy, p50', p(samples.docker.ready, 50), p(samples.plain.ready, 50), 'ms'),
        figure('create → healthy, p99', p(samples.docker.ready, 99), p(samples.plain.ready, 99), 'ms'),
        figure('destroy, p50', p(samples.docker.destroy, 50), p(samples.plain.destroy, 50), 'ms'),
      ],
    });
  } finally {
    await dockerOrchestrator.close().catch(() => undefined);
    await sandboxOrchestrator.close().catch(() => undefined);
    const mine = await docker.listContainers({ all: true, filters: { label: [`org.agentsquads.bench=${id}`] } });
    for (const c of mine) {
      const tenantId = c.Labels['org.agentsquads.tenant'];
      if (tenantId) await dockerOrchestrator.destroy(tenantId).catch(() => undefined);
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    }
    for (const s of await sandboxes.list().catch(() => [])) {
      await sandboxOrchestrator.destroy(s.id).catch(() => undefined);
    }
    await sandboxes.close().catch(() => undefined);
    stub.close();
    await rm(work, { recursive: true, force: true });
  }
}

/** Proportional set size of a process (shared pages divided among their users), bytes. */
async function pss(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024;
}

/** PSS of the processes above a uid's processes that are not the uid's, up to this process or pid 1. */
async function ancestorsPss(uid: number): Promise<number> {
  const seen = new Set<number>();
  for (const pid of await pidsOfUid(uid)) {
    for (let p = await parentOf(pid); p > 1 && p !== process.pid && !seen.has(p); p = await parentOf(p)) {
      if ((await uidOfPid(p)) !== uid) seen.add(p);
    }
  }
  let total = 0;
  for (const p of seen) total += await pss(p);
  return total;
}

async function uidOfPid(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
}

async function pidsOfUid(uid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (/^\d+$/.test(name) && (await uidOfPid(Number(name))) === uid) pids.push(Number(name));
  }
  return pids;
}

async function parentOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

/** Sum of the PSS of every process whose real uid is `uid`. */
async function pssOfUid(uid: number): Promise<number> {
  let total = 0;
  for (const pid of await pidsOfUid(uid)) total += await pss(pid);
  return total;
}

async function memAvailable(): Promise<number> {
  const text = await readFile('/proc/meminfo', 'utf8');
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(text)?.[1]) * 1024;
}

const median = (xs: number[]) => percentile(xs, 50);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
