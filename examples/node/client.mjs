#!/usr/bin/env node
// client.mjs -- lwpd from Node.js, end to end; also the ctest `node_client`.
//
//   node client.mjs [--endpoint unix:///run/lwpd/lwpd.sock]   # a running daemon
//   node client.mjs --lwpd build/server/lwpd                   # start a private one
//
// One emulated process (lwpd.mjs's Process) attaches, recovers from a Call's deadline,
// creates an LWP and waits for it, and is then traced by a debugger on the Trace service (admin token from beside the daemon's socket
// or $LWPD_ADMIN_TOKEN_FILE): PT_ATTACH stops it through a kick that the process honours,
// LWP create/exit events stop it, PT_DETACH of the running tracee is EBUSY, and PT_STOP +
// Wait + PT_DETACH leave it running; then reflect.mjs lists, describes and calls services
// from reflection alone. Prints one line per step; exits 0 when all passed.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  Debugger, Process, defaultEndpoint, grpc, int64, loadContract, readAdminToken, toId, unary,
} from './lwpd.mjs';

// NetBSD numbers (sys/ptrace.h, sys/signal.h).
const PT = { CONTINUE: 7, ATTACH: 9, DETACH: 10, SET_EVENT_MASK: 16, GET_PROCESS_STATE: 18, STOP: 23 };
const PTRACE_LWP_CREATE = 0x8;
const PTRACE_LWP_EXIT = 0x10;
const SIGTRAP = 5;
const SIGSTOP = 17;
const UC_CPU = 0x4;
const PTRACE_EVENT_SIZE = 4;  // sizeof(ptrace_event_t): `data` of PT_SET_EVENT_MASK
const PTRACE_STATE_SIZE = 8;  // sizeof(ptrace_state_t): `data` of PT_GET_PROCESS_STATE

let passed = 0;
let failed = 0;
function check(ok, what) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}`);
  if (!ok) throw new Error(`failed: ${what}`);
}

function parseArgs(argv) {
  const args = { endpoint: null, lwpd: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--endpoint') args.endpoint = argv[++i];
    else if (argv[i] === '--lwpd') args.lwpd = argv[++i];
    else throw new Error(`usage: client.mjs [--endpoint ADDR | --lwpd PATH] (got ${argv[i]})`);
  }
  return args;
}

// Polls (bounded) until `fn` resolves truthy.
async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

async function health(contract, target) {
  const client = new contract.health.Health(target, grpc.credentials.createInsecure());
  try {
    return (await unary(client, 'Check', { service: '' }, null, 2000)).status;
  } finally {
    client.close();
  }
}

// A private daemon in a temporary directory; stop() sends SIGTERM and returns its exit code.
async function startDaemon(contract, binary) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwpd-node-'));
  const endpoint = `unix://${dir}/lwpd.sock`;
  const log = fs.openSync(path.join(dir, 'lwpd.log'), 'w');
  const child = spawn(binary, ['--listen', endpoint, '--runtime-dir', dir, '--cpus', '2'],
                      { stdio: ['ignore', log, log] });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  const dumpLog = () => process.stderr.write(fs.readFileSync(path.join(dir, 'lwpd.log'), 'utf8'));
  try {
    await until('lwpd SERVING', async () => (await health(contract, endpoint)) === 'SERVING');
  } catch (err) {
    child.kill('SIGKILL');
    dumpLog();
    throw err;
  }
  return {
    endpoint,
    async stop() {
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(20000).then(() => 'timeout')]);
      if (code !== 0) dumpLog();
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

// An LWP's life on its own async task: first dispatch, then _lwp_exit (ABORTED, no return).
async function runLwp(lwp) {
  await lwp.start();
  const self = await lwp.call({ lwp_self: {} });
  check(int64(self.retval) === BigInt(lwp.lid), `new LWP ${lwp.lid}: _lwp_self`);
  const err = await lwp.call({ lwp_exit: {} }).then(() => null, (e) => e);
  check(err?.code === grpc.status.ABORTED, `LWP ${lwp.lid}: _lwp_exit ends its Call with ABORTED`);
}

