import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** One HTTP request over a unix socket (what the platform uses to reach a runtime). */
export function requestOverSocket(
  socketPath: string,
  path: string,
  { headers = {}, timeoutMs = 2_000 }: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${path} in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** True when the runtime's `GET /health` answers 200 now. */
export async function runtimeHealthy(socketPath: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    return (await requestOverSocket(socketPath, '/health', { timeoutMs })).status === 200;
  } catch {
    return false;
  }
}

/**
 * Polls `GET /health` until it answers 200. `gone()` names a reason to give up early (the runtime exited),
 * so a crashing runtime fails the start at once instead of at the deadline.
 */
export async function waitForRuntimeHealth(
  socketPath: string,
  { timeoutMs, gone }: { timeoutMs: number; gone?: () => string | undefined },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    const reason = gone?.();
    if (reason) throw new Error(`the runtime exited before it was healthy: ${reason}`);
    try {
      const { status } = await requestOverSocket(socketPath, '/health', {
        timeoutMs: Math.max(100, Math.min(2_000, deadline - Date.now())),
      });
      if (status === 200) return;
      last = `GET /health answered ${status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`the runtime was not healthy within ${timeoutMs} ms (${last})`);
}
