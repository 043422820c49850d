import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkArtifacts, defaultPaths } from '../scripts/compile.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('committed contract artifacts', () => {
  it('match a fresh compile of contracts/*.sol (else run `pnpm --filter @agentstack/chain compile`)', () => {
    expect(checkArtifacts()).toEqual([]);
  }, 30_000);

  it('are reported stale when a source changes without recompiling', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentstack-artifacts-'));
    dirs.push(dir);
    const paths = {
      contractsDir: join(dir, 'contracts'),
      artifactsDir: join(dir, 'artifacts'),
      abiModule: join(dir, 'abi.ts'),
    };
    cpSync(defaultPaths.contractsDir, paths.contractsDir, { recursive: true });
    cpSync(defaultPaths.artifactsDir, paths.artifactsDir, { recursive: true });
    cpSync(defaultPaths.abiModule, paths.abiModule);
    writeFileSync(join(paths.contractsDir, 'Multicall3.sol'), '// edited\n', { flag: 'a' });
    rmSync(join(paths.artifactsDir, 'TestWallet.json'));

    expect(checkArtifacts(paths)).toEqual([
      'contracts/Multicall3.sol changed since artifacts/Multicall3.json was compiled (source sha256 differs)',
      'artifacts/TestWallet.json is missing',
    ]);
  });
});
