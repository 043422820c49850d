import { ConfigError } from './config.js';

/**
 * Runs one of a program's commands (`main.ts serve|migrate|seed`, default the first listed) and turns a
 * configuration error into a one-paragraph message naming the variables, not a stack trace.
 */
export function runMain(commands: Record<string, () => Promise<unknown>>, argv = process.argv.slice(2)): void {
  const names = Object.keys(commands);
  const name = argv[0] ?? names[0];
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    console.error(`unknown command ${JSON.stringify(name)}; expected one of: ${names.join(', ')}`);
    process.exit(2);
  }
  command().catch((err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  });
}
