// lwpd.mjs -- a small lwpd client for Node.js on @grpc/grpc-js and @grpc/proto-loader.
//
// What a client of the Kernel service must do beyond calling RPCs (kernel.proto's header):
//  * the Session stream is the process's lifeline: closing it kills the process;
//  * honour kicks: a Kick{lid, gen} on the Session asks that LWP, if it is running user code
//    in generation `gen` (the `gen` of its last return), to enter the kernel with Trap. The
//    Session and the calls are separate streams, so a kick may arrive before the return it
//    refers to: latch the highest kick gen per LWP and honour it when that return arrives.
//    A client that ignores kicks stalls preemption, suspension and a debugger's PT_ATTACH.
//  * 64-bit fields (retval, gen, pc, ...) do not fit a JavaScript number: they are loaded as
//    decimal strings (`longs: String`) and read with BigInt; values sent in int32 fields
//    (LIDs, pids) are range-checked here, because protobufjs would silently wrap 2^32+11 to 11.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));

// Where the .proto files are: $LWPD_PROTO_DIR, the installed contract (package liblwpd-dev,
// or `cmake --install`), else this source tree. Each entry: [kernel.proto, health.proto].
function protoFiles() {
  const installed = (dir) => [path.join(dir, 'lwpd/v1/kernel.proto'),
                              path.join(dir, 'grpc/health/v1/health.proto')];
  const candidates = [];
  if (process.env.LWPD_PROTO_DIR) candidates.push(installed(process.env.LWPD_PROTO_DIR));
  const root = path.resolve(here, '../..');
  candidates.push([path.join(root, 'proto/lwpd/v1/kernel.proto'),
                   path.join(root, 'client/lwpstat/health.proto')]);
  candidates.push(installed('/usr/share/lwpd/proto'), installed('/usr/local/share/lwpd/proto'));
  const found = candidates.find((files) => files.every((f) => fs.existsSync(f)));
  if (!found) throw new Error('kernel.proto not found: set LWPD_PROTO_DIR (e.g. /usr/share/lwpd/proto)');
  return found;
}

const LOAD_OPTIONS = {
  keepCase: true,   // field names as in the .proto (lwp_create, not lwpCreate)
  longs: String,    // 64-bit integers as decimal strings: exact, read them with BigInt
  enums: String,    // enum values by name ('ERRNO_EBUSY')
  defaults: true,   // absent fields read as their zero value
  oneofs: true,     // a oneof's set member is named by the virtual field (ev.msg)
};

export function loadContract() {
  const files = protoFiles();
  const def = protoLoader.loadSync(files, LOAD_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def);
  return { v1: pkg.lwpd.v1, health: pkg.grpc.health.v1, files };
}

// ---- endpoints and tokens (the same rules as lwpstat) ----

export function defaultEndpoint() {
  if (process.env.LWPD_ENDPOINT) return process.env.LWPD_ENDPOINT;
  const xdg = process.env.XDG_RUNTIME_DIR;
  return `unix://${xdg && xdg.startsWith('/') ? `${xdg}/lwpd` : '/tmp/lwpd'}/lwpd.sock`;
}

// The admin token: $LWPD_ADMIN_TOKEN_FILE, else admin.token beside the endpoint's socket
// (the daemon writes it there, mode 0600: readable by the daemon's user and root).
export function readAdminToken(endpoint, file = process.env.LWPD_ADMIN_TOKEN_FILE) {
  if (!file) {
    const m = /^unix:(?:\/\/)?(\/.*)$/.exec(endpoint);
    if (!m) throw new Error(`${endpoint} is not a unix socket: set LWPD_ADMIN_TOKEN_FILE`);
    file = path.join(path.dirname(m[1]), 'admin.token');
  }
  return fs.readFileSync(file, 'utf8').trim();
}

// ---- value ranges ----

const INT32_MAX = 2 ** 31 - 1;

