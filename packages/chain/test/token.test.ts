import {
  type Address,
  createPublicClient,
  createWalletClient,
  domainSeparator,
  type Hex,
  http,
  type LocalAccount,
  parseEventLogs,
  parseSignature,
  type TransactionReceipt,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BASE_USDC_ADDRESS,
  type Devnet,
  fundEth,
  fundUsdc,
  randomNonce,
  signTransferAuthorization,
  startDevnet,
  testUsdcAbi,
  testWalletAbi,
  testWalletBytecode,
  transferWithAuthorizationTypes,
  usdcBalance,
  usdcDomain,
} from '../src/index.js';

// One anvil for the file; every test uses fresh nonces and measures balance deltas, so order does not matter.
let devnet: Devnet;
let publicClient: ReturnType<typeof makePublicClient>;
const payer = privateKeyToAccount(generatePrivateKey());
const payee = privateKeyToAccount(generatePrivateKey());
let relayer: LocalAccount;

function makePublicClient(rpcUrl: string, d: Devnet) {
  return createPublicClient({ chain: d.chain.viemChain, transport: http(rpcUrl), pollingInterval: 50 });
}

beforeAll(async () => {
  devnet = await startDevnet();
  publicClient = makePublicClient(devnet.rpcUrl, devnet);
  relayer = privateKeyToAccount(devnet.accounts.gas.privateKey);
  await fundUsdc({ rpcUrl: devnet.rpcUrl, to: payer.address, amount: 1_000_000_000n });
  // Gas for the few calls the payer and payee make themselves.
  for (const to of [payer.address, payee.address]) await fundEth({ rpcUrl: devnet.rpcUrl, to, amount: 10n ** 18n });
});

afterAll(async () => {
  await devnet?.stop();
});

/** Sends a token call from `account` and returns the receipt; reverts surface as rejections with the reason. */
async function send(
  account: LocalAccount,
  functionName: string,
  args: readonly unknown[],
): Promise<TransactionReceipt> {
  const wallet = createWalletClient({ account, chain: devnet.chain.viemChain, transport: http(devnet.rpcUrl) });
  const hash = await wallet.writeContract({
    address: BASE_USDC_ADDRESS,
    abi: testUsdcAbi,
    functionName,
    args,
  } as never);
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  expect(receipt.status).toBe('success');
  return receipt;
}

const balance = (address: Address) => usdcBalance(publicClient, address, BASE_USDC_ADDRESS);

async function now(): Promise<bigint> {
  return (await publicClient.getBlock()).timestamp;
}

/** An authorization from `payer` valid for the next hour. */
async function authorization(value: bigint, overrides: Partial<{ validAfter: bigint; validBefore: bigint }> = {}) {
  const t = await now();
  return { to: payee.address, value, validAfter: t - 60n, validBefore: t + 3600n, nonce: randomNonce(), ...overrides };
}

function signAs(account: LocalAccount, auth: Awaited<ReturnType<typeof authorization>>, from?: Address) {
  return signTransferAuthorization({ account, chain: devnet.chain, token: devnet.chain.usdc, ...auth, from });
}

type Auth = Awaited<ReturnType<typeof authorization>>;
const vrsArgs = (from: Address, a: Auth, s: { v: number; r: Hex; s: Hex }) =>
  [from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, s.v, s.r, s.s] as const;
const bytesArgs = (from: Address, a: Auth, signature: Hex) =>
  [from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, signature] as const;

