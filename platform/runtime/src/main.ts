import { runMain, runUntilSignal } from '@agentstack/core';
import { startBridges } from './bridges.js';
import { loadRuntimeConfig } from './config.js';
import { HandLoadError } from './hands.js';
import { buildRuntime, RUNTIME_VERSION } from './runtime.js';

async function serve() {
  const config = loadRuntimeConfig();
  let runtime: Awaited<ReturnType<typeof buildRuntime>>;
  try {
    runtime = await buildRuntime(config);
  } catch (err) {
    // A bad Hand manifest is a configuration problem: say which file and field, no stack trace.
    if (err instanceof HandLoadError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  // Bridges first: the first chat may come as soon as the socket listens, and it needs the LLM proxy.
  const bridges = await startBridges(config.RUNTIME_BRIDGES);
  runtime.log.info(
    {
      tenantId: config.TENANT_ID,
      version: RUNTIME_VERSION,
      workspace: runtime.workspace,
      hands: [...runtime.hands.keys()],
      bridges: config.RUNTIME_BRIDGES.map((b) => `${b.host}:${b.port}`),
    },
    'runtime ready',
  );
  await runUntilSignal({
    app: runtime.app,
    port: config.RUNTIME_PORT,
    hostname: config.RUNTIME_HOST,
    ...(config.RUNTIME_SOCKET ? { socketPath: config.RUNTIME_SOCKET } : {}),
    log: runtime.log,
    name: 'runtime',
    onShutdown: async () => {
      await bridges.close();
      await runtime.close();
    },
  });
}

runMain({ serve });
