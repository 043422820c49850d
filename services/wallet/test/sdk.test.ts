import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningServer } from '@agentstack/core';
import { startProcess } from '@agentstack/core';
import { createPolicyFetch, EMPTY_POLICY, WALLET_ROUTES, WalletApiError, WalletClient } from '@agentstack/sdk';
import { listen } from '@agentstack/x402/testing';
import { x402ResourceServer } from '@x402/core/server';
import { ExactEvmScheme } from '@x402/evm/exact/server';
import { paymentMiddleware } from '@x402/hono';
import { Hono } from 'hono';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fund, startWalletBed, type WalletBed } from './harness.js';

let w: WalletBed;
let seller: RunningServer;
let home: string;
const sellerPayTo = privateKeyToAccount(generatePrivateKey()).address;
const cli = fileURLToPath(new URL('../../../packages/sdk/src/cli.ts', import.meta.url));

beforeAll(async () => {
  w = await startWalletBed();
  home = await mkdtemp(join(tmpdir(), 'wallet-cli-'));
  const { network } = w.bed.devnet.chain;
  const asset = w.bed.devnet.chain.usdc;
  const app = new Hono();
  app.use(
    paymentMiddleware(
      {
        'GET /joke': {
          accepts: {
            scheme: 'exact',
            network,
            payTo: sellerPayTo,
            price: { asset: asset.address, amount: '10000', extra: { name: asset.name, version: asset.version } },
          },
        },
      },
      new x402ResourceServer(w.bed.facilitator).register(network, new ExactEvmScheme()),
    ),
  );
  app.get('/joke', (c) => c.text('a paid joke'));
  seller = await listen(app);
});

afterAll(async () => {
  await seller?.close();
  await w?.stop();
  await rm(home, { recursive: true, force: true });
});

