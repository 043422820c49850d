import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployUniswapV2, fundUsdc, randomNonce, signTransferAuthorization, testUsdcAbi } from '@agentstack/chain';
import { createLogger } from '@agentstack/core';
import { startEmbeddedPostgres } from '@agentstack/db';
import {
  createWallet,
  createWalletService,
  loadWalletConfig,
  migrateWalletDatabase,
  sendNow,
  store,
} from '@agentstack/wallet';
import { startPaymentTestbed } from '@agentstack/x402/testing';
import { createWalletClient, http, nonceManager, parseSignature, publicActions } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { load, percentile, report, SMOKE } from './lib.js';

/**
 * USDC sends per second through wallet.sh's send path — the policy decision under the wallet lock, the
 * journal intent written before sending, the EIP-3009 relay by the gas account, the receipt, the journal
 * confirmation — versus a bare viem relay of the same `transferWithAuthorization` (sign, submit, wait for the
 * receipt; nothing recorded, nothing checked). Same devnet, same concurrency, one sender per wallet. The ratio is
 * the journal's (and policy's) cost.
 */
export async function main() {
  const bed = await startPaymentTestbed();
  await deployUniswapV2({ rpcUrl: bed.devnet.rpcUrl, seed: false });
  const pgDir = await mkdtemp(join(tmpdir(), 'bench-wallet-'));
  await chmod(pgDir, 0o755);
  const database = await startEmbeddedPostgres({ dataDir: join(pgDir, 'pg'), databases: ['wallet'], durable: false });
  const url = database.urlFor('wallet');
  await migrateWalletDatabase(url);
  const dataDir = join(pgDir, 'data');
  const service = await createWalletService(
    loadWalletConfig({
      DATABASE_URL: url,
      CHAIN: 'devnet',
      BASE_RPC_URL: bed.devnet.rpcUrl,
      FACILITATOR_URL: bed.facilitatorUrl,
      PAY_TO_ADDRESS: privateKeyToAccount(generatePrivateKey()).address,
      SERVICE_DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
    }),
    { log: createLogger({ name: 'wallet', level: 'silent' }) },
  );
  const { ctx } = service;
  const concurrency = SMOKE ? 2 : 8;
  const total = SMOKE ? 6 : 200;

  // One managed wallet per concurrent sender, funded, with a policy to evaluate on every send.
  const wallets: NonNullable<Awaited<ReturnType<typeof store.getWallet>>>[] = [];
  for (let i = 0; i < concurrency; i++) {
    const created = await createWallet(ctx, { label: `bench-${i}` });
    await fundUsdc({ rpcUrl: bed.devnet.rpcUrl, to: created.address as `0x${string}`, amount: 1_000_000_000n });
    await store.setPolicy(ctx.db, created.address, { maxPerTx: '10.00', maxPerDay: '100000.00', deny: [] }, new Date());
    wallets.push((await store.getWallet(ctx.db, created.address))!);
  }
  const to = privateKeyToAccount(generatePrivateKey()).address;

  const ours = async (i: number) => {
    const wallet = wallets[i % concurrency]!;
    const done = await sendNow(ctx, {
      wallet,
      to,
      asset: 'USDC',
      amount: 10_000n,
      actor: 'agent',
      caller: wallet.address,
    });
    if (done.status !== 'confirmed') throw new Error(`send ${done.id} ended ${done.status}: ${done.error}`);
  };

  // The peer: the same authorization, signed and relayed with viem alone (its own gas account, nonce manager).
  const peerKeys = Array.from({ length: concurrency }, () => privateKeyToAccount(generatePrivateKey()));
  for (const key of peerKeys) await fundUsdc({ rpcUrl: bed.devnet.rpcUrl, to: key.address, amount: 1_000_000_000n });
  const relayer = createWalletClient({
    account: privateKeyToAccount(bed.devnet.accounts.payer.privateKey, { nonceManager }),
    chain: bed.devnet.chain.viemChain,
    transport: http(bed.devnet.rpcUrl),
    pollingInterval: 50,
  }).extend(publicActions);
  const peer = async (i: number) => {
    const from = peerKeys[i % concurrency]!;
    const now = BigInt(Math.floor(Date.now() / 1000));
    const message = { to, value: 10_000n, validAfter: 0n, validBefore: now + 3600n, nonce: randomNonce() };
    const signed = await signTransferAuthorization({
      account: from,
      chain: bed.devnet.chain.viemChain,
      token: bed.devnet.chain.usdc,
      ...message,
    });
    const { v, r, s } = parseSignature(signed.signature);
    const hash = await relayer.writeContract({
      address: bed.devnet.usdc,
      abi: testUsdcAbi,
      functionName: 'transferWithAuthorization',
      args: [from.address, to, message.value, message.validAfter, message.validBefore, message.nonce, Number(v), r, s],
    });
    const receipt = await relayer.waitForTransactionReceipt({ hash });
    if (receipt.status !== 'success') throw new Error('bare relay reverted');
  };

  // Warm both paths, then alternate so neither always runs on a warmer chain.
  await Promise.all([ours(0), peer(0)]);
  const peer1 = await load(peer, { total, concurrency });
  const oursRun = await load(ours, { total, concurrency });
  const peer2 = await load(peer, { total, concurrency });
  const peerPerSecond = (peer1.perSecond + peer2.perSecond) / 2;
  const peerLatencies = [...peer1.latencies, ...peer2.latencies];

  await report({
    name: 'wallet',
    ours: 'wallet.sh send (policy under the wallet lock + journal intent/submitted/confirmed + relay)',
    peer: 'bare viem transferWithAuthorization relay (sign, submit, receipt)',
    figures: [
      { label: 'USDC sends/s', ours: oursRun.perSecond, peer: peerPerSecond, unit: 'sends/s', higherIsBetter: true },
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
      `${total} sends per side, ${concurrency} wallets sending at once (each its own sequence), every send mined on the devnet.`,
      `The journal's cost per send: ours/peer sends/s = ${(oursRun.perSecond / peerPerSecond).toFixed(2)}.`,
    ],
  });

  await service.stop();
  await database.stop();
  await rm(pgDir, { recursive: true, force: true });
  await bed.stop();
}
