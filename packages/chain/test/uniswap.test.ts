import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPublicClient,
  createWalletClient,
  encodePacked,
  getContractAddress,
  http,
  keccak256,
  maxUint256,
  parseEther,
  zeroAddress,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEVNET_UNISWAP,
  type Devnet,
  deployUniswapV2,
  fundEth,
  startDevnet,
  testUsdcAbi,
  uniswapV2PairAbi,
  uniswapV2RouterAbi,
  usdcBalance,
} from '../src/index.js';

let devnet: Devnet;
const dirs: string[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'uniswap-devnet-'));
  chmodSync(dir, 0o755);
  dirs.push(dir);
  devnet = await startDevnet({ uniswap: true, statePath: join(dir, 'state.json') });
});

afterAll(async () => {
  await devnet?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const clientFor = (d: Devnet) =>
  createPublicClient({ chain: d.chain.viemChain, transport: http(d.rpcUrl), pollingInterval: 50 });

describe('Uniswap V2 on the devnet (published npm build artefacts)', () => {
  it('places factory, router and WETH at fixed addresses, with a seeded USDC/WETH pool', async () => {
    const client = clientFor(devnet);
    expect(devnet.uniswap).toMatchObject(DEVNET_UNISWAP);
    expect(devnet.uniswap?.pair).not.toBe(zeroAddress);
    expect(
      await client.readContract({ address: DEVNET_UNISWAP.router, abi: uniswapV2RouterAbi, functionName: 'WETH' }),
    ).toBe(DEVNET_UNISWAP.weth);
    expect(
      await client.readContract({ address: DEVNET_UNISWAP.router, abi: uniswapV2RouterAbi, functionName: 'factory' }),
    ).toBe(DEVNET_UNISWAP.factory);
    const [r0, r1] = await client.readContract({
      address: devnet.uniswap!.pair,
      abi: uniswapV2PairAbi,
      functionName: 'getReserves',
    });
    // 2,500,000 USDC against 1,000 ETH, in whichever token order the pair sorted them.
    expect([r0, r1].sort()).toEqual([1_000n * 10n ** 18n, 2_500_000_000_000n].sort());
    // Router02 finds pairs by CREATE2 with a hard-coded init code hash: the factory's pairs must sit there.
    const [token0, token1] = [devnet.usdc, DEVNET_UNISWAP.weth].sort((a, b) =>
      a.toLowerCase() < b.toLowerCase() ? -1 : 1,
    );
    const predicted = getContractAddress({
      opcode: 'CREATE2',
      from: DEVNET_UNISWAP.factory,
      salt: keccak256(encodePacked(['address', 'address'], [token0!, token1!])),
      bytecodeHash: '0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f',
    });
    expect(devnet.uniswap?.pair).toBe(predicted);
  });

  it('swaps ETH→USDC and USDC→ETH through the router at the quoted price', async () => {
    const client = clientFor(devnet);
    const trader = privateKeyToAccount(generatePrivateKey());
    await fundEth({ rpcUrl: devnet.rpcUrl, to: trader.address, amount: parseEther('2') });
    const wallet = createWalletClient({
      account: trader,
      chain: devnet.chain.viemChain,
      transport: http(devnet.rpcUrl),
    });
    const router = DEVNET_UNISWAP.router;
    const path = [DEVNET_UNISWAP.weth, devnet.usdc] as const;
    const [, quotedUsdc] = await client.readContract({
      address: router,
      abi: uniswapV2RouterAbi,
      functionName: 'getAmountsOut',
      args: [parseEther('1'), [...path]],
    });
    // ~2,500 USDC minus the 0.3% fee and the price impact of 0.1% of the pool.
    expect(quotedUsdc).toBeGreaterThan(2_480_000_000n);
    expect(quotedUsdc).toBeLessThan(2_500_000_000n);
    const { timestamp } = await client.getBlock();
    const hash = await wallet.writeContract({
      address: router,
      abi: uniswapV2RouterAbi,
      functionName: 'swapExactETHForTokens',
      args: [quotedUsdc!, [...path], trader.address, timestamp + 60n],
      value: parseEther('1'),
    });
    expect((await client.waitForTransactionReceipt({ hash })).status).toBe('success');
    expect(await usdcBalance(client, trader.address, devnet.usdc)).toBe(quotedUsdc);

    // And back: half the USDC for ETH.
    const half = quotedUsdc! / 2n;
    const back = [devnet.usdc, DEVNET_UNISWAP.weth] as const;
    await client.waitForTransactionReceipt({
      hash: await wallet.writeContract({
        address: devnet.usdc,
        abi: testUsdcAbi,
        functionName: 'approve',
        args: [router, maxUint256],
      }),
    });
    const [, quotedEth] = await client.readContract({
      address: router,
      abi: uniswapV2RouterAbi,
      functionName: 'getAmountsOut',
      args: [half, [...back]],
    });
    const ethBefore = await client.getBalance({ address: trader.address });
    const receipt = await client.waitForTransactionReceipt({
      hash: await wallet.writeContract({
        address: router,
        abi: uniswapV2RouterAbi,
        functionName: 'swapExactTokensForETH',
        args: [half, quotedEth!, [...back], trader.address, timestamp + 600n],
      }),
    });
    expect(receipt.status).toBe('success');
    const gas = receipt.gasUsed * receipt.effectiveGasPrice;
    expect(await client.getBalance({ address: trader.address })).toBe(ethBefore + quotedEth! - gas);
    expect(quotedEth).toBeGreaterThan(parseEther('0.49'));
  });

  it('is found in place after a restart from saved state (deploying again is a no-op)', async () => {
    const statePath = join(dirs[0]!, 'state.json');
    await devnet.stop();
    devnet = await startDevnet({ uniswap: true, statePath });
    const again = await deployUniswapV2({ rpcUrl: devnet.rpcUrl });
    expect(again).toEqual(devnet.uniswap);
    const client = clientFor(devnet);
    expect(await client.getTransactionCount({ address: devnet.accounts.uniswap.address })).toBeGreaterThanOrEqual(3);
  });
});
