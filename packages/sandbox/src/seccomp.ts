/**
 * The sandbox's seccomp filter, written as a classic BPF program (what `bwrap --seccomp FD` loads).
 *
 * Shape: check the architecture (a foreign ABI kills the process: its syscall numbers mean other things),
 * then compare the syscall number against the refused list, each refusal answering EPERM; `clone` is refused
 * only when it asks for a new namespace; `clone3` answers ENOSYS (its flags sit behind a pointer BPF cannot
 * read, and libc then falls back to `clone`, which we can inspect); `ioctl` refuses the terminal-injection
 * requests. Everything else is allowed: the other walls (uid, namespaces, no capabilities, cgroups) do the rest.
 */

export type SeccompArch = 'x64' | 'arm64';

/** One `struct sock_filter`: 16-bit opcode, two 8-bit jump offsets, 32-bit constant. */
export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD_W_ABS = 0x00 | 0x00 | 0x20;
const JMP_JEQ_K = 0x05 | 0x10 | 0x00;
const JMP_JGE_K = 0x05 | 0x30 | 0x00;
const JMP_JSET_K = 0x05 | 0x40 | 0x00;
const RET_K = 0x06 | 0x00;

export const SECCOMP_RET_KILL_PROCESS = 0x8000_0000;
export const SECCOMP_RET_ERRNO = 0x0005_0000;
export const SECCOMP_RET_ALLOW = 0x7fff_0000;
export const EPERM = 1;
export const ENOSYS = 38;

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
/** Low 32 bits of args[i] on a little-endian machine (both supported architectures are). */
const argLow = (i: number) => 16 + 8 * i;

const AUDIT_ARCH: Record<SeccompArch, number> = { x64: 0xc000_003e, arm64: 0xc000_00b7 };
/** x86-64's x32 ABI sets this bit in the syscall number; nothing in the sandbox needs it. */
const X32_SYSCALL_BIT = 0x4000_0000;

/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (the low byte is the exit signal). */
export const CLONE_NAMESPACE_FLAGS =
  0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

/**
 * Refused with EPERM, by name, and why. Numbers per architecture below; a name missing on an architecture
 * (e.g. `iopl` on arm64) does not exist there.
 */
export const REFUSED_SYSCALLS: Record<string, string> = {
  mount: 'no mounts',
  umount2: 'no unmounts',
  pivot_root: 'no root changes',
  chroot: 'no root changes',
  fsopen: 'new mount API',
  fsconfig: 'new mount API',
  fsmount: 'new mount API',
  fspick: 'new mount API',
  move_mount: 'new mount API',
  open_tree: 'new mount API',
  open_tree_attr: 'new mount API',
  mount_setattr: 'new mount API',
  ptrace: 'no debugging of other processes',
  process_vm_readv: 'reads another process’s memory',
  process_vm_writev: 'writes another process’s memory',
  pidfd_getfd: 'steals another process’s file descriptors',
  kcmp: 'inspects other processes’ kernel objects',
  unshare: 'no new namespaces',
  setns: 'no joining namespaces',
  init_module: 'kernel modules',
  finit_module: 'kernel modules',
  delete_module: 'kernel modules',
  create_module: 'kernel modules (legacy)',
  query_module: 'kernel modules (legacy)',
  get_kernel_syms: 'kernel modules (legacy)',
  kexec_load: 'replacing the kernel',
  kexec_file_load: 'replacing the kernel',
  bpf: 'eBPF programs',
  perf_event_open: 'performance counters (side channels)',
  keyctl: 'kernel keyrings are not namespaced',
  add_key: 'kernel keyrings are not namespaced',
  request_key: 'kernel keyrings are not namespaced',
  swapon: 'swap',
  swapoff: 'swap',
  reboot: 'reboot',
  acct: 'process accounting',
  settimeofday: 'the clock is the host’s',
  clock_settime: 'the clock is the host’s',
  clock_adjtime: 'the clock is the host’s',
  adjtimex: 'the clock is the host’s',
  syslog: 'the kernel log',
  uselib: 'obsolete loader',
  userfaultfd: 'a common exploitation primitive',
  open_by_handle_at: 'bypasses path-based confinement',
  name_to_handle_at: 'pairs with open_by_handle_at',
  quotactl: 'disk quotas',
  quotactl_fd: 'disk quotas',
  ioperm: 'hardware I/O ports',
  iopl: 'hardware I/O ports',
  modify_ldt: 'segment descriptors (exploitation primitive)',
  lookup_dcookie: 'kernel profiling',
  nfsservctl: 'obsolete NFS server control',
  vhangup: 'terminal hangup of other sessions',
  sethostname: 'host name is fixed at start',
  setdomainname: 'domain name is fixed at start',
  io_uring_setup: 'io_uring (large kernel attack surface)',
  io_uring_enter: 'io_uring',
  io_uring_register: 'io_uring',
  _sysctl: 'obsolete sysctl',
};

