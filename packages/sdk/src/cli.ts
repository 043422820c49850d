#!/usr/bin/env tsx
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { LocalAccount } from 'viem';
import { type CreatedWallet, WalletApiError, WalletClient } from './client.js';
import type { Policy } from './policy.js';

// Only what a command needs is loaded: agent commands start without viem or the x402 client.
const keystoreModule = () => import('./keystore.js');
const payingModule = () => import('./paying-fetch.js');
const policyModule = () => import('./policy.js');

const USAGE = `wallet — agent wallets on wallet.sh, from a shell

  wallet create [--label L]                      create a managed wallet; its tokens are printed once and saved (0600)
  wallet balance [ADDRESS]                       USDC and ETH balances, read on-chain by the service
  wallet send <to> <amount> [--asset USDC|ETH] [--idempotency-key K]
                                                 send (USDC needs no ETH); policy, journal and breaker apply
  wallet policy                                  the spending policy and today's usage
  wallet policy set [--max-per-tx X] [--max-per-day X] [--max-per-recipient X] [--max-per-service X]
                    [--allow a,b] [--deny a,b] [--auto-pause-below X] [--json-policy '{…}']
                                                 replace the policy (owner only: use --keystore)
  wallet pay <url> [--method M] [--data BODY] [--header 'Name: value']… [--max-amount X]
                                                 an x402-paid request made by the wallet, under its policy
  wallet pay --local <url> …                     pay with the local keystore's key under the local policy
                                                 (<home>/policy.json), no service involved
  wallet keystore new                            create an encrypted local key (scrypt + AES-256-GCM, 0600)

Options
  --url URL          wallet.sh base URL (default: $WALLET_URL, the saved wallet's, or http://127.0.0.1:4101)
  --wallet ADDRESS   which saved wallet (default: the last one created)
  --keystore PATH    act with this local key (e.g. as the owner); password from $WALLET_PASSWORD or a prompt
  --home DIR         where wallets, keystore and ledger live (default: $WALLET_HOME or ~/.agentstack)
  --json             machine-readable output

Without --keystore, commands act as the wallet's agent (its saved agent token): route fees are paid from the
wallet itself and count toward its policy.`;

interface Profile {
  url: string;
  address: `0x${string}`;
  agentToken: string;
  /** Kept until the owner's first paid call uses it. */
  claimToken?: string;
  network: string;
  chain: string;
  label: string | null;
}

interface Profiles {
  default?: string;
  wallets: Record<string, Profile>;
}

class UsageError extends Error {}

async function readJson<T>(path: string, fallback: T): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
}