// A LID or pid for an int32 field: an integer in [1, 2^31-1], else RangeError (never wrapped).
export function toId(v, what = 'LID') {
  const n = typeof v === 'bigint' ? v : typeof v === 'string' ? BigInt(v) : v;
  const ok = typeof n === 'bigint' ? n >= 1n && n <= BigInt(INT32_MAX)
                                   : Number.isInteger(n) && n >= 1 && n <= INT32_MAX;
  if (!ok) throw new RangeError(`${what} ${v} is outside 1..${INT32_MAX}`);
  return Number(n);
}

// A 64-bit field as loaded (decimal string) to BigInt.
export const int64 = (s) => BigInt(s);

// ---- calls ----

export function deadline(ms) {
  return new Date(Date.now() + ms);
}

export function unary(client, method, request, metadata, ms) {
  return new Promise((resolve, reject) => {
    const opts = ms ? { deadline: deadline(ms) } : {};
    client[method](request, metadata ?? new grpc.Metadata(), opts, (err, reply) =>
      (err ? reject(err) : resolve(reply)));
  });
}

export function metadata(key, value) {
  const md = new grpc.Metadata();
  md.set(key, value);
  return md;
}

// One LWP driven through the unary Start/Call/Trap RPCs.
//
// State: `gen` is the generation of the LWP's last return (its current user run), `inUser`
// whether it is running user code now, `kickGen` the highest kick gen seen. A kick is
// honoured (Trap) only while inUser and kickGen === gen; Trap returns RETURN_RESUME once the
// LWP is dispatched again (after a preemption, or after a stop is continued), and the next
// Call waits for it.
export class Lwp {
  constructor(proc, lid) {
    this.proc = proc;
    this.lid = toId(lid);
    this.gen = -1n;
    this.inUser = false;
    this.kickGen = -1n;
    this.trapping = null;   // the pending Trap, if any
    this.kicksHonoured = 0;
  }

  // Waits for the LWP's first dispatch (RETURN_START).
  async start(ms = this.proc.callMs) {
    this.returned(await unary(this.proc.kernel, 'Start', { lid: this.lid }, this.proc.md, ms));
  }

  // One syscall, e.g. call({ lwp_self: {} }). Resolves at the return to user mode; rejects
  // with the gRPC error (ABORTED for _lwp_exit). A DEADLINE_EXCEEDED leaves the call pending
  // in the daemon: its return is buffered there and `recover()` collects it.
  async call(syscall, ms = this.proc.callMs) {
    while (this.trapping) await this.trapping;
    this.inUser = false;
    try {
      const r = await unary(this.proc.kernel, 'Call', { lid: this.lid, syscall }, this.proc.md, ms);
      this.returned(r);
      return r;
    } catch (err) {
      if (err.code === grpc.status.DEADLINE_EXCEEDED) this.lost = true;
      throw err;
    }
  }