describe('the SDK against the served OpenAPI', () => {
  it('calls only routes that exist in /openapi.json, and covers every wallet route there', async () => {
    const openApi = (await (await fetch(`${w.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const served = new Set(
      Object.entries(openApi.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)),
    );
    const sdk = new Set(
      Object.values(WALLET_ROUTES).map((r) => `${r.method} ${r.path.replace(/:([A-Za-z]+)/g, '{$1}')}`),
    );
    for (const route of sdk) expect(served, route).toContain(route);
    for (const route of served) expect(sdk, route).toContain(route);
  });

  it('drives a wallet end to end with typed calls, as owner (paying with x402) and as agent', async () => {
    const ownerAccount = await w.bed.fundedAccount(20_000_000n);
    const owner = new WalletClient({
      baseUrl: w.url,
      fetch: createPolicyFetch({ account: ownerAccount, policy: EMPTY_POLICY }).fetch,
    });
    const created = await new WalletClient({ baseUrl: w.url }).create({ label: 'sdk' });
    const details = await owner.get(created.address, { claimToken: created.claimToken });
    expect(details.owner).toBe(ownerAccount.address);
    await fund(w, created.address, 5_000_000n);
    const agent = new WalletClient({ baseUrl: w.url, agentToken: created.agentToken });

    await owner.setPolicy(created.address, { maxPerTx: '1', serviceCaps: { '127.0.0.1': '0.05' } });
    const to = privateKeyToAccount(generatePrivateKey()).address;
    const sent = await agent.send(created.address, { to, amount: '0.75' }, { idempotencyKey: 'sdk-1' });
    expect(sent.status).toBe('confirmed');
    const refused = await agent.send(created.address, { to, amount: '2' }).catch((e) => e);
    expect(refused).toBeInstanceOf(WalletApiError);
    expect(refused).toMatchObject({ status: 422, code: 'policy_violation', details: { rule: 'maxPerTx' } });
    const bad = await agent.send(created.address, { to: '0x12', amount: '1' }).catch((e) => e);
    expect(bad).toMatchObject({ status: 400, field: 'body.to' });

    const paid = await agent.pay(created.address, { url: `${seller.url}/joke` });
    expect(paid).toMatchObject({ status: 200, body: 'a paid joke', paid: { amount: '0.01', payTo: sellerPayTo } });

    const history = await agent.history(created.address, { limit: 50 });
    expect(history.items.some((i) => i.kind === 'pay')).toBe(true);
    expect((await agent.getPolicy(created.address)).policy.maxPerTx).toBe('1.00');

    const request = await agent.fundRequest(created.address, { amount: '1', reason: 'more jokes' });
    expect((await agent.fundRequests(created.address, { status: 'pending' })).items[0]?.id).toBe(request.id);
    expect((await owner.denyFundRequest(request.id, { reason: 'enough jokes' })).status).toBe('denied');

    expect((await owner.pause(created.address, { scope: 'pay', reason: 'sdk test' })).paused[0]?.scope).toBe('pay');
    expect((await owner.resume(created.address, { scope: 'pay' })).paused).toEqual([]);
    expect((await owner.list()).items.map((x) => x.address)).toContain(created.address);
    const rotated = await owner.rotateAgentToken(created.address);
    await expect(agent.get(created.address)).rejects.toMatchObject({ status: 401 });
    const done = await owner.deactivate(created.address, { sweepTo: ownerAccount.address });
    expect(done.status).toBe('deactivated');
    expect(rotated.agentToken).toMatch(/^wsa_/);
  });
});

describe('the wallet CLI', () => {
  const run = async (args: string[], extraEnv: Record<string, string> = {}) => {
    const proc = startProcess(process.execPath, ['--import', import.meta.resolve('tsx'), cli, ...args], {
      env: { ...process.env, WALLET_HOME: home, WALLET_URL: w.url, ...extraEnv },
    });
    let stdout = '';
    let stderr = '';
    proc.child.stdout?.on('data', (c: Buffer) => {
      stdout += c;
    });
    proc.child.stderr?.on('data', (c: Buffer) => {
      stderr += c;
    });
    const code = await proc.exited;
    return { code, stdout, stderr };
  };

  it('creates, claims as owner, sets the policy, sends within it and is refused outside it, and pays', async () => {
    const created = await run(['create', '--label', 'cli agent', '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toMatch(/devnet/); // it warns that this is test money
    const wallet = JSON.parse(created.stdout) as { address: `0x${string}`; agentToken: string };
    const profile = join(home, 'wallets.json');
    expect((await stat(profile)).mode & 0o777).toBe(0o600);
    expect(await readFile(profile, 'utf8')).toContain(wallet.agentToken);

    const password = { WALLET_PASSWORD: 'owner-password-123' };
    const keystore = await run(['keystore', 'new', '--json'], password);
    expect(keystore.code, keystore.stderr).toBe(0);
    const { address: ownerAddress, path } = JSON.parse(keystore.stdout) as { address: `0x${string}`; path: string };
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await fund(w, ownerAddress, 5_000_000n);
    await fund(w, wallet.address, 3_000_000n);

    // The owner's first call carries the saved claim token.
    const balance = await run(['balance', '--keystore', path, '--json'], password);
    expect(balance.code, balance.stderr).toBe(0);
    expect(JSON.parse(balance.stdout)).toMatchObject({ owner: ownerAddress, balances: { usdc: '3.00' } });
    expect(await readFile(profile, 'utf8')).not.toContain('wsc_');

    const policy = await run(['policy', 'set', '--max-per-tx', '1', '--keystore', path], password);
    expect(policy.code, policy.stderr).toBe(0);
    expect(policy.stdout).toContain('"maxPerTx": "1.00"');
    const agentPolicy = await run(['policy', 'set', '--max-per-tx', '100']);
    expect(agentPolicy.code).toBe(2);

    const to = privateKeyToAccount(generatePrivateKey()).address;
    const ok = await run(['send', to, '0.5']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^confirmed: 0\.50 USDC/);
    const refused = await run(['send', to, '1.5']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/422 policy_violation/);
    expect(refused.stderr).toMatch(/maxPerTx/);
    expect(await w.bed.balance(to)).toBe(500_000n);

    const pay = await run(['pay', `${seller.url}/joke`, '--json']);
    expect(pay.code, pay.stderr).toBe(0);
    expect(JSON.parse(pay.stdout)).toMatchObject({ body: 'a paid joke', paid: { amount: '0.01' } });

    const shown = await run(['policy']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/spent today/);
  });

  it('pays locally with the keystore under the local policy, without the service', async () => {
    const password = { WALLET_PASSWORD: 'local-password-123' };
    const path = join(home, 'local-key.json');
    const made = await run(['keystore', 'new', '--keystore', path, '--json'], password);
    const { address } = JSON.parse(made.stdout) as { address: `0x${string}` };
    await fund(w, address, 1_000_000n);
    const res = await run(['pay', '--local', `${seller.url}/joke`, '--keystore', path], password);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('a paid joke');
    expect(await w.bed.balance(address)).toBe(990_000n);
  });
});