/** Syscall numbers (from the kernel's syscall_64.tbl and asm-generic/unistd.h). */
export const SYSCALL_NUMBERS: Record<SeccompArch, Record<string, number>> = {
  x64: {
    ioctl: 16,
    clone: 56,
    ptrace: 101,
    syslog: 103,
    uselib: 134,
    vhangup: 153,
    modify_ldt: 154,
    pivot_root: 155,
    _sysctl: 156,
    adjtimex: 159,
    chroot: 161,
    acct: 163,
    settimeofday: 164,
    mount: 165,
    umount2: 166,
    swapon: 167,
    swapoff: 168,
    reboot: 169,
    sethostname: 170,
    setdomainname: 171,
    iopl: 172,
    ioperm: 173,
    create_module: 174,
    init_module: 175,
    delete_module: 176,
    get_kernel_syms: 177,
    query_module: 178,
    quotactl: 179,
    nfsservctl: 180,
    lookup_dcookie: 212,
    clock_settime: 227,
    kexec_load: 246,
    add_key: 248,
    request_key: 249,
    keyctl: 250,
    unshare: 272,
    perf_event_open: 298,
    name_to_handle_at: 303,
    open_by_handle_at: 304,
    clock_adjtime: 305,
    setns: 308,
    process_vm_readv: 310,
    process_vm_writev: 311,
    kcmp: 312,
    finit_module: 313,
    kexec_file_load: 320,
    bpf: 321,
    userfaultfd: 323,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    clone3: 435,
    pidfd_getfd: 438,
    mount_setattr: 442,
    quotactl_fd: 443,
    open_tree_attr: 467,
  },
  arm64: {
    lookup_dcookie: 18,
    ioctl: 29,
    umount2: 39,
    mount: 40,
    pivot_root: 41,
    nfsservctl: 42,
    chroot: 51,
    vhangup: 58,
    quotactl: 60,
    acct: 89,
    unshare: 97,
    kexec_load: 104,
    init_module: 105,
    delete_module: 106,
    clock_settime: 112,
    syslog: 116,
    ptrace: 117,
    reboot: 142,
    sethostname: 161,
    setdomainname: 162,
    settimeofday: 170,
    adjtimex: 171,
    add_key: 217,
    request_key: 218,
    keyctl: 219,
    clone: 220,
    swapon: 224,
    swapoff: 225,
    perf_event_open: 241,
    name_to_handle_at: 264,
    open_by_handle_at: 265,
    clock_adjtime: 266,
    setns: 268,
    process_vm_readv: 270,
    process_vm_writev: 271,
    kcmp: 272,
    finit_module: 273,
    bpf: 280,
    userfaultfd: 282,
    kexec_file_load: 294,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    clone3: 435,
    pidfd_getfd: 438,
    mount_setattr: 442,
    quotactl_fd: 443,
    open_tree_attr: 467,
  },
};

export function currentSeccompArch(): SeccompArch {
  if (process.arch === 'x64' || process.arch === 'arm64') return process.arch;
  throw new Error(`no seccomp filter for ${process.arch}: the sandbox supports x86-64 and arm64`);
}

const stmt = (code: number, k: number): BpfInstruction => ({ code, jt: 0, jf: 0, k });
const jump = (code: number, k: number, jt: number, jf: number): BpfInstruction => ({ code, jt, jf, k });
const ret = (k: number) => stmt(RET_K, k);
const errno = (e: number) => ret(SECCOMP_RET_ERRNO | e);

