import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkHost } from '../src/host.js';

const fixture = fileURLToPath(new URL('./fixtures/check-host.ts', import.meta.url));
const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));

describe('host checks', () => {
  it('finds everything a sandbox needs on this machine (CI runs as root)', () => {
    const report = checkHost();
    expect(report.problems).toEqual([]);
    expect(report.root).toBe(true);
    for (const controller of ['memory', 'cpu', 'cpuacct', 'pids']) {
      expect(report.cgroupParents.get(controller as never)).toMatch(/agentstack-sandbox$/);
    }
  });

  it('refuses to start unprivileged and says why, instead of running without limits', () => {
    const result = spawnSync(
      '/usr/bin/setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '--', tsx, fixture],
      { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, HOME: '/tmp' } },
    );
    expect(result.status, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(out.ok).toBe(false);
    expect(out.root).toBe(false);
    expect(out.problems.join('\n')).toMatch(/not running as root: each sandbox runs as its own uid in cgroups/);
    expect(out.refused).toEqual(out.problems);
  });
});
