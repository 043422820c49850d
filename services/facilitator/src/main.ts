import { DEVNET_ACCOUNTS, isDevnetRpc } from '@agentstack/chain';
import { ConfigError, createLogger, runMain, runUntilSignal } from '@agentstack/core';
import { chainFromConfig, createLocalFacilitator, facilitatorApp } from '@agentstack/x402';
import type { Hex } from 'viem';
import { loadFacilitatorConfig } from './config.js';

async function serve() {
  const config = loadFacilitatorConfig();
  const log = createLogger({ name: 'facilitator', level: config.LOG_LEVEL });
  const chain = chainFromConfig({ ...config, FACILITATOR_URL: 'http://unused' });
  let gasKey = config.FACILITATOR_PRIVATE_KEY as Hex | undefined;
  if (!gasKey) {
    // Only the devnet may fall back to a well-known key; anywhere else that key's funds are public.
    if (!chain.isDevnet || !(await isDevnetRpc(chain.rpcUrl))) {
      throw new ConfigError([
        { variable: 'FACILITATOR_PRIVATE_KEY', message: `required on ${chain.name} (it is not set)` },
      ]);
    }
    gasKey = DEVNET_ACCOUNTS.gas.privateKey;
  }
  const local = createLocalFacilitator({
    rpcUrl: chain.rpcUrl,
    chain: chain.viemChain,
    network: chain.network,
    gasPrivateKey: gasKey.startsWith('0x') ? gasKey : (`0x${gasKey}` as Hex),
    // The devnet mines each transaction at once; a real chain needs patience between polls.
    pollingIntervalMs: chain.isDevnet ? 50 : 1_000,
  });
  log.info({ network: chain.network, gas: local.gasAddress }, 'facilitator ready');
  await runUntilSignal({
    app: facilitatorApp(local.facilitator, log),
    port: config.FACILITATOR_PORT,
    hostname: config.FACILITATOR_HOST,
    log,
    name: 'facilitator',
  });
}

runMain({ serve });
