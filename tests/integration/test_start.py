#!/usr/bin/env python3
"""Starting einlass (hostile-testing issue, defects 8 and 11): a signal that
comes while einlass starts is acted on instead of killing it, and a second
instance on a port that one already listens on refuses to start."""
import os
import re
import signal
import socket

from einlass_test import (BIN, Einlass, Proc, conf_text, free_port, get, run, start_backend,
                          wait_until, write_conf)

B = None


def setup():
    global B
    B = start_backend()


def conf(port=0, server=""):
    text = conf_text(B.port, room="mode = off", server=server)
    return write_conf(text.replace("\nlisten = 127.0.0.1:0\n", "\nlisten = 127.0.0.1:%d\n" % port))


def started(p):
    """Wait for einlass to be up; return its public port."""
    port = int(p.wait_line(r"listening on 127\.0\.0\.1:(\d+)", timeout=30).group(1))
    p.wait_line(r"einlass .* started", timeout=30)
    return port


def test_sighup_right_after_start_reloads_instead_of_killing():
    """SIGHUP the moment einlass says it listens, before it has reached its
    loop: it must live, reload once, and serve (10 of 10 used to die)."""
    path = conf()
    for i in range(10):
        p = Proc([BIN, "-c", path])
        try:
            p.wait_line(r"listening on", timeout=30)
            p.kill_with(signal.SIGHUP)
            port = started(p)
            p.wait_line(r"reload: .* in effect", timeout=30)
            assert p.p.poll() is None, "round %d: einlass died:\n%s" % (i, p.text())
            r, _ = get(port, "/echo")
            assert r.status == 200, r.status
        finally:
            rc = p.stop()
        assert rc == 0, "round %d: exit %r\n%s" % (i, rc, p.text())


def test_sigterm_right_after_start_exits_cleanly():
    path = conf()
    for i in range(5):
        p = Proc([BIN, "-c", path])
        p.wait_line(r"listening on", timeout=30)
        p.kill_with(signal.SIGTERM)
        try:
            rc = p.p.wait(30)
        finally:
            p.stop(signal.SIGKILL)
        assert rc == 0, "round %d: exit %r\n%s" % (i, rc, p.text())
        p.wait_line(r"stopped", timeout=10)


def test_signal_sent_before_einlass_runs_is_acted_on():
    """A signal that reaches the process before any of its code runs (held
    here by the mask it inherits) is acted on once einlass can: not lost."""
    path = conf()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGTERM})
    try:
        p = Proc([BIN, "-c", path])
        p.kill_with(signal.SIGHUP)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    try:
        port = started(p)
        p.wait_line(r"reload: .* in effect", timeout=30)
        r, _ = get(port, "/echo")
        assert r.status == 200, r.status
    finally:
        assert p.stop() == 0, p.text()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGTERM})
    try:
        p = Proc([BIN, "-c", path])
        p.kill_with(signal.SIGTERM)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    try:
        rc = p.p.wait(30)
    finally:
        p.stop(signal.SIGKILL)
    assert rc == 0, "exit %r\n%s" % (rc, p.text())


def test_second_instance_on_the_same_port_refuses_to_start():
    port = free_port()
    first = Einlass(conf(port))
    try:
        assert first.port == port, first.port
        second = Proc([BIN, "-c", conf(port)])
        try:
            rc = second.p.wait(30)
        finally:
            second.stop(signal.SIGKILL)
        out = second.text()
        assert rc == 1, "second instance: exit %r\n%s" % (rc, out)
        assert "listen 127.0.0.1:%d: another process listens there already" % port in out, out
        assert "listen_shared" in out, out
        for _ in range(20):  # the first keeps all the traffic
            r, _ = get(port, "/echo")
            assert r.status == 200, r.status
        assert first.proc.p.poll() is None
    finally:
        assert first.stop() == 0


def test_second_instance_may_share_the_port_when_told():
    port = free_port()
    first = Einlass(conf(port))
    try:
        second = Einlass(conf(port, "listen_shared = on"))
        try:
            assert second.port == port
            r, _ = get(port, "/echo")
            assert r.status == 200
        finally:
            assert second.stop() == 0
    finally:
        assert first.stop() == 0


def test_restart_on_the_same_port_after_stop_works():
    """The probe must not mistake the previous run's closed connections
    (TIME_WAIT) for a listener."""
    port = free_port()
    path = conf(port)
    e = Einlass(path)
    for _ in range(5):
        r, _ = get(port, "/echo")
        assert r.status == 200
    assert e.stop() == 0
    e = Einlass(path)
    try:
        r, _ = get(port, "/echo")
        assert r.status == 200
    finally:
        assert e.stop() == 0


def test_reload_keeps_and_moves_its_own_listener():
    """The probe refuses other processes, not einlass's own sockets: a reload
    that keeps the address, or moves it, still works."""
    port = free_port()
    path = conf(port)
    e = Einlass(path)
    try:
        assert "in effect" in e.reload().group(0)
        r, _ = get(port, "/echo")
        assert r.status == 200
        other = free_port()
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("listen = 127.0.0.1:%d" % port, "listen = 127.0.0.1:%d" % other))
        assert "in effect" in e.reload().group(0)
        wait_until(lambda: get(other, "/echo")[0].status == 200, what="the moved listener")
        # and a move onto a port someone else listens on fails, all or nothing
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with open(path, "w") as f:
            f.write(text.replace("listen = 127.0.0.1:%d" % port,
                                 "listen = 127.0.0.1:%d" % busy.getsockname()[1]))
        m = e.reload()
        assert "failed" in m.group(0), m.group(0)
        assert "another process listens there already" in e.proc.text()
        busy.close()
        assert get(other, "/echo")[0].status == 200
    finally:
        assert e.stop() == 0


if __name__ == "__main__":
    setup()
    try:
        run([test_sighup_right_after_start_reloads_instead_of_killing,
             test_sigterm_right_after_start_exits_cleanly,
             test_signal_sent_before_einlass_runs_is_acted_on,
             test_second_instance_on_the_same_port_refuses_to_start,
             test_second_instance_may_share_the_port_when_told,
             test_restart_on_the_same_port_after_stop_works,
             test_reload_keeps_and_moves_its_own_listener])
    finally:
        B.stop()