  // After a Call's deadline: if the call reached the kernel, the syscall still completes
  // there (a park still parks) and its return waits in the daemon; a new Call would be
  // refused (FAILED_PRECONDITION, the LWP is not in user mode). Start hands over that
  // buffered return once the LWP is dispatched: recover() resolves with it. Start too is
  // refused (FAILED_PRECONDITION) until the daemon has seen the cancellation, and for good
  // if the deadline passed before the daemon saw the call at all (the LWP never left user
  // mode): so Start is retried for up to `settleMs`, then recover() resolves with null and
  // the call may be reissued.
  async recover(ms = this.proc.callMs, settleMs = 3000) {
    const giveUp = Date.now() + settleMs;
    for (;;) {
      try {
        const r = await unary(this.proc.kernel, 'Start', { lid: this.lid }, this.proc.md, ms);
        this.lost = false;
        this.returned(r);
        return r;
      } catch (err) {
        if (err.code !== grpc.status.FAILED_PRECONDITION) throw err;
        if (Date.now() > giveUp) {
          this.lost = false;
          this.inUser = true;  // still in the user run of `gen`
          return null;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  returned(r) {
    this.gen = int64(r.gen);
    this.inUser = true;
    if (this.kickGen === this.gen) this.trap();
  }

  kick(gen) {
    if (gen > this.kickGen) this.kickGen = gen;
    if (this.inUser && gen === this.gen) this.trap();
  }

  // No deadline: a stopped process's Trap returns only when it is continued.
  trap() {
    if (this.trapping) return;
    this.inUser = false;
    this.kicksHonoured++;
    this.trapping = unary(this.proc.kernel, 'Trap', { lid: this.lid }, this.proc.md)
      .then((r) => { this.trapping = null; this.returned(r); },
            (err) => { this.trapping = null; this.proc.noteError(err); });
  }
}

// An emulated process: the Session stream and its LWPs.
export class Process {
  constructor(contract, channelTarget, { comm = 'node', callMs = 20000 } = {}) {
    this.kernel = new contract.v1.Kernel(channelTarget, grpc.credentials.createInsecure());
    this.comm = comm;
    this.callMs = callMs;
    this.lwps = new Map();
    this.errors = [];
    this.exited = new Promise((resolve) => { this.resolveExit = resolve; });
  }

  // Opens the Session, sends Attach and resolves once Attached arrives.
  attach(ms = this.callMs) {
    this.session = this.kernel.Session();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no Attached within deadline')), ms);
      this.session.on('data', (ev) => {
        if (ev.msg === 'attached') {
          clearTimeout(timer);
          this.pid = toId(ev.attached.pid, 'pid');
          this.md = metadata('lwpd-token', ev.attached.token);
          resolve(this);
        } else {
          this.onEvent(ev);
        }
      });
      this.session.on('error', (err) => { clearTimeout(timer); this.resolveExit({ error: err }); reject(err); });
      this.session.on('end', () => this.resolveExit({ ended: true }));
      this.session.write({ attach: { comm: this.comm, host_pid: process.pid } });
    });
  }

  onEvent(ev) {
    switch (ev.msg) {
      case 'kick':
        this.lwp(ev.kick.lid).kick(int64(ev.kick.gen));
        break;
      case 'lwp_exited':
        this.lwps.delete(ev.lwp_exited.lid);
        break;
      case 'proc_exited':
        this.resolveExit({ status: ev.proc_exited });
        break;
      default:
        break;  // signals: this client installs no handlers
    }
  }

  lwp(lid) {
    const id = toId(lid);
    if (!this.lwps.has(id)) this.lwps.set(id, new Lwp(this, id));
    return this.lwps.get(id);
  }

  noteError(err) { this.errors.push(err); }

  // Half-closes the Session: the process is torn down if it still lives.
  close() {
    this.session?.end();
    this.kernel.close();
  }
}

// A debugger on the Trace service: Session (admin token) gives a trace token for Ptrace/Wait.
export class Debugger {
  constructor(contract, target, adminToken) {
    this.trace = new contract.v1.Trace(target, grpc.credentials.createInsecure());
    this.adminToken = adminToken;
  }

  open(ms = 20000) {
    this.session = this.trace.Session(metadata('lwpd-admin-token', this.adminToken));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no TraceOpened within deadline')), ms);
      this.session.on('data', (ev) => {
        if (ev.msg !== 'opened') return;
        clearTimeout(timer);
        this.pid = ev.opened.pid;
        this.md = metadata('lwpd-trace-token', ev.opened.token);
        resolve(this);
      });
      this.session.on('error', (err) => { clearTimeout(timer); reject(err); });
      this.session.write({ name: 'node example' });
    });
  }

  // ptrace(2): resolves with the SyscallReturn (its `error` is the errno, never thrown).
  ptrace(request, pid, extra = {}, ms = 20000) {
    return unary(this.trace, 'Ptrace', { request, pid: toId(pid, 'pid'), ...extra }, this.md, ms);
  }

  // wait(2) for a tracee: the deadline bounds it (a kick-ignoring tracee never stops).
  wait(pid, ms = 20000) {
    return unary(this.trace, 'Wait', { pid: toId(pid, 'pid'), options: 0 }, this.md, ms);
  }

  // Ends the debugger: a tracee still attached is killed, so PT_DETACH first.
  close() {
    this.session?.end();
    this.trace.close();
  }
}

export { grpc };