async function createAndWait(proc, main) {
  const created = await main.call({ lwp_create: { uc_flags: UC_CPU, pc: '4194304' } });
  check(created.error === 'ERRNO_OK', '_lwp_create');
  const lid = toId(int64(created.retval));    // retval is int64: range-checked, not wrapped
  const child = runLwp(proc.lwp(lid));
  const waited = await main.call({ lwp_wait: { wait_for: lid } });
  check(int64(waited.retval) === BigInt(lid), `_lwp_wait reaped LWP ${lid}`);
  await child;
  return lid;
}

// A Call whose deadline passes leaves its syscall pending in the daemon (it still completes,
// and its return is buffered there); Start collects that return, then Calls work again. On a
// slow daemon (sanitizers) the deadline can pass before the call reaches the kernel: then
// recover() says so (null) and the call is reissued.
async function deadlineAndRecovery(main) {
  const park = { lwp_park: { clock_id: 3, flags: 0, ts: { sec: '2', nsec: '0' } } };  // 2 s
  const err = await main.call(park, 500).then(() => null, (e) => e);
  check(err?.code === grpc.status.DEADLINE_EXCEEDED, 'a 2 s _lwp_park under a 500 ms deadline: DEADLINE_EXCEEDED');
  let r = await main.recover();
  if (r === null) {
    console.log('      (the deadline passed before the call reached the kernel: reissued)');
    r = await main.call(park);
  }
  check(r.error === 'ERRNO_ETIMEDOUT', `recover() (Start) collects the buffered return: ${r.error}`);
}

// Collects the next stop of `pid` and checks it; PT_GET_PROCESS_STATE for SIGTRAP events.
async function expectStop(dbg, pid, signo, what) {
  const w = await dbg.wait(pid);
  check(w.error === 'ERRNO_OK' && w.wait.kind === 'WAIT_STOPPED' && w.wait.code === signo,
        `${what}: Wait reports a stop with signal ${signo} (got ${w.error} ${w.wait.kind} ${w.wait.code})`);
  if (signo !== SIGTRAP) return null;
  const st = await dbg.ptrace(PT.GET_PROCESS_STATE, pid, { data: PTRACE_STATE_SIZE });
  return st.ptrace;
}

async function debug(contract, target, proc, main) {
  const dbg = await new Debugger(contract, target, readAdminToken(target)).open();
  check(dbg.pid > 0, `Trace.Session opened debugger pid ${dbg.pid}`);
  try {
    // The main LWP is "running user code" (this task is between two Calls): the SIGSTOP of
    // PT_ATTACH reaches it only through a kick, which Lwp.trap() honours.
    const kicksBefore = main.kicksHonoured;
    check((await dbg.ptrace(PT.ATTACH, proc.pid)).error === 'ERRNO_OK', 'PT_ATTACH');
    await expectStop(dbg, proc.pid, SIGSTOP, 'attach');
    check(main.kicksHonoured > kicksBefore, 'the tracee stopped by honouring a kick (Trap)');
    const mask = PTRACE_LWP_CREATE | PTRACE_LWP_EXIT;
    check((await dbg.ptrace(PT.SET_EVENT_MASK, proc.pid, { event_mask: mask, data: PTRACE_EVENT_SIZE })).error === 'ERRNO_OK',
          'PT_SET_EVENT_MASK create|exit');
    check((await dbg.ptrace(PT.CONTINUE, proc.pid)).error === 'ERRNO_OK', 'PT_CONTINUE');

    // While the debugger collects the events, the process creates and reaps an LWP.
    const work = createAndWait(proc, main);
    const created = await expectStop(dbg, proc.pid, SIGTRAP, 'LWP creation');
    check(created.report_event === PTRACE_LWP_CREATE, `event PTRACE_LWP_CREATE for LWP ${created.report_lwp}`);
    check((await dbg.ptrace(PT.CONTINUE, proc.pid)).error === 'ERRNO_OK', 'PT_CONTINUE after create');
    const exited = await expectStop(dbg, proc.pid, SIGTRAP, 'LWP exit');
    check(exited.report_event === PTRACE_LWP_EXIT && exited.report_lwp === created.report_lwp,
          `event PTRACE_LWP_EXIT for LWP ${exited.report_lwp}`);
    check((await dbg.ptrace(PT.CONTINUE, proc.pid)).error === 'ERRNO_OK', 'PT_CONTINUE after exit');
    await work;

    // Stop before detach: PT_DETACH of a running tracee is EBUSY (as on NetBSD) -- EBUSY
    // from PT_ATTACH would instead mean "already traced by someone else".
    check((await dbg.ptrace(PT.DETACH, proc.pid)).error === 'ERRNO_EBUSY',
          'PT_DETACH of the running tracee: EBUSY');
    check((await dbg.ptrace(PT.STOP, proc.pid)).error === 'ERRNO_OK', 'PT_STOP');
    await expectStop(dbg, proc.pid, SIGSTOP, 'PT_STOP');
    check((await dbg.ptrace(PT.DETACH, proc.pid)).error === 'ERRNO_OK', 'PT_DETACH of the stopped tracee');
  } finally {
    dbg.close();  // nothing traced any more: the process survives the debugger
  }
}

