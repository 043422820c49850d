import { describe, expect, it } from 'vitest';
import { isProcessRunning as alive, freePort, startProcess, waitFor } from '../src/process.js';

describe('managed processes', () => {
  it('stops the whole process group, children included', async () => {
    const proc = startProcess('bash', ['-c', 'sleep 30 & echo child:$!; wait']);
    const childPid = Number(await waitFor(() => /child:(\d+)/.exec(proc.output())?.[1], { what: 'child pid' }));
    expect(alive(childPid)).toBe(true);
    await proc.stop(1_000);
    await waitFor(() => !alive(childPid), { what: 'child to exit' });
    expect(alive(proc.pid)).toBe(false);
  });

  it('hands out usable ports', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(1024);
  });

  it('waitFor reports what it waited for', async () => {
    await expect(waitFor(() => false, { timeoutMs: 100, what: 'the moon' })).rejects.toThrow('the moon');
  });
});