// Same fields as a transfer authorization, under another type name (so one cannot be used as the other).
const receiveTypes = { ReceiveWithAuthorization: transferWithAuthorizationTypes.TransferWithAuthorization } as const;
const cancelTypes = {
  CancelAuthorization: [
    { name: 'authorizer', type: 'address' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const;
const permitTypes = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;
const domain = () => usdcDomain(devnet.chain, devnet.chain.usdc);

describe('EIP-3009 transferWithAuthorization', () => {
  it('moves exactly the value with the (v, r, s) form, and records the nonce', async () => {
    const auth = await authorization(1_234_567n);
    const sig = await signAs(payer, auth);
    const [before, payeeBefore, relayerBefore] = await Promise.all([
      balance(payer.address),
      balance(payee.address),
      balance(relayer.address),
    ]);

    const receipt = await send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, auth, sig));

    expect(await balance(payer.address)).toBe(before - 1_234_567n);
    expect(await balance(payee.address)).toBe(payeeBefore + 1_234_567n);
    expect(await balance(relayer.address)).toBe(relayerBefore);
    const events = parseEventLogs({ abi: testUsdcAbi, logs: receipt.logs });
    expect(events.map((e) => e.eventName)).toEqual(['AuthorizationUsed', 'Transfer']);
    expect(events[0]!.args).toEqual({ authorizer: payer.address, nonce: auth.nonce });
    expect(
      await publicClient.readContract({
        address: BASE_USDC_ADDRESS,
        abi: testUsdcAbi,
        functionName: 'authorizationState',
        args: [payer.address, auth.nonce],
      }),
    ).toBe(true);
  });

  it('moves exactly the value with the bytes-signature form', async () => {
    const auth = await authorization(42n);
    const { signature } = await signAs(payer, auth);
    const before = await balance(payee.address);
    await send(relayer, 'transferWithAuthorization', bytesArgs(payer.address, auth, signature));
    expect(await balance(payee.address)).toBe(before + 42n);
  });

  it('rejects a replay of the same authorization, in either form', async () => {
    const auth = await authorization(10n);
    const sig = await signAs(payer, auth);
    await send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, auth, sig));
    await expect(send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, auth, sig))).rejects.toThrow(
      'authorization is used or canceled',
    );
    await expect(
      send(relayer, 'transferWithAuthorization', bytesArgs(payer.address, auth, sig.signature)),
    ).rejects.toThrow('authorization is used or canceled');
  });

  it('rejects an expired and a not-yet-valid authorization', async () => {
    const t = await now();
    const expired = await authorization(10n, { validAfter: 0n, validBefore: t - 1n });
    const early = await authorization(10n, { validAfter: t + 3600n, validBefore: t + 7200n });
    await expect(
      send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, expired, await signAs(payer, expired))),
    ).rejects.toThrow('authorization is expired');
    await expect(
      send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, early, await signAs(payer, early))),
    ).rejects.toThrow('authorization is not yet valid');
  });

  it('rejects a signature by anyone but `from`, and a signed value that was changed', async () => {
    const auth = await authorization(10n);
    const byPayee = await signAs(payee, auth, payer.address);
    await expect(send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, auth, byPayee))).rejects.toThrow(
      'invalid signature',
    );
    await expect(
      send(relayer, 'transferWithAuthorization', bytesArgs(payer.address, auth, byPayee.signature)),
    ).rejects.toThrow('invalid signature');

    const bySigner = await signAs(payer, auth);
    const inflated = { ...auth, value: 11n };
    await expect(
      send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, inflated, bySigner)),
    ).rejects.toThrow('invalid signature');
  });
});

