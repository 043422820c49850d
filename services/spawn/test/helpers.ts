import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLogger, ManualClock, waitFor } from '@agentstack/core';
import { migrate } from '@agentstack/db';
import { createTestDatabase, type TestDatabase } from '@agentstack/db/testing';
import { createTestSandboxManager, type TestSandboxManager } from '@agentstack/sandbox/testing';
import { PaymentGate, PgX402Store, signRequest, x402MigrationsDir } from '@agentstack/x402';
import { listen, type PaymentTestbed, startPaymentTestbed } from '@agentstack/x402/testing';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { type Catalog, DEFAULT_CATALOG } from '../src/catalog.js';
import { LocalProvider } from '../src/providers/local.js';
import { createSpawnService, type SpawnService } from '../src/service.js';
import { type SpawnDB, spawnMigrationsDir } from '../src/store.js';

const run = promisify(execFile);

export interface Payer {
  account: PrivateKeyAccount;
  /** The official x402 client paying as this account. */
  fetch: (path: string, init?: RequestInit & { json?: unknown }) => Promise<Response>;
  /** A free route, signed by this account (at the service's clock). */
  signed: (path: string, init?: { method?: string }) => Promise<Response>;
}

export interface SpawnTestbed {
  url: string;
  bed: PaymentTestbed;
  database: TestDatabase<SpawnDB>;
  sandboxes: TestSandboxManager;
  provider: LocalProvider;
  service: SpawnService;
  clock: ManualClock;
  catalog: Catalog;
  payer(usdc?: bigint): Promise<Payer>;
  /** Polls an action until it is no longer running; returns it. */
  waitForAction(payer: Payer, id: string): Promise<any>;
  stop(): Promise<void>;
}

export async function startSpawnTestbed({
  catalog = DEFAULT_CATALOG,
}: {
  catalog?: Catalog;
} = {}): Promise<SpawnTestbed> {
  const bed = await startPaymentTestbed();
  const database = await createTestDatabase<SpawnDB>({ migrationsDir: spawnMigrationsDir });
  await migrate({ connectionString: database.url, dir: x402MigrationsDir, table: 'x402_schema_migrations' });
  const sandboxes = await createTestSandboxManager({ cgroupGroup: 'agentstack-spawn-test' });
  const clock = new ManualClock(new Date());
  const log = createLogger({ name: 'spawn-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const provider = new LocalProvider({ manager: sandboxes.manager, catalog, userDataTimeoutMs: 20_000, log });
  const x402Store = new PgX402Store(database.pool);
  const gate = new PaymentGate({
    facilitator: bed.facilitator,
    network: bed.devnet.chain.network,
    payTo: privateKeyToAccount(generatePrivateKey()).address,
    asset: bed.devnet.chain.usdc,
    store: x402Store,
    serviceName: 'spawn.sh',
  });
  const service = createSpawnService({
    db: database.db,
    gate,
    x402Store,
    provider,
    catalog,
    clock,
    log,
    masterSecret: randomBytes(32),
    allowPrivateWebhooks: true,
    adminToken: 'test-admin-token-0123456789abcdef',
  });
  const server = await listen(service.app);
  const url = server.url;

  const testbed: SpawnTestbed = {
    url,
    bed,
    database,
    sandboxes,
    provider,
    service,
    clock,
    catalog,
    async payer(usdc = 100_000_000n) {
      const account = await bed.fundedAccount(usdc);
      const paying = bed.payingFetch(account, { maxPerPayment: 50_000_000n });
      return {
        account,
        fetch: (path, init = {}) => {
          const { json, ...rest } = init;
          return paying.fetch(`${url}${path}`, {
            ...rest,
            ...(json !== undefined
              ? { body: JSON.stringify(json), headers: { 'content-type': 'application/json', ...(rest.headers ?? {}) } }
              : {}),
          });
        },
        signed: async (path, { method = 'GET' } = {}) => {
          // A signature is accepted once, and two identical requests signed in the same second are identical.
          clock.advance(1_000);
          const headers = await signRequest(account, { method, url: `${url}${path}` }, clock.now());
          return fetch(`${url}${path}`, { method, headers });
        },
      };
    },
    async waitForAction(payer, id) {
      return waitFor(
        async () => {
          const res = await payer.signed(`/v1/actions/${id}`);
          const body = (await res.json()) as any;
          if (res.status !== 200) throw new Error(`action ${id}: ${res.status} ${JSON.stringify(body)}`);
          return body.action.status === 'running' ? undefined : body.action;
        },
        { timeoutMs: 60_000, intervalMs: 100, what: `action ${id}` },
      );
    },
    async stop() {
      await server.close();
      await service.close();
      await sandboxes.cleanup();
      await database.drop();
      await bed.stop();
    },
  };
  return testbed;
}

/** An ed25519 key pair on disk for the OpenSSH client. */
export async function sshKeyPair(): Promise<{
  dir: string;
  privateKey: string;
  publicKey: string;
  cleanup(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'spawn-ssh-'));
  const privateKey = join(dir, 'id_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'agent@test', '-f', privateKey]);
  return {
    dir,
    privateKey,
    publicKey: (await readFile(`${privateKey}.pub`, 'utf8')).trim(),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Runs a command over SSH with Debian's OpenSSH client; resolves with its output and exit code. */
export async function ssh(
  key: string,
  endpoint: { host: string; port: number; user: string },
  command: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      'ssh',
      [
        '-i',
        key,
        '-p',
        String(endpoint.port),
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
        '-o',
        'IdentitiesOnly=yes',
        `${endpoint.user}@${endpoint.host}`,
        command,
      ],
      { timeout: 30_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 255, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Whether a TCP connection to the port is refused (nothing listening). */
export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A webhook receiver on a free port that records deliveries (raw body and headers). */
export async function webhookReceiver() {
  const received: { headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hooks/spawn`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
