import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'smol-toml';

export interface Hand {
  name: string;
  description: string;
  tools: string[];
}

/** Where the Hand manifests live: `HANDS_DIR` (the runtime reads the same variable), else the repo's data/hands. */
export const handsDir = () =>
  resolve(/*turbopackIgnore: true*/ process.env.HANDS_DIR ?? join(process.cwd(), '..', '..', 'data', 'hands'));

/** The Hands as the runtime will run them, read from their TOML manifests (at request time). */
export async function loadHands(dir = handsDir()): Promise<Hand[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.toml')).sort();
  } catch {
    return [];
  }
  const hands: Hand[] = [];
  for (const file of files) {
    try {
      const doc = parse(await readFile(join(dir, file), 'utf8')) as Record<string, unknown>;
      if (typeof doc.name !== 'string') continue;
      hands.push({
        name: doc.name,
        description: typeof doc.description === 'string' ? doc.description : '',
        tools: Array.isArray(doc.tools) ? doc.tools.filter((t): t is string => typeof t === 'string') : [],
      });
    } catch {
      // A manifest that does not parse is the runtime's problem to report; the landing page skips it.
    }
  }
  // The general assistant first, then alphabetical.
  return hands.sort(
    (a, b) => Number(b.name === 'assistant') - Number(a.name === 'assistant') || a.name.localeCompare(b.name),
  );
}