describe('EIP-3009 cancelAuthorization and receiveWithAuthorization', () => {
  it('a canceled nonce (either form) cannot be used afterwards', async () => {
    for (const form of ['vrs', 'bytes'] as const) {
      const auth = await authorization(10n);
      const cancel = await payer.signTypedData({
        domain: domain(),
        types: cancelTypes,
        primaryType: 'CancelAuthorization',
        message: { authorizer: payer.address, nonce: auth.nonce },
      });
      const { r, s, v } = parseSignature(cancel);
      const receipt =
        form === 'vrs'
          ? await send(relayer, 'cancelAuthorization', [payer.address, auth.nonce, Number(v), r, s])
          : await send(relayer, 'cancelAuthorization', [payer.address, auth.nonce, cancel]);
      const [event] = parseEventLogs({ abi: testUsdcAbi, logs: receipt.logs, eventName: 'AuthorizationCanceled' });
      expect(event?.args).toEqual({ authorizer: payer.address, nonce: auth.nonce });

      const sig = await signAs(payer, auth);
      await expect(send(relayer, 'transferWithAuthorization', vrsArgs(payer.address, auth, sig))).rejects.toThrow(
        'authorization is used or canceled',
      );
      await expect(send(relayer, 'cancelAuthorization', [payer.address, auth.nonce, cancel])).rejects.toThrow(
        'authorization is used or canceled',
      );
    }
  });

  it('receiveWithAuthorization refuses any caller but the payee, and pays the payee when it calls', async () => {
    const auth = await authorization(77n);
    const signature = await payer.signTypedData({
      domain: domain(),
      types: receiveTypes,
      primaryType: 'ReceiveWithAuthorization',
      message: { from: payer.address, ...auth },
    });
    const { r, s, v } = parseSignature(signature);
    const vrs = [payer.address, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, Number(v), r, s];
    await expect(send(relayer, 'receiveWithAuthorization', vrs)).rejects.toThrow('caller must be the payee');
    await expect(send(relayer, 'receiveWithAuthorization', bytesArgs(payer.address, auth, signature))).rejects.toThrow(
      'caller must be the payee',
    );

    const before = await balance(payee.address);
    await send(payee, 'receiveWithAuthorization', bytesArgs(payer.address, auth, signature));
    expect(await balance(payee.address)).toBe(before + 77n);
    // A receive authorization is not a transfer authorization: the typehash differs.
    const again = await authorization(1n);
    const asReceive = await payer.signTypedData({
      domain: domain(),
      types: receiveTypes,
      primaryType: 'ReceiveWithAuthorization',
      message: { from: payer.address, ...again },
    });
    await expect(
      send(relayer, 'transferWithAuthorization', bytesArgs(payer.address, again, asReceive)),
    ).rejects.toThrow('invalid signature');
  });
});

describe('EIP-2612 permit', () => {
  it('sets the allowance, increments the nonce, and refuses a replay or an expired deadline', async () => {
    const read = (functionName: 'nonces', args: readonly [Address]) =>
      publicClient.readContract({ address: BASE_USDC_ADDRESS, abi: testUsdcAbi, functionName, args });
    const nonce = await read('nonces', [payer.address]);
    const deadline = (await now()) + 3600n;
    const message = { owner: payer.address, spender: relayer.address, value: 500n, nonce, deadline };
    const signature = await payer.signTypedData({
      domain: domain(),
      types: permitTypes,
      primaryType: 'Permit',
      message,
    });
    const { r, s, v } = parseSignature(signature);
    const args = [payer.address, relayer.address, 500n, deadline, Number(v), r, s] as const;

    const receipt = await send(relayer, 'permit', args);
    const [approval] = parseEventLogs({ abi: testUsdcAbi, logs: receipt.logs, eventName: 'Approval' });
    expect(approval?.args).toEqual({ owner: payer.address, spender: relayer.address, value: 500n });
    expect(
      await publicClient.readContract({
        address: BASE_USDC_ADDRESS,
        abi: testUsdcAbi,
        functionName: 'allowance',
        args: [payer.address, relayer.address],
      }),
    ).toBe(500n);
    expect(await read('nonces', [payer.address])).toBe(nonce + 1n);
    await expect(send(relayer, 'permit', args)).rejects.toThrow('invalid signature');

    const before = await balance(payee.address);
    await send(relayer, 'transferFrom', [payer.address, payee.address, 200n]);
    expect(await balance(payee.address)).toBe(before + 200n);
    await expect(send(relayer, 'transferFrom', [payer.address, payee.address, 301n])).rejects.toThrow(
      'exceeds allowance',
    );

    const stale = { ...message, nonce: nonce + 1n, deadline: (await now()) - 1n };
    const late = parseSignature(
      await payer.signTypedData({ domain: domain(), types: permitTypes, primaryType: 'Permit', message: stale }),
    );
    await expect(
      send(relayer, 'permit', [payer.address, relayer.address, 500n, stale.deadline, Number(late.v), late.r, late.s]),
    ).rejects.toThrow('permit is expired');
  });
});