async function writePrivate(path: string, value: unknown) {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

async function password(prompt: string): Promise<string> {
  if (process.env.WALLET_PASSWORD) return process.env.WALLET_PASSWORD;
  if (!process.stdin.isTTY) throw new UsageError('set WALLET_PASSWORD (no terminal to ask for the keystore password)');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Hide what is typed.
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
  process.stderr.write(prompt);
  const answer = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return answer;
}

async function main(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      wallet: { type: 'string' },
      keystore: { type: 'string' },
      home: { type: 'string' },
      json: { type: 'boolean', default: false },
      label: { type: 'string' },
      asset: { type: 'string', default: 'USDC' },
      'idempotency-key': { type: 'string' },
      method: { type: 'string', default: 'GET' },
      data: { type: 'string' },
      header: { type: 'string', multiple: true },
      'max-amount': { type: 'string' },
      local: { type: 'boolean', default: false },
      'max-per-tx': { type: 'string' },
      'max-per-day': { type: 'string' },
      'max-per-recipient': { type: 'string' },
      'max-per-service': { type: 'string' },
      allow: { type: 'string' },
      deny: { type: 'string' },
      'auto-pause-below': { type: 'string' },
      'json-policy': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const home = values.home ?? process.env.WALLET_HOME ?? join(homedir(), '.agentstack');
  await mkdir(home, { recursive: true, mode: 0o700 });
  const profilesPath = join(home, 'wallets.json');
  const profiles = await readJson<Profiles>(profilesPath, { wallets: {} });
  const keystorePath = values.keystore ?? process.env.WALLET_KEYSTORE;
  const out = (human: string, data: unknown) => console.log(values.json ? JSON.stringify(data, null, 2) : human);

  const profileFor = (address?: string): Profile => {
    const key = address ?? values.wallet ?? profiles.default;
    const found = key ? profiles.wallets[key] : undefined;
    if (!found)
      throw new UsageError(key ? `no saved wallet ${key} in ${profilesPath}` : 'no wallet yet: run `wallet create`');
    return found;
  };
  const baseUrl = (profile?: Profile) =>
    values.url ?? process.env.WALLET_URL ?? profile?.url ?? 'http://127.0.0.1:4101';

  let owner: LocalAccount | undefined;
  const ownerAccount = async () => {
    if (!keystorePath) return undefined;
    const { unlockKeystore } = await keystoreModule();
    owner ??= await unlockKeystore(keystorePath, await password(`keystore password for ${keystorePath}: `));
    return owner;
  };

  const warnIfDevnet = async (url: string) => {
    const health = await new WalletClient({ baseUrl: url }).health().catch(() => undefined);
    if (health?.chain === 'devnet') {
      console.error(
        `warning: ${url} runs on a local devnet (${health.network}): balances are test money, not real USDC`,
      );
    }
  };

  /** Agent by default; the keystore's key (paying route fees itself, e.g. the owner) with --keystore. */
  const clientFor = async (profile: Profile) => {
    const url = baseUrl(profile);
    await warnIfDevnet(url);
    const account = await ownerAccount();
    let client: WalletClient;
    if (account) {
      const [{ createPolicyFetch }, { EMPTY_POLICY }] = await Promise.all([payingModule(), policyModule()]);
      client = new WalletClient({ baseUrl: url, fetch: createPolicyFetch({ account, policy: EMPTY_POLICY }).fetch });
    } else client = new WalletClient({ baseUrl: url, agentToken: profile.agentToken });
    return { client, asOwner: Boolean(account) };
  };

  /** The first call as the owner carries the saved claim token, which is then forgotten (single use). */
  const claimFor = (profile: Profile, asOwner: boolean) =>
    asOwner && profile.claimToken ? { claimToken: profile.claimToken } : {};
  const claimed = async (profile: Profile, asOwner: boolean) => {
    if (asOwner && profile.claimToken) {
      delete profile.claimToken;
      await writePrivate(profilesPath, profiles);
    }
  };

  switch (command) {
    case 'create': {
      const url = baseUrl();
      await warnIfDevnet(url);
      const created: CreatedWallet = await new WalletClient({ baseUrl: url }).create(
        values.label ? { label: values.label } : {},
      );
      profiles.wallets[created.address] = {
        url,
        address: created.address,
        agentToken: created.agentToken,
        claimToken: created.claimToken,
        network: created.network,
        chain: created.chain,
        label: created.label,
      };
      profiles.default = created.address;
      await writePrivate(profilesPath, profiles);
      out(
        [
          `wallet   ${created.address}  (${created.chain}, ${created.network})`,
          `agent    ${created.agentToken}`,
          `claim    ${created.claimToken}`,
          `saved to ${profilesPath} (mode 0600); the tokens are not shown again by the service.`,
          'Claim it as the owner: wallet balance --keystore <owner keystore> (sends X-Claim-Token once).',
          `Fund it with USDC at ${created.address}.`,
        ].join('\n'),
        created,
      );
      return 0;
    }
    case 'balance': {
      const profile = profileFor(args[0]);
      const { client, asOwner } = await clientFor(profile);
      const details = await client.get(profile.address, claimFor(profile, asOwner));
      await claimed(profile, asOwner);
      out(
        `${details.address}\n  USDC ${details.balances.usdc}\n  ETH  ${details.balances.eth}\n  owner ${details.owner ?? '(unclaimed)'}` +
          (details.safety.paused.length
            ? `\n  paused: ${details.safety.paused.map((p) => `${p.scope} (${p.reason})`).join(', ')}`
            : ''),
        details,
      );
      return 0;
    }
    case 'send': {
      const [to, amount] = args;
      if (!to || !amount) throw new UsageError('usage: wallet send <to> <amount> [--asset USDC|ETH]');
      if (values.asset !== 'USDC' && values.asset !== 'ETH') throw new UsageError('--asset must be USDC or ETH');
      const profile = profileFor();
      const { client, asOwner } = await clientFor(profile);
      const entry = await client.send(
        profile.address,
        { to, amount, asset: values.asset },
        {
          ...claimFor(profile, asOwner),
          ...(values['idempotency-key'] ? { idempotencyKey: values['idempotency-key'] } : {}),
        },
      );
      await claimed(profile, asOwner);
      out(
        `${entry.status}: ${entry.amount} ${entry.asset} → ${to}${entry.txHash ? `  tx ${entry.txHash}` : ''}  (${entry.id})`,
        entry,
      );
      return 0;
    }
    case 'policy': {
      const profile = profileFor();
      const { client, asOwner } = await clientFor(profile);
      if (args[0] === 'set') {
        if (!asOwner) throw new UsageError('setting the policy is for the owner: pass --keystore <owner keystore>');
        const { policyFromJson, policyToJson } = await policyModule();
        const policy: Policy = values['json-policy']
          ? policyFromJson(JSON.parse(values['json-policy']))
          : policyFromJson({
              ...(values['max-per-tx'] ? { maxPerTx: values['max-per-tx'] } : {}),
              ...(values['max-per-day'] ? { maxPerDay: values['max-per-day'] } : {}),
              ...(values['max-per-recipient'] ? { maxPerRecipientPerDay: values['max-per-recipient'] } : {}),
              ...(values['max-per-service'] ? { maxPerServicePerDay: values['max-per-service'] } : {}),
              ...(values.allow ? { allow: values.allow.split(',').map((s) => s.trim()) } : {}),
              ...(values.deny ? { deny: values.deny.split(',').map((s) => s.trim()) } : {}),
              ...(values['auto-pause-below'] ? { autoPauseBelow: values['auto-pause-below'] } : {}),
            });
        const view = await client.setPolicy(profile.address, policyToJson(policy), claimFor(profile, asOwner));
        await claimed(profile, asOwner);
        out(`policy set:\n${JSON.stringify(view.policy, null, 2)}`, view);
        return 0;
      }
      if (args[0] !== undefined) throw new UsageError('usage: wallet policy [set …]');
      const view = await client.getPolicy(profile.address);
      out(
        `${JSON.stringify(view.policy, null, 2)}\nspent today ${view.usage.spentToday} USDC` +
          (view.usage.remainingToday !== null ? `, ${view.usage.remainingToday} left` : '') +
          ` (resets ${view.usage.resetsAt})`,
        view,
      );
      return 0;
    }
    case 'pay': {
      const [url] = args;
      if (!url) throw new UsageError('usage: wallet pay <url> [--method M] [--data BODY] [--header "Name: value"]');
      const headers: Record<string, string> = {};
      for (const h of values.header ?? []) {
        const i = h.indexOf(':');
        if (i < 1) throw new UsageError(`--header must be "Name: value", got ${JSON.stringify(h)}`);
        headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
      }
      const method = values.method.toUpperCase() as 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
      if (values.local) {
        const account = await ownerAccount();
        if (!account) throw new UsageError('--local pays with a local key: pass --keystore');
        const [{ createPolicyFetch, FileUsageLedger }, { policyFromJson }] = await Promise.all([
          payingModule(),
          policyModule(),
        ]);
        const policy = policyFromJson(await readJson(join(home, 'policy.json'), {}));
        const paying = createPolicyFetch({
          account,
          policy,
          ledger: new FileUsageLedger(join(home, `ledger-${account.address.toLowerCase()}.json`)),
        });
        const res = await paying.fetch(url, {
          method,
          headers,
          ...(values.data !== undefined ? { body: values.data } : {}),
        });
        const body = await res.text();
        out(`${res.status}\n${body}`, {
          status: res.status,
          body,
          paymentResponse: res.headers.get('payment-response'),
        });
        return res.ok ? 0 : 1;
      }
      const profile = profileFor();
      const { client, asOwner } = await clientFor(profile);
      const result = await client.pay(
        profile.address,
        {
          url,
          method,
          headers,
          ...(values.data !== undefined ? { body: values.data } : {}),
          ...(values['max-amount'] ? { maxAmount: values['max-amount'] } : {}),
        },
        claimFor(profile, asOwner),
      );
      await claimed(profile, asOwner);
      out(
        `${result.status}${result.paid ? `  paid ${result.paid.amount} USDC to ${result.paid.payTo} (${result.paid.status})` : ''}\n${result.body ?? ''}`,
        result,
      );
      return result.status < 400 ? 0 : 1;
    }
    case 'keystore': {
      if (args[0] !== 'new') throw new UsageError('usage: wallet keystore new [--keystore PATH]');
      const path = keystorePath ?? join(home, 'keystore.json');
      const secret = await password(`new keystore password for ${path}: `);
      const { createKeystore } = await keystoreModule();
      const { address } = await createKeystore(path, secret);
      out(`keystore ${path} (mode 0600)\naddress  ${address}`, { path, address });
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(err.message);
      process.exit(2);
    }
    if (err instanceof WalletApiError) {
      console.error(`error ${err.status} ${err.code}${err.field ? ` (${err.field})` : ''}: ${err.message}`);
      process.exit(1);
    }
    if (err instanceof Error && (err.name === 'PolicyDeniedError' || err.name === 'KeystoreError')) {
      console.error(err.message);
      process.exit(1);
    }
    console.error(err);
    process.exit(1);
  },
);
