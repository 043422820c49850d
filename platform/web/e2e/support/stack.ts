import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@agentstack/core';
import { discoverServices, type RunningStack, startStack } from '@agentstack/stack';

export interface WebStack {
  stack: RunningStack;
  /** The web app's origin, as the browser uses it. */
  web: string;
  api: string;
  llmProxy: string;
  dataDir: string;
  stop(): Promise<void>;
}

/** Services the web app needs; the rest of the stack (wallet, relay, spawn, facilitator) is not started. */
export const WEB_SERVICES = ['demo-model', 'platform-api', 'web'];

/**
 * The real stack, started the way `start --demo` starts it (stack/src/start.ts), on free ports and in a
 * temporary data directory: embedded PostgreSQL, the demo model, the platform API (Better Auth, LLM proxy)
 * and the web app (built if its sources changed). Stopped by process id.
 */
export async function startWebStack(extraEnv: Record<string, string> = {}): Promise<WebStack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'web-e2e-'));
  // As root, PostgreSQL runs as an unprivileged user that must be able to enter the data directory.
  await chmod(dataDir, 0o755);
  const env: Record<string, string | undefined> = { ...process.env, DEVNET_PORT: String(await freePort()) };
  for (const service of discoverServices()) {
    for (const variable of [service.port.env, ...service.extraPorts.map((p) => p.env)]) {
      env[variable] = String(await freePort());
    }
  }
  // The browser test signs up and in more than the default 10 times a minute from one address.
  env.AUTH_RATE_LIMIT_CREDENTIALS_MAX = '1000';
  env.LOG_LEVEL = 'warn';
  delete env.PLATFORM_PUBLIC_URL;
  Object.assign(env, extraEnv);
  let stack: RunningStack;
  try {
    stack = await startStack({ dataDir, demo: true, only: WEB_SERVICES, env, say: (line) => console.log(line) });
  } catch (err) {
    // startStack stopped whatever it had started; the data directory is ours to remove.
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const web = stack.endpoints.services.web?.url;
  const api = stack.endpoints.services['platform-api']?.url;
  const proxyPort = stack.endpoints.services['platform-api']?.ports?.['llm-proxy'];
  if (!web || !api || !proxyPort) {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`the stack did not start the web app and the platform API: ${JSON.stringify(stack.endpoints)}`);
  }
  return {
    stack,
    web,
    api,
    llmProxy: `http://127.0.0.1:${proxyPort}`,
    dataDir,
    async stop() {
      await stack.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
