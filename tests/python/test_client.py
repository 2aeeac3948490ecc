#!/usr/bin/env python3
"""End-to-end test of lwpd from a second language: Python stubs generated from
proto/lwpd/v1/kernel.proto (protoc --python_out --grpc_python_out with
grpc_python_plugin), Debian's python3-grpcio and python3-protobuf.

    test_client.py --lwpd build/server/lwpd [--stubs DIR]
    test_client.py --endpoint unix:///run/lwpd/lwpd.sock [--stubs DIR]

Starts its own lwpd (socket and runtime dir in a temporary directory, --cpus 2)
and plays one emulated process through the documented protocol:

  * Session: Attach -> Attached{pid, token}; the stream is the process's lifeline
    and carries its events (kicks, lwp_exited, proc_exited) to a reader thread.
  * kicks are honoured (Kicks): an LWP running user code in the kick's generation
    enters the kernel with Trap; test_kicks_let_a_debugger_stop_the_process shows
    why: a debugger's PT_ATTACH stops the process only through that kick.
  * main LWP (LID == pid): Start, then Calls with metadata "lwpd-token".
  * _lwp_create a second LWP and drive it on a second Python thread (Start,
    _lwp_self, _lwp_exit -> ABORTED); the main LWP _lwp_wait()s for it.
  * Inspect: ListLwps (the process and both LWPs' states) and ListProcs.
  * _lwp_ctl: map the lwpctl file named by the reply and read the LWP's slot.
  * the main LWP's _lwp_exit ends the process: the Session gets proc_exited.
  * the daemon is still healthy (grpc.health.v1) and stops cleanly on SIGTERM.

Without --stubs the stubs are generated into a temporary directory first.
With --endpoint it uses a running daemon instead (e.g. the Docker image's, with
its runtime dir mounted at the same path on this host) and leaves it running.
"""

import argparse
import mmap
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

ARGS = None       # parsed command line
pb = None         # lwpd.v1 messages (kernel_pb2)
pb_grpc = None    # lwpd.v1 services (kernel_pb2_grpc)

UC_CPU = 0x4
TIMEOUT = 20  # seconds for any single RPC or event


def generate_stubs(out_dir):
    """protoc + grpc_python_plugin -> out_dir/lwpd/v1/kernel_pb2{,_grpc}.py"""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    plugin = shutil.which("grpc_python_plugin")
    if plugin is None:
        raise RuntimeError("grpc_python_plugin not found (Debian: protobuf-compiler-grpc)")
    subprocess.run(
        ["protoc", "--proto_path=" + os.path.join(root, "proto"),
         "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
         "--plugin=protoc-gen-grpc_python=" + plugin,
         os.path.join(root, "proto", "lwpd", "v1", "kernel.proto")],
        check=True)


def load_stubs(stubs_dir):
    global pb, pb_grpc
    sys.path.insert(0, stubs_dir)
    from lwpd.v1 import kernel_pb2, kernel_pb2_grpc  # generated
    pb, pb_grpc = kernel_pb2, kernel_pb2_grpc