// reflect.mjs, the grpcurl-like client: services and a call, from reflection alone.
async function reflection(target) {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'reflect.mjs');
  const run = async (...args) =>
    (await promisify(execFile)(process.execPath, [script, '--endpoint', target, ...args],
                               { timeout: 30000 })).stdout;
  const services = (await run('list')).split('\n');
  check(['lwpd.v1.Kernel', 'lwpd.v1.Inspect', 'lwpd.v1.Admin', 'lwpd.v1.Trace', 'grpc.health.v1.Health']
    .every((s) => services.includes(s)), `reflection lists the services (${services.filter(Boolean).join(' ')})`);
  const methods = await run('describe', 'lwpd.v1.Kernel');
  check(methods.includes('rpc Session(stream SessionRequest) returns (stream SessionEvent)'),
        'reflection describes lwpd.v1.Kernel');
  const stats = JSON.parse(await run('call', 'lwpd.v1.Inspect/Stats', '{}'));
  check(typeof stats.uptime_ms === 'string' && /^lwpd /.test(stats.version),
        `reflection call lwpd.v1.Inspect/Stats: ${stats.version}, uptime_ms "${stats.uptime_ms}" (int64 as a string)`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const contract = loadContract();
  console.log(`contract: ${contract.files.join(', ')}`);
  const daemon = args.lwpd ? await startDaemon(contract, args.lwpd) : null;
  const target = daemon?.endpoint ?? args.endpoint ?? defaultEndpoint();
  try {
    check(await health(contract, target) === 'SERVING', `${target} is SERVING`);
    check((() => { try { toId(2 ** 32 + 11); return false; } catch (e) { return e instanceof RangeError; } })(),
          'LID 2^32+11 is rejected, not wrapped to 11');

    const proc = await new Process(contract, target, { comm: 'node-example' }).attach();
    check(proc.pid > 0, `attached: pid ${proc.pid}`);
    const main = proc.lwp(proc.pid);
    await main.start();
    const self = await main.call({ lwp_self: {} });
    check(int64(self.retval) === BigInt(proc.pid), '_lwp_self of the main LWP is the pid');

    await deadlineAndRecovery(main);
    await createAndWait(proc, main);
    await debug(contract, target, proc, main);
    const again = await main.call({ lwp_self: {} });
    check(int64(again.retval) === BigInt(proc.pid), 'the process runs on after the debugger detached');

    const err = await main.call({ lwp_exit: {} }).then(() => null, (e) => e);
    check(err?.code === grpc.status.ABORTED, 'the last LWP exits');
    const end = await Promise.race([proc.exited, sleep(20000).then(() => null)]);
    check(end?.status?.code === 0 && !end.status.signaled, 'Session reports proc_exited with status 0');
    check(proc.errors.length === 0, `no Trap failed (${proc.errors.map(String).join('; ')})`);
    proc.close();
    await reflection(target);
  } finally {
    if (daemon) {
      const code = await daemon.stop();
      check(code === 0, `lwpd stopped cleanly on SIGTERM (exit ${code})`);
    }
  }
}

main().then(
  () => { console.log(`${passed} passed, ${failed} failed`); process.exit(failed ? 1 : 0); },
  (err) => {
    console.error(`node client: ${err.stack ?? err}`);
    console.log(`${passed} passed, ${Math.max(failed, 1)} failed`);
    process.exit(1);
  });
