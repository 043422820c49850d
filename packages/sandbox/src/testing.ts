import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSandboxManager, type SandboxManager, type SandboxManagerOptions } from './manager.js';

export interface TestSandboxManager {
  manager: SandboxManager;
  stateDir: string;
  /** Destroys every sandbox the manager has on disk and removes the state directory. */
  cleanup(): Promise<void>;
}

/**
 * A manager over a fresh temporary state directory. It shares the machine-wide uid registry with every
 * other manager (so tests never take a uid a real sandbox holds).
 */
export async function createTestSandboxManager(
  options: Partial<SandboxManagerOptions> = {},
): Promise<TestSandboxManager> {
  const stateDir = await mkdtemp(join(tmpdir(), 'agentstack-sandbox-test-'));
  await chmod(stateDir, 0o711);
  const manager = await createSandboxManager({ stateDir, ...options });
  return {
    manager,
    stateDir,
    async cleanup() {
      for (const info of await manager.list()) {
        const sandbox = await manager.open(info.id);
        await sandbox.destroy().catch(() => undefined);
      }
      await manager.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
