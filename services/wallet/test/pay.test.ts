import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunningServer } from '@agentstack/core';
import { listen } from '@agentstack/x402/testing';
import { x402ResourceServer } from '@x402/core/server';
import { ExactEvmScheme } from '@x402/evm/exact/server';
import { paymentMiddleware } from '@x402/hono';
import { Hono } from 'hono';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCall, fund, ownedWallet, startWalletBed, type WalletBed } from './harness.js';

let w: WalletBed;
let paidApi: RunningServer;
let redirector: Server;
let redirectorUrl: string;
const sellerPayTo = privateKeyToAccount(generatePrivateKey()).address;
let calls = 0;

/** DNS the test controls: public-looking names that point at private addresses. */
const dns: Record<string, string> = {
  'api.public-looking.example': '10.0.0.8',
  'metadata.public-looking.example': '169.254.169.254',
  'loop.public-looking.example': '127.0.0.1',
};

beforeAll(async () => {
  w = await startWalletBed({
    resolve: async (host) => {
      const address = dns[host];
      if (!address) throw new Error(`ENOTFOUND ${host}`);
      return [{ address, family: 4 }];
    },
  });
  // A seller running the official @x402/hono middleware, on the same devnet and facilitator.
  const network = w.bed.devnet.chain.network;
  const asset = w.bed.devnet.chain.usdc;
  const seller = new Hono();
  seller.use(
    paymentMiddleware(
      {
        'GET /weather': {
          accepts: {
            scheme: 'exact',
            network,
            payTo: sellerPayTo,
            price: { asset: asset.address, amount: '20000', extra: { name: asset.name, version: asset.version } },
          },
        },
        'POST /expensive': {
          accepts: {
            scheme: 'exact',
            network,
            payTo: sellerPayTo,
            price: { asset: asset.address, amount: '3000000', extra: { name: asset.name, version: asset.version } },
          },
        },
      },
      new x402ResourceServer(w.bed.facilitator).register(network, new ExactEvmScheme()),
    ),
  );
  seller.get('/weather', (c) => {
    calls++;
    return c.json({ city: 'Lisbon', tempC: 21 });
  });
  seller.post('/expensive', async (c) => c.json({ echoed: await c.req.text() }));
  seller.get('/free', (c) => c.text('no charge'));
  paidApi = await listen(seller);
  redirector = createServer((req, res) => {
    res.writeHead(302, { location: decodeURIComponent((req.url ?? '/').slice(1)) });
    res.end();
  });
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  redirectorUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await paidApi?.close();
  await new Promise((resolve) => redirector?.close(resolve));
  await w?.stop();
});

