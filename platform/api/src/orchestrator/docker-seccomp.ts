import { CLONE_NAMESPACE_FLAGS, REFUSED_SYSCALLS } from '@agentstack/sandbox';

/**
 * The tenant containers' seccomp profile (Docker's JSON format, passed as `seccomp=<json>`).
 *
 * Docker's built-in default allows `ptrace` on kernels ≥ 4.8 (a tenant could then debug its own runtime and
 * read its secrets from memory), so tenants get this profile instead: the same refused list as the sandbox
 * backend (`@agentstack/sandbox`'s REFUSED_SYSCALLS: mounts, ptrace, namespaces, kernel modules, keyrings,
 * bpf, io_uring, …, each EPERM), `clone` refused when it asks for a new namespace, `clone3` answering ENOSYS
 * (libc falls back to `clone`, which is inspected) and the terminal-injection ioctls refused. Applied for
 * every ABI of the machine (x86-64, i386, x32 / arm64, arm), so a foreign ABI cannot dodge it. Names the
 * container engine's libseccomp does not know are skipped by it.
 */
export function tenantSeccompProfile(arch: string = process.arch): string {
  const architectures =
    arch === 'arm64' ? ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'] : ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
  const EPERM = 1;
  const ENOSYS = 38;
  const namespaceFlags: number[] = [];
  for (let bit = 0; bit < 32; bit++) {
    const flag = 2 ** bit;
    if ((CLONE_NAMESPACE_FLAGS & flag) !== 0) namespaceFlags.push(flag);
  }
  const profile = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures,
    syscalls: [
      { names: Object.keys(REFUSED_SYSCALLS), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      // One rule per namespace flag: refused when (flags & flag) == flag.
      ...namespaceFlags.map((flag) => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
      // TIOCSTI / TIOCLINUX; the kernel truncates the request to 32 bits, so compare the low word only.
      ...[0x5412, 0x541c].map((request) => ({
        names: ['ioctl'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 1, value: 0xffff_ffff, valueTwo: request, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
    ],
  };
  return JSON.stringify(profile);
}
