import type { Address, Hex } from 'viem';

export interface DevnetAccount {
  address: Address;
  privateKey: Hex;
}

/**
 * anvil's default accounts, derived from the public test mnemonic `test test … junk` that anvil prints on start.
 * Known to everyone: only ever for the devnet, never take a devnet key from the environment or use these elsewhere.
 */
export const DEVNET_MNEMONIC = 'test test test test test test test test test test test junk';
const ANVIL_ACCOUNTS: DevnetAccount[] = [
  ['0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266', '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80'],
  ['0x70997970C51812dc3A010C7d01b50e0d17dc79C8', '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d'],
  ['0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC', '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a'],
  ['0x90F79bf6EB2c4f870365E785982E1f101E93b906', '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6'],
  ['0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65', '0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a'],
  ['0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc', '0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba'],
  ['0x976EA74026E726554dB657fA54763abd0C3a0aa9', '0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e'],
].map(([address, privateKey]) => ({ address: address as Address, privateKey: privateKey as Hex }));

/** What each well-known account is for, so services and tests agree without passing keys around. */
export interface DevnetAccounts {
  /** Places the contracts (sends `initialize`). */
  deployer: DevnetAccount;
  /** Pays gas for settlement (the local x402 facilitator's signer). */
  gas: DevnetAccount;
  /** Owner of the test USDC: the only account allowed to mint. */
  faucet: DevnetAccount;
  /** Spare accounts for tests and demos. */
  payer: DevnetAccount;
  payee: DevnetAccount;
  /** Relays wallet.sh's gasless transfers and swaps (its own account, so its nonces never race the facilitator's). */
  walletRelayer: DevnetAccount;
  /** Deploys Uniswap V2 with nonces 0–2, which fixes the contracts' addresses on every devnet. */
  uniswap: DevnetAccount;
}

export const DEVNET_ACCOUNTS: DevnetAccounts = {
  deployer: ANVIL_ACCOUNTS[0]!,
  gas: ANVIL_ACCOUNTS[1]!,
  faucet: ANVIL_ACCOUNTS[2]!,
  payer: ANVIL_ACCOUNTS[3]!,
  payee: ANVIL_ACCOUNTS[4]!,
  walletRelayer: ANVIL_ACCOUNTS[5]!,
  uniswap: ANVIL_ACCOUNTS[6]!,
};
