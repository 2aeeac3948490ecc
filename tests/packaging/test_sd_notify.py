#!/usr/bin/env python3
"""sd_notify readiness, as lwpd.service (Type=notify) relies on it.

    test_sd_notify.py LWPD

Plays systemd's part: binds a datagram socket, starts LWPD with $NOTIFY_SOCKET naming it,
and checks that READY=1 arrives only once the daemon accepts connections on its socket,
then STOPPING=1 after SIGTERM, and a clean exit (status 0).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

TIMEOUT = 30  # seconds for each message; the daemon is up in well under a second


def receive(sock, what, proc, log):
    sock.settimeout(TIMEOUT)
    try:
        msg = sock.recv(4096).decode()
    except socket.timeout:
        sys.exit("FAIL: no %s within %d s (lwpd %s)\n%s" % (
            what, TIMEOUT, "running" if proc.poll() is None else "exited", log()))
    print("notify: %r" % msg)
    if what not in msg.split("\n"):
        sys.exit("FAIL: expected %s, got %r" % (what, msg))


def main():
    lwpd = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="lwpd-notify-")
    try:
        notify_path = os.path.join(tmp, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        sock_path = os.path.join(tmp, "lwpd.sock")
        log_path = os.path.join(tmp, "lwpd.log")
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                [lwpd, "--listen", "unix://" + sock_path, "--runtime-dir", tmp, "--cpus", "1"],
                env=env, stdout=log_file, stderr=subprocess.STDOUT)
        log = lambda: open(log_path).read()
        try:
            receive(notify, "READY=1", proc, log)
            # Ready means listening: a connection must succeed now, without retrying.
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(sock_path)
            client.close()
            print("PASS: READY=1 once %s accepts connections" % sock_path)
            proc.send_signal(signal.SIGTERM)
            receive(notify, "STOPPING=1", proc, log)
            rc = proc.wait(timeout=TIMEOUT)
            if rc != 0:
                sys.exit("FAIL: lwpd exited %d after SIGTERM\n%s" % (rc, log()))
            print("PASS: STOPPING=1 on SIGTERM, exit 0")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
