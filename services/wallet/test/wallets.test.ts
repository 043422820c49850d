import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecretBox, masterSecretFromHex } from '@agentstack/core';
import { decodePaymentRequiredHeader } from '@x402/core/http';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCall, createWallet, fund, makeOwner, ownedWallet, startWalletBed, type WalletBed } from './harness.js';

let w: WalletBed;

beforeAll(async () => {
  w = await startWalletBed();
});

afterAll(async () => {
  await w?.stop();
});

describe('discovery', () => {
  it('serves health, /openapi.json and /llms.txt for free', async () => {
    const health = await fetch(`${w.url}/v1/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'ok',
      network: 'eip155:8453',
      killSwitch: { engaged: false },
      gasAccount: { address: '0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc', ok: true },
    });
    const openApi = (await (await fetch(`${w.url}/openapi.json`)).json()) as any;
    expect(openApi.openapi).toBe('3.1.0');
    for (const path of [
      '/v1/wallets',
      '/v1/wallets/{address}',
      '/v1/wallets/{address}/send',
      '/v1/wallets/{address}/swap',
      '/v1/wallets/{address}/history',
      '/v1/wallets/{address}/fund-request',
      '/v1/wallets/{address}/fund-requests',
      '/v1/fund-requests/{id}/approve',
      '/v1/fund-requests/{id}/deny',
      '/v1/wallets/{address}/policy',
      '/v1/wallets/{address}/pause',
      '/v1/wallets/{address}/resume',
      '/v1/wallets/{address}/pay',
    ]) {
      expect(openApi.paths[path], path).toBeDefined();
    }
    expect(openApi.paths['/v1/wallets/{address}/send'].post['x-price']).toBe('$0.005');
    expect(openApi.paths['/v1/wallets/{address}/send'].post['x-settlement']).toBe('first');
    const llms = await (await fetch(`${w.url}/llms.txt`)).text();
    expect(llms).toContain('spendControls');
    expect(llms).toContain('$1');
    expect(llms).toContain('X-Claim-Token');
    expect(llms).toContain('Authorization: Bearer <agentToken>');
    expect(llms).toMatch(/POST \/v1\/wallets\/:address\/send — \$0\.005, settles before the effect/);
    expect(llms).toMatch(/GET \/v1\/wallets\/:address — \$0\.001, settles only if the call succeeds/);
  });
});

describe('create and claim', () => {
  it('creates a wallet for free and returns both tokens once', async () => {
    const created = await createWallet(w, { label: 'research agent' });
    expect(created).toMatchObject({
      chain: 'devnet',
      network: 'eip155:8453',
      label: 'research agent',
      balance: '0.00',
      funded: false,
    });
    expect(created.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(created.claimToken).toMatch(/^wsc_/);
    expect(created.agentToken).toMatch(/^wsa_/);
    // Only hashes are stored, and the key only sealed.
    const { rows } = await w.database.pool.query('SELECT * FROM wallets WHERE address = $1', [created.address]);
    const row = rows[0];
    expect(JSON.stringify(row)).not.toContain(created.claimToken);
    expect(JSON.stringify(row)).not.toContain(created.agentToken);
    expect(row.sealed_key).toMatch(/^v1\./);
  });

  it('asks for payment on paid routes (402 with PAYMENT-REQUIRED for the route price)', async () => {
    const created = await createWallet(w);
    const res = await fetch(`${w.url}/v1/wallets/${created.address}`);
    expect(res.status).toBe(402);
    const required = decodePaymentRequiredHeader(res.headers.get('payment-required') ?? '');
    expect(required.accepts[0]).toMatchObject({ amount: '1000', payTo: w.payTo, network: 'eip155:8453' });
  });

  it('binds the owner on the first paid request with X-Claim-Token; the token is single use', async () => {
    const owner = await makeOwner(w);
    const other = await makeOwner(w);
    const created = await createWallet(w);
    // Without the token: nobody owns it yet, and the payment is not taken.
    const before = await w.bed.balance(other.account.address);
    const refused = await other.call('GET', `/v1/wallets/${created.address}`);
    expect(refused.status).toBe(403);
    expect(await w.bed.balance(other.account.address)).toBe(before);

    const claimed = await owner.call('GET', `/v1/wallets/${created.address}`, undefined, {
      'x-claim-token': created.claimToken,
    });
    expect(claimed.status).toBe(200);
    expect(claimed.body).toMatchObject({ owner: owner.account.address, claimed: true, status: 'active' });
    expect(claimed.body.balances).toEqual({ usdc: '0.00', usdcAtomic: '0', eth: '0.0', ethAtomic: '0' });

    // Reused by someone else: 409 naming the header; another address gets 403.
    const reused = await other.call('GET', `/v1/wallets/${created.address}`, undefined, {
      'x-claim-token': created.claimToken,
    });
    expect(reused.status).toBe(409);
    expect(reused.body.error.field).toBe('header.x-claim-token');
    expect((await other.call('GET', `/v1/wallets/${created.address}`)).status).toBe(403);
    // The owner keeps access without the token.
    expect((await owner.call('GET', `/v1/wallets/${created.address}`)).status).toBe(200);
  });

  it('refuses an expired claim token and a wrong one, naming the header', async () => {
    const owner = await makeOwner(w);
    const created = await createWallet(w);
    const wrong = await owner.call('GET', `/v1/wallets/${created.address}`, undefined, { 'x-claim-token': 'wsc_nope' });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.field).toBe('header.x-claim-token');
    w.clock.offsetMs = 31 * 24 * 3600 * 1000;
    try {
      const expired = await owner.call('GET', `/v1/wallets/${created.address}`, undefined, {
        'x-claim-token': created.claimToken,
      });
      expect(expired.status).toBe(403);
      expect(expired.body.error).toMatchObject({ field: 'header.x-claim-token' });
      expect(expired.body.error.message).toMatch(/expired/);
    } finally {
      w.clock.offsetMs = 0;
    }
  });

  it('lists the caller’s wallets only, paginated', async () => {
    const owner = await makeOwner(w);
    for (let i = 0; i < 3; i++) await ownedWallet(w, owner, { label: `w${i}` });
    const first = await owner.call('GET', '/v1/wallets?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(2);
    const second = await owner.call('GET', `/v1/wallets?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.items).toHaveLength(1);
    expect(second.body.nextCursor).toBeNull();
    expect([...first.body.items, ...second.body.items].map((x: any) => x.label).sort()).toEqual(['w0', 'w1', 'w2']);
    const stranger = await makeOwner(w);
    expect((await stranger.call('GET', '/v1/wallets')).body.items).toEqual([]);
  });

  it('answers 404 for an unknown wallet and 400 for a malformed or wrong-checksum address', async () => {
    const owner = await makeOwner(w);
    const unknown = await owner.call('GET', '/v1/wallets/0x000000000000000000000000000000000000dEaD');
    expect(unknown.status).toBe(404);
    const malformed = await fetch(`${w.url}/v1/wallets/0x123`);
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as any).error.field).toBe('path.address');
    const created = await createWallet(w);
    const flipped = created.address.replace(/[a-f]/, (ch) => ch.toUpperCase());
    const badChecksum = await fetch(`${w.url}/v1/wallets/${flipped}`);
    expect(badChecksum.status).toBe(400);
    expect(((await badChecksum.json()) as any).error.message).toMatch(/checksum/);
  });

  it('refuses bad create input naming the field', async () => {
    for (const [body, field] of [
      [{ chain: 'ethereum' }, 'body.chain'],
      [{ label: '' }, 'body.label'],
      [{ surprise: 1 }, 'body'],
    ] as const) {
      const res = await fetch(`${w.url}/v1/wallets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as any).error.field).toBe(field);
    }
  });

  it('honours Idempotency-Key on create: the same wallet, not a second one', async () => {
    const send = () =>
      fetch(`${w.url}/v1/wallets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'create-once-1' },
        body: JSON.stringify({ label: 'once' }),
      });
    const a = (await (await send()).json()) as any;
    const b = await send();
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(((await b.json()) as any).address).toBe(a.address);
    const { rows } = await w.database.pool.query(`SELECT count(*)::int AS n FROM wallets WHERE label = 'once'`);
    expect(rows[0].n).toBe(1);
  });
});