describe('pay on behalf', () => {
  it('pays an official @x402/hono server from the managed wallet and returns its answer', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    const sellerBefore = await w.bed.balance(sellerPayTo);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, { url: `${paidApi.url}/weather` });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 200, bodyEncoding: 'utf8' });
    expect(JSON.parse(res.body.body)).toEqual({ city: 'Lisbon', tempC: 21 });
    expect(res.body.paid).toMatchObject({
      amount: '0.02',
      payTo: sellerPayTo,
      status: 'confirmed',
      network: 'eip155:8453',
    });
    expect(res.body.paid.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await w.bed.balance(wallet.address)).toBe(1_000_000n - 20_000n);
    expect(await w.bed.balance(sellerPayTo)).toBe(sellerBefore + 20_000n);
    const history = await owner.call('GET', `/v1/wallets/${wallet.address}/history`);
    expect(history.body.items[0]).toMatchObject({
      kind: 'pay',
      status: 'confirmed',
      service: '127.0.0.1',
      amount: '0.02',
    });
  });

  it('lets the agent pay within its per-service cap and refuses beyond it, before signing', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 5_000_000n);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { serviceCaps: { '127.0.0.1': '0.05' } });
    const first = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/pay`, {
      url: `${paidApi.url}/weather`,
    });
    expect(first.status).toBe(200);
    await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/pay`, {
      url: `${paidApi.url}/weather`,
    });
    const before = calls;
    const third = await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/pay`, {
      url: `${paidApi.url}/weather`,
    });
    expect(third.status).toBe(422);
    expect(third.body.error.details).toMatchObject({ rule: 'serviceCaps', limit: '0.05', remaining: '0.01' });
    expect(calls).toBe(before);
    // Two payments of 0.02 and three route fees of 0.001.
    expect(await w.bed.balance(wallet.address)).toBe(5_000_000n - 40_000n - 3_000n);
  });

  it('refuses a denied host before charging anything, and a price above maxAmount', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 5_000_000n);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, { deny: ['127.0.0.1'] });
    const ownerBefore = await w.bed.balance(owner.account.address);
    const denied = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, { url: `${paidApi.url}/weather` });
    expect(denied.status).toBe(422);
    expect(denied.body.error.details.rule).toBe('deny');
    expect(await w.bed.balance(owner.account.address)).toBe(ownerBefore);
    await owner.call('PUT', `/v1/wallets/${wallet.address}/policy`, {});
    const tooDear = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, {
      url: `${paidApi.url}/expensive`,
      method: 'POST',
      body: 'hello',
      maxAmount: '1',
    });
    expect(tooDear.status).toBe(422);
    expect(tooDear.body.error).toMatchObject({ code: 'payment_not_possible', field: 'body.maxAmount' });
    expect(await w.bed.balance(wallet.address)).toBe(5_000_000n);
    // Within maxAmount (and above @x402/fetch's default $1 cap, which does not apply here) it is paid.
    const paid = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, {
      url: `${paidApi.url}/expensive`,
      method: 'POST',
      body: 'hello',
      headers: { 'content-type': 'text/plain' },
      maxAmount: '3',
    });
    expect(paid.status).toBe(200);
    expect(JSON.parse(paid.body.body)).toEqual({ echoed: 'hello' });
    expect(await w.bed.balance(wallet.address)).toBe(2_000_000n);
  });

  it('passes free answers through without paying', async () => {
    const { owner, wallet } = await ownedWallet(w);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, { url: `${paidApi.url}/free` });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 200, body: 'no charge', paid: null });
  });

  it('refuses SSRF targets with 400 body.url and charges nothing', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    const ownerBefore = await w.bed.balance(owner.account.address);
    for (const url of [
      'http://10.1.2.3/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]:8080/',
      'http://[fd00::1]/',
      'http://100.64.0.1/',
      'http://0.0.0.0/',
      'http://api.public-looking.example/data', // a public name resolving to a private address
      'http://metadata.public-looking.example/',
      'file:///etc/passwd',
      'gopher://example.com/',
      'not a url',
    ]) {
      const res = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, { url });
      expect(res.status, url).toBe(400);
      expect(res.body.error.field, url).toBe('body.url');
    }
    expect(await w.bed.balance(owner.account.address)).toBe(ownerBefore);
    expect(await w.bed.balance(wallet.address)).toBe(1_000_000n);
  });

  it('refuses a redirect to a private address (each hop is checked) and pays nothing', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    for (const target of [
      'http://169.254.169.254/latest/',
      'http://loop.public-looking.example:1/',
      'http://10.0.0.1/',
    ]) {
      const res = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, {
        url: `${redirectorUrl}/${encodeURIComponent(target)}`,
      });
      expect(res.status, target).toBe(400);
      expect(res.body.error.field).toBe('body.url');
      expect(res.body.error.message).toMatch(/non-public address/);
    }
    expect(await w.bed.balance(wallet.address)).toBe(1_000_000n);
    // A redirect to an allowed host is followed and paid at the end.
    const followed = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, {
      url: `${redirectorUrl}/${encodeURIComponent(`${paidApi.url}/weather`)}`,
    });
    expect(followed.status).toBe(200);
    expect(followed.body.paid.amount).toBe('0.02');
  });

  it('refuses headers it must set itself, naming them', async () => {
    const { owner, wallet } = await ownedWallet(w);
    const res = await owner.call('POST', `/v1/wallets/${wallet.address}/pay`, {
      url: `${paidApi.url}/weather`,
      headers: { 'PAYMENT-SIGNATURE': 'x' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('body.headers.PAYMENT-SIGNATURE');
  });
});