describe('production configuration on the devnet', () => {
  it("accepts a signature made for Base mainnet USDC's domain (USD Coin, 2, 8453, canonical address)", async () => {
    // Written out literally, not through our helpers: this is what any Base client would sign.
    const baseDomain = {
      name: 'USD Coin',
      version: '2',
      chainId: 8453,
      verifyingContract: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
    } as const;
    expect(
      await publicClient.readContract({
        address: BASE_USDC_ADDRESS,
        abi: testUsdcAbi,
        functionName: 'DOMAIN_SEPARATOR',
      }),
    ).toBe(domainSeparator({ domain: baseDomain }));

    const auth = await authorization(9n);
    const wallet = createWalletClient({ account: payer, transport: http(devnet.rpcUrl) });
    const signature = await wallet.signTypedData({
      domain: baseDomain,
      types: {
        TransferWithAuthorization: [
          { name: 'from', type: 'address' },
          { name: 'to', type: 'address' },
          { name: 'value', type: 'uint256' },
          { name: 'validAfter', type: 'uint256' },
          { name: 'validBefore', type: 'uint256' },
          { name: 'nonce', type: 'bytes32' },
        ],
      },
      primaryType: 'TransferWithAuthorization',
      message: { from: payer.address, ...auth },
    });
    const before = await balance(payee.address);
    await send(relayer, 'transferWithAuthorization', bytesArgs(payer.address, auth, signature));
    expect(await balance(payee.address)).toBe(before + 9n);
    expect(
      await Promise.all(
        (['name', 'symbol', 'version', 'decimals'] as const).map((functionName) =>
          publicClient.readContract({ address: BASE_USDC_ADDRESS, abi: testUsdcAbi, functionName }),
        ),
      ),
    ).toEqual(['USD Coin', 'USDC', '2', 6]);
  });
});

describe('EIP-1271 contract signers', () => {
  it('accepts a contract wallet whose owner signed, through the bytes form, and refuses anyone else', async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const deployer = createWalletClient({
      account: relayer,
      chain: devnet.chain.viemChain,
      transport: http(devnet.rpcUrl),
    });
    const hash = await deployer.deployContract({
      abi: testWalletAbi,
      bytecode: testWalletBytecode.bytecode,
      args: [owner.address],
    });
    const wallet = (await publicClient.waitForTransactionReceipt({ hash })).contractAddress!;
    await fundUsdc({ rpcUrl: devnet.rpcUrl, to: wallet, amount: 1_000n });

    const auth = await authorization(250n);
    const bySomeoneElse = await signAs(payee, auth, wallet);
    await expect(
      send(relayer, 'transferWithAuthorization', bytesArgs(wallet, auth, bySomeoneElse.signature)),
    ).rejects.toThrow('invalid signature');

    const byOwner = await signAs(owner, auth, wallet);
    const before = await balance(payee.address);
    await send(relayer, 'transferWithAuthorization', bytesArgs(wallet, auth, byOwner.signature));
    expect(await balance(payee.address)).toBe(before + 250n);
    expect(await balance(wallet)).toBe(750n);
  });
});

describe('ERC-20 basics and setup guards', () => {
  it('transfers, refuses overdrafts, lets only the owner mint, and initializes once', async () => {
    const before = await balance(payee.address);
    await send(payer, 'transfer', [payee.address, 5n]);
    expect(await balance(payee.address)).toBe(before + 5n);
    await expect(send(relayer, 'transfer', [payee.address, 1n])).rejects.toThrow('exceeds balance');
    await expect(send(relayer, 'mint', [relayer.address, 1n])).rejects.toThrow('caller is not the owner');
    await expect(send(relayer, 'initialize', ['X', 'X', '1', relayer.address])).rejects.toThrow('already initialized');
  });
});