describe('the agent token', () => {
  it('reads with the fee paid from the managed wallet itself, counted in the daily policy total', async () => {
    const { wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    const res = await agentCall(w, wallet.agentToken, 'GET', `/v1/wallets/${wallet.address}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('payment-response')).not.toBeNull();
    // The wallet paid its own $0.001 to the service's pay-to address.
    expect(await w.bed.balance(wallet.address)).toBe(999_000n);
    const policy = await agentCall(w, wallet.agentToken, 'GET', `/v1/wallets/${wallet.address}/policy`);
    expect(policy.status).toBe(200);
    // Both fees: this read's own fee is counted from the moment it is reserved, before it settles.
    expect(policy.body.usage.spentToday).toBe('0.002');
    expect(await w.bed.balance(wallet.address)).toBe(998_000n);
  });

  it('is refused on owner-only routes, on other wallets, and when unknown', async () => {
    const { wallet } = await ownedWallet(w);
    const { wallet: otherWallet } = await ownedWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    for (const [method, path, body] of [
      ['PUT', `/v1/wallets/${wallet.address}/policy`, { maxPerTx: '100' }],
      ['POST', `/v1/wallets/${wallet.address}/pause`, { scope: 'all' }],
      ['POST', `/v1/wallets/${wallet.address}/resume`, { scope: 'all' }],
      ['DELETE', `/v1/wallets/${wallet.address}`, undefined],
      ['PUT', `/v1/wallets/${wallet.address}/notifications`, { email: 'x@example.com' }],
      ['POST', `/v1/wallets/${wallet.address}/agent-token`, undefined],
      ['GET', `/v1/wallets/${otherWallet.address}`, undefined],
    ] as const) {
      const res = await agentCall(w, wallet.agentToken, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    const unknown = await agentCall(w, 'wsa_not-a-token', 'GET', `/v1/wallets/${wallet.address}`);
    expect(unknown.status).toBe(401);
    expect(unknown.body.error.field).toBe('header.authorization');
    // None of the refused calls was charged.
    expect(await w.bed.balance(wallet.address)).toBe(1_000_000n);
  });

  it('can be rotated by the owner: the old one stops working', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 1_000_000n);
    const rotated = await owner.call('POST', `/v1/wallets/${wallet.address}/agent-token`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.agentToken).toMatch(/^wsa_/);
    expect((await agentCall(w, wallet.agentToken, 'GET', `/v1/wallets/${wallet.address}`)).status).toBe(401);
    expect((await agentCall(w, rotated.body.agentToken, 'GET', `/v1/wallets/${wallet.address}`)).status).toBe(200);
  });
});

describe('secrets', () => {
  it('never puts a key or token in a response or a log line', async () => {
    const { owner, wallet } = await ownedWallet(w);
    await fund(w, wallet.address, 2_000_000n);
    await agentCall(w, wallet.agentToken, 'POST', `/v1/wallets/${wallet.address}/send`, {
      to: owner.account.address,
      amount: '0.5',
    });
    const row = (await w.database.pool.query('SELECT sealed_key FROM wallets WHERE address = $1', [wallet.address]))
      .rows[0];
    // The embedded default: a master secret generated once into the data directory, 0600.
    const masterPath = join(w.env.SERVICE_DATA_DIR!, 'master.key');
    expect((await stat(masterPath)).mode & 0o777).toBe(0o600);
    const master = masterSecretFromHex((await readFile(masterPath, 'utf8')).trim());
    const privateKey = createSecretBox(master, 'wallet-keys').openText(row.sealed_key, wallet.address);
    expect(privateKeyToAccount(privateKey as `0x${string}`).address).toBe(wallet.address);
    // Sealed with the address as associated data: the same ciphertext does not open for another wallet.
    expect(() => createSecretBox(master, 'wallet-keys').openText(row.sealed_key, owner.account.address)).toThrow();
    const all = w.logs.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const secret of [privateKey, privateKey.slice(2), wallet.agentToken, wallet.claimToken, row.sealed_key]) {
      expect(all).not.toContain(secret);
    }
    const details = await owner.call('GET', `/v1/wallets/${wallet.address}`);
    const text = JSON.stringify(details.body);
    expect(text).not.toContain(privateKey.slice(2));
    expect(text).not.toMatch(/sealed|privateKey|v1\.[A-Za-z0-9_-]{16}/);
  });
});
