import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { DEFAULT_TENANT_IMAGE } from './docker.js';

const run = promisify(execFile);
const BUILD_SCRIPT = fileURLToPath(new URL('../../../../deploy/tenant/build.sh', import.meta.url));

/**
 * Makes sure the tenant image exists, building it with deploy/tenant/build.sh (idempotent: seconds when
 * nothing changed, ~2 min for the first base build on a machine). Throws naming what is missing when there
 * is no Docker engine.
 */
export async function ensureTenantImage(
  options: { image?: string; docker?: Docker; env?: Record<string, string> } = {},
): Promise<string> {
  const docker = options.docker ?? new Docker();
  await docker.ping().catch((err: Error) => {
    throw new Error(`no Docker engine (${err.message}): install docker.io and start dockerd`);
  });
  const image = options.image ?? DEFAULT_TENANT_IMAGE;
  const { stdout } = await run(BUILD_SCRIPT, [], {
    env: { ...process.env, ...options.env, TENANT_IMAGE: image },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.trim().split('\n').pop() as string;
}
