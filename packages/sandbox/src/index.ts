/**
 * @agentstack/sandbox — bubblewrap sandboxes for untrusted code (spawn.sh's local servers, AgentSquads'
 * tenant runtimes).
 *
 *   const manager = await createSandboxManager({ stateDir });          // checks the host; throws SandboxUnavailableError
 *   const box = await manager.create({ limits: { memoryBytes, cpus, pids }, command, forwards, labels });
 *   await box.start();                                                 // resolves when the in-sandbox agent is ready
 *   await box.exec(['bash', '-c', 'make test']);                       // runs inside, with every restriction
 *   spawnPty(box, ["tmux", "new-session", "-A", "-s", "main"], { cols, rows });   // a terminal, resizable
 *   await box.stats(); await box.setLimits(…); await box.stop(); await box.destroy();
 *
 * Each sandbox: its own uid (machine-wide reservation), the host's /usr and an allow-list of /etc
 * read-only, a writable directory, new user/pid/ipc/uts/mount/net/cgroup namespaces, no capabilities,
 * no_new_privs, a seccomp filter, cgroup v1 memory/cpu/pids limits, and nothing of the host's network.
 */
export * from './cgroups.js';
export * from './forward.js';
export * from './host.js';
export * from './manager.js';
export * from './pty.js';
export * from './rootfs.js';
export * from './sandbox.js';
export * from './seccomp.js';
export * from './spec.js';
export * from './uids.js';
