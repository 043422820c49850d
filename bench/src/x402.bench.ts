import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, startEmbeddedPostgres } from '@agentstack/db';
import { PaymentGate, PgX402Store, x402MigrationsDir } from '@agentstack/x402';
import { listen, startPaymentTestbed } from '@agentstack/x402/testing';
import { x402ResourceServer } from '@x402/core/server';
import { ExactEvmScheme } from '@x402/evm/exact/server';
import { paymentMiddleware } from '@x402/hono';
import { Hono } from 'hono';
import pg from 'pg';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { load, percentile, report, SMOKE } from './lib.js';

/**
 * Paid requests through packages/x402 (our gate: payment claims and idempotency in PostgreSQL) versus a
 * minimal server using only the official @x402/hono middleware. Same devnet, same facilitator, same official
 * client, same route body; every request verifies and settles on-chain.
 */
export async function main() {
  const bed = await startPaymentTestbed();
  const pgDir = await mkdtemp(join(tmpdir(), 'bench-x402-'));
  await chmod(pgDir, 0o755);
  const database = await startEmbeddedPostgres({ dataDir: join(pgDir, 'pg'), databases: ['bench'], durable: false });
  const pool = new pg.Pool({ connectionString: database.urlFor('bench'), max: 10 });
  // PostgreSQL stopping at the end may reach an idle connection first: that must not crash the run.
  pool.on('error', () => undefined);
  await migrate({ pool, dir: x402MigrationsDir, table: 'x402_schema_migrations' });
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const asset = bed.devnet.chain.usdc;
  const network = bed.devnet.chain.network;

  const gate = new PaymentGate({
    facilitator: bed.facilitator,
    network,
    payTo,
    asset,
    store: new PgX402Store(pool),
    serviceName: 'bench',
  });
  const ours = new Hono();
  ours.get('/paid', gate.paid({ price: 1_000n, settle: 'after-success' }), (c) => c.json({ ok: true }));

  const peer = new Hono();
  peer.use(
    paymentMiddleware(
      {
        'GET /paid': {
          accepts: {
            scheme: 'exact',
            network,
            payTo,
            price: { asset: asset.address, amount: '1000', extra: { name: asset.name, version: asset.version } },
          },
        },
      },
      new x402ResourceServer(bed.facilitator).register(network, new ExactEvmScheme()),
    ),
  );
  peer.get('/paid', (c) => c.json({ ok: true }));

  const [oursServer, peerServer] = await Promise.all([listen(ours), listen(peer)]);
  const concurrency = SMOKE ? 2 : 8;
  const total = SMOKE ? 6 : 240;
  const payers = await Promise.all(Array.from({ length: concurrency }, () => bed.fundedAccount(100_000_000n)));
  const clients = payers.map((p) => bed.payingFetch(p));

  async function measure(url: string) {
    // Warm up both paths (facilitator /supported, JIT) before timing.
    for (const client of clients) await client.fetch(url);
    return load(
      async (i) => {
        const res = await (clients[i % clients.length] as (typeof clients)[number]).fetch(url);
        if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
      },
      { total, concurrency },
    );
  }
  // Alternate the order so neither side always runs on a warmer chain.
  const peerRun1 = await measure(`${peerServer.url}/paid`);
  const oursRun = await measure(`${oursServer.url}/paid`);
  const peerRun2 = await measure(`${peerServer.url}/paid`);
  const peerLatencies = [...peerRun1.latencies, ...peerRun2.latencies];
  const peerPerSecond = (peerRun1.perSecond + peerRun2.perSecond) / 2;

  await report({
    name: 'x402',
    ours: 'packages/x402 PaymentGate (PostgreSQL claims + idempotency)',
    peer: 'official @x402/hono paymentMiddleware',
    figures: [
      { label: 'paid requests/s', ours: oursRun.perSecond, peer: peerPerSecond, unit: 'req/s', higherIsBetter: true },
      {
        label: 'p50 latency',
        ours: percentile(oursRun.latencies, 50),
        peer: percentile(peerLatencies, 50),
        unit: 'ms',
        higherIsBetter: false,
      },
      {
        label: 'p99 latency',
        ours: percentile(oursRun.latencies, 99),
        peer: percentile(peerLatencies, 99),
        unit: 'ms',
        higherIsBetter: false,
      },
    ],
    notes: [
      `${total} paid requests per side, ${concurrency} concurrent payers, each verified and settled on the devnet.`,
    ],
  });

  await Promise.all([oursServer.close(), peerServer.close()]);
  await pool.end();
  await database.stop();
  await rm(pgDir, { recursive: true, force: true });
  await bed.stop();
}
