#!/usr/bin/env node
// The two front-door commands, runnable with nothing but Node 20 and npm:
//   npm start  → install dependencies, then start the whole stack (`pnpm stack start`)
//   npm test   → install dependencies, then lint + typecheck + every test (`pnpm check`)
// Extra arguments pass through: `npm start -- --fresh --demo`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PNPM_VERSION = '10.34.9';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [command, ...rest] = process.argv.slice(2);

function run(cmd, args, options = {}) {
  const result = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function pnpmCommand() {
  const probe = spawnSync('pnpm', ['--version'], { encoding: 'utf8' });
  if (probe.status === 0 && probe.stdout.trim() === PNPM_VERSION) return ['pnpm', []];
  console.log(`› installing pnpm ${PNPM_VERSION}`);
  if (run('npm', ['install', '--global', `pnpm@${PNPM_VERSION}`], { stdio: 'ignore' }) === 0) return ['pnpm', []];
  // No permission for a global install: run it through npx instead.
  return ['npx', ['--yes', `pnpm@${PNPM_VERSION}`]];
}

const [pnpm, prefix] = pnpmCommand();
const pn = (...args) => run(pnpm, [...prefix, ...args]);

const frozen = existsSync(join(root, 'pnpm-lock.yaml')) ? ['--frozen-lockfile'] : [];
if (pn('install', ...frozen, '--prefer-offline') !== 0) process.exit(1);

switch (command) {
  case 'start':
    process.exit(pn('stack', 'start', ...rest));
    break;
  case 'test':
    process.exit(pn('check', ...rest));
    break;
  default:
    console.error('usage: node scripts/bootstrap.mjs start|test [args]');
    process.exit(2);
}
