import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface WalkthroughStep {
  file: string;
  title: string;
  caption: string;
}

/** The product walkthrough: real screenshots the browser test takes of the running product (public/walkthrough). */
export async function loadWalkthrough(): Promise<WalkthroughStep[]> {
  try {
    const text = await readFile(join(process.cwd(), 'public', 'walkthrough', 'walkthrough.json'), 'utf8');
    const steps = JSON.parse(text) as WalkthroughStep[];
    return Array.isArray(steps) ? steps.filter((s) => typeof s.file === 'string' && /^[\w.-]+\.png$/.test(s.file)) : [];
  } catch {
    return [];
  }
}
