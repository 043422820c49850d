import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_ARCHES,
  buildSeccompProgram,
  CLONE_NAMESPACE_FLAGS,
  ENOSYS,
  EPERM,
  evaluateSeccomp,
  REFUSED_SYSCALLS,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  type SeccompArch,
  SYSCALL_NUMBERS,
  serializeSeccompProgram,
} from '../src/seccomp.js';

const ARCHES: SeccompArch[] = ['x64', 'arm64'];
const SIGCHLD = 17;

describe.each(ARCHES)('seccomp program for %s', (arch) => {
  const program = buildSeccompProgram(arch);
  const numbers = SYSCALL_NUMBERS[arch];
  const call = (name: string, args: number[] = []) =>
    evaluateSeccomp(program, { arch: AUDIT_ARCHES[arch], nr: numbers[name] as number, args });

  it('refuses every listed syscall that exists on the architecture with EPERM', () => {
    const present = Object.keys(REFUSED_SYSCALLS).filter((name) => numbers[name] !== undefined);
    expect(present.length).toBeGreaterThan(45);
    for (const name of present) expect([name, call(name)]).toEqual([name, SECCOMP_RET_ERRNO | EPERM]);
  });

  it('allows ordinary syscalls', () => {
    // read, write, openat, exit_group on each architecture.
    const ordinary = arch === 'x64' ? [0, 1, 257, 231, 59] : [63, 64, 56, 94, 221];
    for (const nr of ordinary)
      expect(evaluateSeccomp(program, { arch: AUDIT_ARCHES[arch], nr })).toBe(SECCOMP_RET_ALLOW);
  });

  it('allows fork-like clone and refuses clone with any namespace flag', () => {
    expect(call('clone', [SIGCHLD])).toBe(SECCOMP_RET_ALLOW);
    // pthread_create's flags (CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID).
    expect(call('clone', [0x3d0f00])).toBe(SECCOMP_RET_ALLOW);
    for (let bit = 0; bit < 32; bit++) {
      const flag = 2 ** bit;
      if ((CLONE_NAMESPACE_FLAGS & flag) === 0) continue;
      expect(call('clone', [flag | SIGCHLD])).toBe(SECCOMP_RET_ERRNO | EPERM);
    }
  });

  it('answers clone3 with ENOSYS so libc falls back to the inspectable clone', () => {
    expect(call('clone3')).toBe(SECCOMP_RET_ERRNO | ENOSYS);
  });

  it('refuses terminal injection ioctls, also with high bits set, and allows others', () => {
    expect(call('ioctl', [0, 0x5412])).toBe(SECCOMP_RET_ERRNO | EPERM);
    expect(call('ioctl', [0, 0x541c])).toBe(SECCOMP_RET_ERRNO | EPERM);
    // TCGETS
    expect(call('ioctl', [0, 0x5401])).toBe(SECCOMP_RET_ALLOW);
  });

  it('kills a process calling through a foreign architecture', () => {
    const other = arch === 'x64' ? AUDIT_ARCHES.arm64 : AUDIT_ARCHES.x64;
    expect(evaluateSeccomp(program, { arch: other, nr: 0 })).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(evaluateSeccomp(program, { arch: 0x4000_0003, nr: 0 })).toBe(SECCOMP_RET_KILL_PROCESS); // i386
  });

  it('serializes to 8 bytes per instruction with jumps that fit in 8 bits', () => {
    const bytes = serializeSeccompProgram(program);
    expect(bytes.length).toBe(program.length * 8);
    expect(program.length).toBeLessThan(4096); // BPF_MAXINSNS
    for (const ins of program) {
      expect(ins.jt).toBeLessThan(256);
      expect(ins.jf).toBeLessThan(256);
    }
    expect(bytes.readUInt16LE(0)).toBe(program[0]?.code);
    expect(bytes.readUInt32LE(4)).toBe(program[0]?.k);
  });
});

it('refuses the x32 ABI on x86-64', () => {
  const program = buildSeccompProgram('x64');
  expect(evaluateSeccomp(program, { arch: AUDIT_ARCHES.x64, nr: 0x4000_0000 + 0 })).toBe(SECCOMP_RET_ERRNO | EPERM);
});

// The numbers are written out in the module; where the kernel headers are installed, check them against it.
const HEADERS: Record<SeccompArch, string> = {
  x64: '/usr/include/x86_64-linux-gnu/asm/unistd_64.h',
  arm64: '/usr/include/asm-generic/unistd.h',
};

describe.each(ARCHES)('syscall numbers for %s', (arch) => {
  const header = HEADERS[arch];
  it.runIf(existsSync(header))(`match ${header}`, () => {
    const text = readFileSync(header, 'utf8');
    let checked = 0;
    for (const [name, nr] of Object.entries(SYSCALL_NUMBERS[arch])) {
      const match = new RegExp(`#define __NR(?:3264)?_${name}\\s+(\\d+)`).exec(text);
      if (!match) continue; // newer than the installed headers
      expect([name, Number(match[1])]).toEqual([name, nr]);
      checked++;
    }
    expect(checked).toBeGreaterThan(40);
  });
});