# grpc.health.v1 without its generated stubs (Debian's python3-grpcio has none):
# HealthCheckRequest{service=""} is empty; HealthCheckResponse{status=SERVING}
# is field 1, varint 1.
def health_status(channel, timeout=2.0):
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
    reply = check(b"", timeout=timeout, wait_for_ready=True)
    status = 0
    i = 0
    while i < len(reply):
        key = reply[i]
        i += 1
        if key != 0x08:
            raise AssertionError("unexpected HealthCheckResponse bytes %r" % reply)
        status = reply[i]
        i += 1
    return {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING"}.get(status, str(status))


class Session:
    """The Session stream: requests from a queue, events to a queue (reader thread)."""

    def __init__(self, stub, comm, kicks=None):
        self._requests = queue.Queue()
        self.events = queue.Queue()
        self.kicks = []
        self._kick_handler = kicks
        self._requests.put(pb.SessionRequest(
            attach=pb.Attach(comm=comm, host_pid=os.getpid())))
        self._call = stub.Session(iter(self._requests.get, None))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        try:
            for ev in self._call:
                if ev.WhichOneof("msg") == "kick":
                    self.kicks.append((ev.kick.lid, ev.kick.gen))
                    if self._kick_handler is not None:
                        self._kick_handler.kick(ev.kick.lid, ev.kick.gen)
                self.events.put(ev)
            self.events.put(("end", grpc.StatusCode.OK))
        except grpc.RpcError as e:
            self.events.put(("end", e.code()))

    def next_event(self, kinds):
        """The next event whose oneof is one of `kinds` (kicks etc. are skipped)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            ev = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(ev, tuple):
                return ev
            if ev.WhichOneof("msg") in kinds:
                return ev

    def close(self):
        self._requests.put(None)  # half-close: ends the request iterator


class Kicks:
    """Kick handling for LWPs driven by the unary Start/Call/Trap RPCs (kernel.proto's header).

    A Kick{lid, gen} asks LWP `lid`, if it is running user code in generation `gen` (the gen
    of its last return), to enter the kernel at once with Trap; Trap returns RETURN_RESUME
    when the LWP is dispatched again (after a preemption, or once a stopped process is
    continued). The Session and the calls are different streams, so a kick can arrive before
    the return it refers to: the highest kick gen per LWP is latched and honoured when that
    return arrives. Each LWP's thread calls entering() before a Call (it waits for a Trap in
    progress) and returned() with every SyscallReturn; the Session reader calls kick().
    All state is guarded by `_lock`; Trap runs on a thread of its own, never under the lock.
    """

    def __init__(self, kernel):
        self._kernel = kernel
        self._lock = threading.Lock()
        self._lwps = {}        # lid -> {"gen", "in_user", "kick_gen", "trap_done"}
        self.md = None         # the session's token metadata, set once attached
        self.honoured = 0      # Traps made
        self.errors = []       # Traps that failed (the test asserts there are none)

    def _lwp(self, lid):
        return self._lwps.setdefault(
            lid, {"gen": None, "in_user": False, "kick_gen": -1, "trap_done": None})

    def returned(self, lid, ret):
        with self._lock:
            st = self._lwp(lid)
            st["gen"], st["in_user"] = ret.gen, True
            if st["kick_gen"] == ret.gen:
                self._trap_locked(lid, st)

    def entering(self, lid):
        while True:
            with self._lock:
                st = self._lwp(lid)
                done = st["trap_done"]
                if done is None:
                    st["in_user"] = False
                    return
            done.wait(TIMEOUT * 3)  # a stopped process's Trap returns when continued

    def kick(self, lid, gen):
        with self._lock:
            st = self._lwp(lid)
            st["kick_gen"] = max(st["kick_gen"], gen)
            if st["in_user"] and st["gen"] == gen:
                self._trap_locked(lid, st)

    def _trap_locked(self, lid, st):
        if st["trap_done"] is not None:
            return
        st["in_user"] = False
        st["trap_done"] = threading.Event()
        self.honoured += 1
        threading.Thread(target=self._trap, args=(lid, st["trap_done"]), daemon=True).start()

    def _trap(self, lid, done):
        try:
            ret = self._kernel.Trap(pb.LwpRef(lid=lid), metadata=self.md, timeout=TIMEOUT * 3)
        except grpc.RpcError as e:
            ret = None
            self.errors.append((lid, e.code()))
        with self._lock:
            st = self._lwp(lid)
            st["trap_done"] = None
            if ret is not None:
                st["gen"], st["in_user"] = ret.gen, True
                if st["kick_gen"] == ret.gen:  # kicked again before this reply came
                    self._trap_locked(lid, st)
        done.set()


class LwpdDaemon:
    def __init__(self, binary, cpus=2):
        self.dir = tempfile.mkdtemp(prefix="lwpd-py-")
        self.endpoint = "unix://" + os.path.join(self.dir, "lwpd.sock")
        self.log = open(os.path.join(self.dir, "lwpd.log"), "w+")
        self.proc = subprocess.Popen(
            [binary, "--listen", self.endpoint, "--runtime-dir", self.dir,
             "--cpus", str(cpus), "--log-level", "info"],
            stdout=self.log, stderr=subprocess.STDOUT)
        # Connect once the socket exists: a channel that failed to connect backs off (1 s+).
        sock = os.path.join(self.dir, "lwpd.sock")
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(sock):
            if self.proc.poll() is not None:
                raise RuntimeError("lwpd exited early: " + self.log_text())
            if time.monotonic() > deadline:
                raise RuntimeError("lwpd did not create its socket: " + self.log_text())
            time.sleep(0.01)
        self.channel = grpc.insecure_channel(self.endpoint)
        while True:
            try:
                if health_status(self.channel, timeout=1.0) == "SERVING":
                    break
            except grpc.RpcError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("lwpd did not become healthy: " + self.log_text())
            time.sleep(0.05)

    def admin_token(self):
        with open(os.path.join(self.dir, "admin.token")) as f:
            return f.read().strip()

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        """SIGTERM; returns the exit status."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self):
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ExternalDaemon:
    """A daemon someone else runs (--endpoint): same interface, never stopped."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.dir = None  # unknown: lwpctl paths are whatever the daemon reports
        self.channel = grpc.insecure_channel(endpoint)
        if health_status(self.channel, timeout=TIMEOUT) != "SERVING":
            raise RuntimeError(endpoint + " is not SERVING")

    def admin_token(self):
        """$LWPD_ADMIN_TOKEN_FILE, else admin.token beside the socket (as lwpstat finds it)."""
        path = os.environ.get("LWPD_ADMIN_TOKEN_FILE")
        if not path:
            sock = self.endpoint[len("unix://"):] if self.endpoint.startswith("unix://") else None
            if sock is None:
                raise unittest.SkipTest("no admin token for a TCP endpoint")
            path = os.path.join(os.path.dirname(sock), "admin.token")
        with open(path) as f:
            return f.read().strip()

    def log_text(self):
        return "(external daemon at %s: no log)\n" % self.endpoint

    def stop(self):
        self.channel.close()
        return 0

    def cleanup(self):
        pass


def syscall(**kw):
    return pb.Syscall(**kw)


class PythonClientTest(unittest.TestCase):
    def setUp(self):
        if ARGS.endpoint:
            self.daemon = ExternalDaemon(ARGS.endpoint)
        else:
            self.daemon = LwpdDaemon(ARGS.lwpd, cpus=2)
        self.kernel = pb_grpc.KernelStub(self.daemon.channel)
        self.inspect = pb_grpc.InspectStub(self.daemon.channel)
        self.kicks = Kicks(self.kernel)

    def tearDown(self):
        rc = self.daemon.stop()
        if rc != 0 or self._outcome_failed():
            sys.stderr.write("---- lwpd log ----\n" + self.daemon.log_text())
        self.daemon.cleanup()
        self.assertEqual(rc, 0, "lwpd did not exit cleanly after SIGTERM")

    def _outcome_failed(self):
        result = getattr(self._outcome, "result", None)
        return bool(result and (result.failures or result.errors))

    def call(self, md, lid, **sc):
        """One syscall of LWP `lid`, kicks honoured around it (Kicks)."""
        self.kicks.entering(lid)
        r = self.kernel.Call(pb.LwpCall(lid=lid, syscall=syscall(**sc)),
                             metadata=md, timeout=TIMEOUT)
        self.kicks.returned(lid, r)
        return r

    def start(self, md, lid):
        r = self.kernel.Start(pb.LwpRef(lid=lid), metadata=md, timeout=TIMEOUT)
        self.kicks.returned(lid, r)
        return r

    def attach(self, comm):
        session = Session(self.kernel, comm, kicks=self.kicks)
        ev = session.next_event({"attached"})
        self.assertNotIsInstance(ev, tuple, "session ended before Attached: %s" % (ev,))
        self.kicks.md = (("lwpd-token", ev.attached.token),)
        return session, ev.attached, self.kicks.md

    def test_process_lifecycle(self):
        # ---- Session: Attach -> Attached ----
        session, att, md = self.attach("pyclient")
        pid, token = att.pid, att.token
        self.assertGreater(pid, 0)
        self.assertTrue(token)
        if not ARGS.endpoint:
            self.assertEqual(att.ncpus, 2)  # --cpus 2
        self.assertGreaterEqual(att.ncpus, 2, "two LWPs must be able to run at once")

        # Without the token the kernel refuses.
        with self.assertRaises(grpc.RpcError) as cm:
            self.kernel.Call(pb.LwpCall(lid=pid, syscall=syscall(lwp_self=pb.LwpSelfArgs())),
                             timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

        # ---- main LWP: Start, then syscalls ----
        r = self.start(md, pid)
        self.assertEqual(r.kind, pb.RETURN_START)
        r = self.call(md, pid, lwp_self=pb.LwpSelfArgs())
        self.assertEqual((r.kind, r.error, r.retval), (pb.RETURN_SYSCALL, pb.ERRNO_OK, pid))
        r = self.call(md, pid, lwp_setname=pb.LwpSetnameArgs(target=0, name=b"py-main"))
        self.assertEqual(r.error, pb.ERRNO_OK)

        # ---- _lwp_create; the new LWP runs on a second Python thread ----
        r = self.call(md, pid, lwp_create=pb.LwpCreateArgs(uc_flags=UC_CPU, pc=0x400000))
        self.assertEqual(r.error, pb.ERRNO_OK)
        new_lid = int(r.retval)
        self.assertNotEqual(new_lid, pid)

        started = threading.Event()
        may_exit = threading.Event()
        child = {}

        def run_child():
            try:
                r = self.start(md, new_lid)
                child["start_kind"] = r.kind
                r = self.call(md, new_lid, lwp_self=pb.LwpSelfArgs())
                child["self"] = r.retval
                started.set()
                may_exit.wait(TIMEOUT)
                try:
                    self.call(md, new_lid, lwp_exit=pb.LwpExitArgs())
                    child["exit"] = "returned"
                except grpc.RpcError as e:
                    child["exit"] = e.code()
            except Exception as e:  # reported by the main thread
                child["error"] = repr(e)
                started.set()

        t = threading.Thread(target=run_child, name="lwp-%d" % new_lid)
        t.start()
        self.assertTrue(started.wait(TIMEOUT), "the new LWP never started")
        self.assertNotIn("error", child)
        self.assertEqual(child["start_kind"], pb.RETURN_START)
        self.assertEqual(child["self"], new_lid)

        # ---- Inspect while both LWPs run user code (2 LWPs, 2 vCPUs) ----
        info = self.inspect.ListLwps(pb.ListLwpsRequest(pid=pid), timeout=TIMEOUT).proc
        self.assertEqual(info.pid, pid)
        self.assertEqual(info.comm, "pyclient")
        self.assertEqual(info.state, pb.SACTIVE)
        self.assertEqual(info.nlwps, 2)
        states = {l.lid: l for l in info.lwps}
        self.assertEqual(sorted(states), sorted([pid, new_lid]))
        for lid in (pid, new_lid):
            self.assertIn(states[lid].state, (pb.LSONPROC, pb.LSRUN),
                          "LWP %d: %s" % (lid, pb.LwpState.Name(states[lid].state)))
            self.assertFalse(states[lid].in_kernel)
        self.assertEqual(states[pid].name, "py-main")
        procs = self.inspect.ListProcs(pb.ListProcsRequest(), timeout=TIMEOUT).procs
        self.assertIn(pid, [p.pid for p in procs])

        # ---- lwpctl: the region file lives in the runtime dir; map it by path ----
        r = self.call(md, pid, lwp_ctl=pb.LwpCtlArgs(features=1))
        self.assertEqual(r.error, pb.ERRNO_OK)
        slot = r.lwpctl_slot
        info = self.inspect.ListLwps(pb.ListLwpsRequest(pid=pid), timeout=TIMEOUT).proc
        path = info.lwpctl_path
        if self.daemon.dir:
            self.assertTrue(path.startswith(self.daemon.dir), path)
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            curcpu, pctr = struct.unpack_from("<ii", m, slot * 8)
            m.close()
        self.assertIn(curcpu, range(att.ncpus), "the main LWP runs user code: lc_curcpu is its vCPU")

        # ---- the child exits (ABORTED), the main LWP reaps it ----
        may_exit.set()
        r = self.call(md, pid, lwp_wait=pb.LwpWaitArgs(wait_for=new_lid))
        self.assertEqual((r.error, r.retval), (pb.ERRNO_OK, new_lid))
        t.join(TIMEOUT)
        self.assertFalse(t.is_alive())
        self.assertEqual(child.get("exit"), grpc.StatusCode.ABORTED)
        ev = session.next_event({"lwp_exited"})
        self.assertNotIsInstance(ev, tuple)
        self.assertEqual(ev.lwp_exited.lid, new_lid)
        info = self.inspect.ListLwps(pb.ListLwpsRequest(pid=pid), timeout=TIMEOUT).proc
        self.assertEqual(info.nlwps, 1)
        self.assertEqual([l.lid for l in info.lwps], [pid])

        # ---- the last LWP exits: the process ends ----
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(md, pid, lwp_exit=pb.LwpExitArgs())
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ABORTED)
        ev = session.next_event({"proc_exited"})
        self.assertNotIsInstance(ev, tuple, "session ended without proc_exited: %s" % (ev,))
        self.assertFalse(ev.proc_exited.signaled)
        self.assertEqual(ev.proc_exited.code, 0)
        self.assertEqual(session.next_event(set()), ("end", grpc.StatusCode.OK))
        session.close()

        # The daemon releases the exited process on its janitor thread, which may run a
        # moment after the session stream has ended: poll (bounded) until it is unlisted.
        deadline = time.monotonic() + 5
        while True:
            procs = self.inspect.ListProcs(pb.ListProcsRequest(), timeout=TIMEOUT).procs
            if pid not in [p.pid for p in procs] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.assertNotIn(pid, [p.pid for p in procs])
        with self.assertRaises(grpc.RpcError) as cm:
            self.inspect.ListLwps(pb.ListLwpsRequest(pid=pid), timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(health_status(self.daemon.channel), "SERVING")
        stats = self.inspect.Stats(pb.StatsRequest(), timeout=TIMEOUT)
        self.assertEqual(stats.ncpus, att.ncpus)
        if not ARGS.endpoint:
            self.assertEqual(stats.nprocs, 0)
        self.assertEqual(self.kicks.errors, [])

    def test_kicks_let_a_debugger_stop_the_process(self):
        """PT_ATTACH stops the tracee with SIGSTOP, which reaches an LWP running user code
        only as a kick: without Kicks the debugger's Wait would run into its deadline."""
        session, att, md = self.attach("pytracee")
        pid = att.pid
        self.start(md, pid)
        self.call(md, pid, lwp_self=pb.LwpSelfArgs())  # now "running user code"

        trace = pb_grpc.TraceStub(self.daemon.channel)
        requests = queue.Queue()
        events = trace.Session(iter(requests.get, None),
                               metadata=(("lwpd-admin-token", self.daemon.admin_token()),))
        try:
            opened = next(events).opened
            tmd = (("lwpd-trace-token", opened.token),)
            r = trace.Ptrace(pb.PtraceArgs(request=9, pid=pid), metadata=tmd, timeout=TIMEOUT)
            self.assertEqual(r.error, pb.ERRNO_OK, "PT_ATTACH")
            w = trace.Wait(pb.WaitArgs(pid=pid), metadata=tmd, timeout=TIMEOUT)
            self.assertEqual((w.wait.kind, w.wait.code), (pb.WAIT_STOPPED, 17), "SIGSTOP")
            self.assertGreaterEqual(self.kicks.honoured, 1)
            # Stopped and waited for: PT_DETACH lets it run on (EBUSY while it runs).
            r = trace.Ptrace(pb.PtraceArgs(request=10, pid=pid), metadata=tmd, timeout=TIMEOUT)
            self.assertEqual(r.error, pb.ERRNO_OK, "PT_DETACH")
        finally:
            requests.put(None)  # ends the debugger; the detached process survives it
        r = self.call(md, pid, lwp_self=pb.LwpSelfArgs())  # after the Trap's RETURN_RESUME
        self.assertEqual(r.retval, pid)
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(md, pid, lwp_exit=pb.LwpExitArgs())
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ABORTED)
        ev = session.next_event({"proc_exited"})
        self.assertNotIsInstance(ev, tuple, "session ended without proc_exited: %s" % (ev,))
        self.assertEqual((ev.proc_exited.signaled, ev.proc_exited.code), (False, 0))
        session.close()
        self.assertEqual(self.kicks.errors, [])


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument("--lwpd", help="path of the lwpd binary to start")
    who.add_argument("--endpoint", help="use this running daemon instead")
    ap.add_argument("--stubs", help="directory holding lwpd/v1/kernel_pb2*.py "
                    "(default: generate them into a temporary directory)")
    ARGS, rest = ap.parse_known_args()
    tmp = None
    stubs = ARGS.stubs
    if stubs is None:
        tmp = tempfile.mkdtemp(prefix="lwpd-py-stubs-")
        generate_stubs(tmp)
        stubs = tmp
    try:
        load_stubs(stubs)
        prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
        return 0 if prog.result.wasSuccessful() else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
