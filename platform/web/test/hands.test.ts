import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHands } from '../src/lib/hands';

describe('loadHands', () => {
  it('reads the repository Hands, the assistant first', async () => {
    const hands = await loadHands(join(import.meta.dirname, '..', '..', '..', 'data', 'hands'));
    expect(hands.map((h) => h.name)).toEqual(['assistant', 'coder', 'researcher']);
    expect(hands[0]?.tools).toContain('shell');
    expect(hands[1]?.description).toMatch(/software/);
  });

  it('skips manifests that do not parse, and a missing folder is no Hands', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hands-'));
    try {
      await writeFile(join(dir, 'bad.toml'), 'name = [unclosed');
      await writeFile(join(dir, 'ok.toml'), 'name = "ok"\ndescription = "fine"\n');
      expect((await loadHands(dir)).map((h) => h.name)).toEqual(['ok']);
      expect(await loadHands(join(dir, 'missing'))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