/** The filter as instructions (see the module comment for its shape). */
export function buildSeccompProgram(arch: SeccompArch = currentSeccompArch()): BpfInstruction[] {
  const numbers = SYSCALL_NUMBERS[arch];
  const program: BpfInstruction[] = [
    stmt(LD_W_ABS, OFFSET_ARCH),
    jump(JMP_JEQ_K, AUDIT_ARCH[arch], 1, 0),
    ret(SECCOMP_RET_KILL_PROCESS),
    stmt(LD_W_ABS, OFFSET_NR),
  ];
  if (arch === 'x64') program.push(jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1), errno(EPERM));

  const refused = [...new Set(Object.keys(REFUSED_SYSCALLS).flatMap((name) => numbers[name] ?? []))].sort(
    (a, b) => a - b,
  );
  // Each test is followed by its own return, so every jump offset is 0 or 1 (cBPF offsets are only 8 bits).
  for (const nr of refused) program.push(jump(JMP_JEQ_K, nr, 0, 1), errno(EPERM));

  program.push(jump(JMP_JEQ_K, numbers.clone as number, 0, 4));
  program.push(stmt(LD_W_ABS, argLow(0)));
  program.push(jump(JMP_JSET_K, CLONE_NAMESPACE_FLAGS, 0, 1));
  program.push(errno(EPERM));
  program.push(ret(SECCOMP_RET_ALLOW));

  program.push(jump(JMP_JEQ_K, numbers.clone3 as number, 0, 1), errno(ENOSYS));

  // The kernel truncates the ioctl request to 32 bits, so comparing the low word cannot be dodged.
  program.push(jump(JMP_JEQ_K, numbers.ioctl as number, 0, 5));
  program.push(stmt(LD_W_ABS, argLow(1)));
  program.push(jump(JMP_JEQ_K, TIOCSTI, 1, 0));
  program.push(jump(JMP_JEQ_K, TIOCLINUX, 0, 1));
  program.push(errno(EPERM));
  program.push(ret(SECCOMP_RET_ALLOW));

  program.push(ret(SECCOMP_RET_ALLOW));
  return program;
}

/** The program as the bytes of a `struct sock_filter[]`, ready for `bwrap --seccomp FD`. */
export function serializeSeccompProgram(program: BpfInstruction[]): Buffer {
  const out = Buffer.alloc(program.length * 8);
  program.forEach((ins, i) => {
    out.writeUInt16LE(ins.code, i * 8);
    out.writeUInt8(ins.jt, i * 8 + 2);
    out.writeUInt8(ins.jf, i * 8 + 3);
    out.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return out;
}

export function seccompFilterBytes(arch: SeccompArch = currentSeccompArch()): Buffer {
  return serializeSeccompProgram(buildSeccompProgram(arch));
}

/**
 * Runs the program on one syscall the way the kernel would (only the opcodes this module emits), so tests
 * can check every decision without a kernel.
 */
export function evaluateSeccomp(
  program: BpfInstruction[],
  call: { arch: number; nr: number; args?: number[] },
): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(call.nr, OFFSET_NR);
  data.writeUInt32LE(call.arch >>> 0, OFFSET_ARCH);
  (call.args ?? []).forEach((value, i) => {
    data.writeUInt32LE(value >>> 0, argLow(i));
  });
  let acc = 0;
  for (let pc = 0; pc < program.length; ) {
    const ins = program[pc] as BpfInstruction;
    switch (ins.code) {
      case LD_W_ABS:
        acc = data.readUInt32LE(ins.k);
        pc += 1;
        break;
      case JMP_JEQ_K:
        pc += 1 + (acc === ins.k >>> 0 ? ins.jt : ins.jf);
        break;
      case JMP_JGE_K:
        pc += 1 + (acc >= ins.k >>> 0 ? ins.jt : ins.jf);
        break;
      case JMP_JSET_K:
        pc += 1 + ((acc & ins.k) !== 0 ? ins.jt : ins.jf);
        break;
      case RET_K:
        return ins.k >>> 0;
      default:
        throw new Error(`unknown opcode ${ins.code} at ${pc}`);
    }
  }
  throw new Error('program fell off the end');
}

export const AUDIT_ARCHES = AUDIT_ARCH;
