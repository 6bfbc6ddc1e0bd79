"""Bad input on every public socket of a running controller, over real ZeroMQ sockets.

A controller with two real engines serves a real client that does work in a loop in a
background thread the whole time. Rogue peers (pyzmq sockets speaking the wire format with
jupyter_client's Session) send each kind of bad message to each public socket:

  garbage    one frame of junk
  nodelim    several frames, no "<IDS|MSG>" delimiter
  truncated  delimiter followed by fewer than the 5 frames a message needs
  unsigned   a well-formed message with an empty signature
  badsig     a well-formed message with a wrong signature
  replay     a validly signed message sent twice: the first copy is accepted, the second dropped
  oversized  a validly signed message above --IPController.max_message_size

plus a registration_request signed with a wrong key.

test_bad_input[...]: the controller stays alive, the client's work keeps completing with
  correct results (no lost replies), and what is observable of an accepted first copy
  (a reply) arrives exactly once. Runs against any controller.
test_bad_input_logged[...]: cpcontroller logs exactly one WARNING line
  "dropped message on <channel> from <peer>: <reason>" for each dropped message (cparallel's
  own log format, so it is skipped for other controllers).
test_zz_engines_stayed_registered: no unregistration happened, the hub still lists the engines.
"""
import os
import re
import threading
import time

import pytest
import zmq
from jupyter_client.session import Session

import cparallel_testlib as tl

ENGINES = 2
DELIM = b"<IDS|MSG>"
BIG = tl.MAX_MESSAGE_SIZE + 1024 * 1024  # above cpcontroller's cap in these tests

# endpoint -> (connection file, port key, socket type, channel name in the log, side)
ENDPOINTS = {
    "registration": ("client", "registration", zmq.DEALER, "registration", "client"),
    "mux_client": ("client", "mux", zmq.DEALER, "mux", "client"),
    "control_client": ("client", "control", zmq.DEALER, "control", "client"),
    "task_client": ("client", "task", zmq.DEALER, "task", "client"),
    "broadcast_client": ("client", "broadcast", zmq.DEALER, "broadcast", "client"),
    "mux_engine": ("engine", "mux", zmq.DEALER, "mux", "engine"),
    "control_engine": ("engine", "control", zmq.DEALER, "control", "engine"),
    "task_engine": ("engine", "task", zmq.DEALER, "task", "engine"),
    "broadcast_engine": ("engine", "broadcast", zmq.DEALER, "broadcast", "engine"),
    "iopub_engine": ("engine", "iopub", zmq.PUB, "iopub", "engine"),
    "hb_pong": ("engine", "hb_pong", zmq.DEALER, "hb_pong", "engine"),
}
KINDS = ["garbage", "nodelim", "truncated", "unsigned", "badsig", "replay", "oversized"]

# Expected reason (a prefix of the logged reason) per kind. hb_pong carries raw single-frame
# pongs, not signed messages: the signed/unsigned/replayed/truncated messages are all just
# malformed there (a replay is two malformed messages), and a junk pong is dropped for a reason
# of the controller's choosing.
REASONS = {
    "garbage": "malformed",
    "nodelim": "malformed",
    "truncated": "malformed",
    "unsigned": "unsigned message",
    "badsig": "invalid signature",
    "replay": "duplicate signature",
    "oversized": "too large",
}
HB_PONG_REASONS = {"garbage": "", "oversized": "too large"}  # others: "malformed"

CASES = [(ep, kind) for ep in ENDPOINTS for kind in KINDS]
SIGNATURE_REASONS = ("unsigned message", "invalid signature", "duplicate signature")
# Engine-side channels where only a reply to a request the controller handed to that very peer
# makes sense (the rogue peer is no engine and got nothing), so the first, validly signed copy
# may be dropped for a reason of its own ("unexpected message"); the replay is still a replay.
SEMANTIC_FIRST_DROP = {"task_engine", "broadcast_engine"}

# Cases that break the Python 7.1 controller itself (seen with this very test): its ROUTER-ROUTER
# mux relay (pyzmq's monitored_queue) stalls after a one-frame message, and every later direct
# request is lost. They are skipped for controllers other than cpcontroller, which must survive.
PYTHON_BREAKS = {("mux_client", "garbage"), ("mux_engine", "garbage")}

DROP_RE = re.compile(r"\bWARNING\b.*\bdropped message on (\S+) from (.*): (.+)$")


def triple(x):
    return 3 * x


# --------------------------------------------------------------------------------------------
# The client work that runs during all injections


class Workload(threading.Thread):
    def __init__(self, client):
        super().__init__(daemon=True)
        self.rc = client
        self.stop_evt = threading.Event()
        self.iterations = 0
        self.errors = []
        self.events = []
        client._registration_callbacks.append(self.events.append)

    def run(self):
        i = 0
        try:
            ids = self.rc.ids
            dv = self.rc[:]
            while not self.stop_evt.is_set():
                i += 1
                ar = dv.apply_async(triple, i)
                got = ar.get(timeout=20)
                if got != [3 * i] * len(ids):
                    self.errors.append("iteration %d: got %r" % (i, got))
                e = self.rc[ids[i % len(ids)]]
                e.execute("w = %d" % i, block=False).get(timeout=20)
                got = e.pull("w", block=False).get(timeout=20)
                if got != i:
                    self.errors.append("iteration %d: pulled %r" % (i, got))
                self.iterations += 1
        except Exception as ex:  # a lost reply shows up as a timeout here
            self.errors.append("iteration %d: %r" % (i, ex))

    def stop(self):
        self.stop_evt.set()
        self.join(30)


@pytest.fixture(scope="module")
def workload(cluster):
    rc = cluster.client()
    rc.wait_for_engines(ENGINES, timeout=15)
    w = Workload(rc)
    w.initial_ids = list(rc.ids)
    w.initial_engines = dict(rc._engines)
    w.start()
    tl.wait_for(lambda: w.iterations >= 2 or w.errors, 30, what="the workload to start")
    yield w
    w.stop()


# --------------------------------------------------------------------------------------------
# Rogue peers


class Rogue:
    """Builds and sends messages to one controller endpoint."""

    def __init__(self, cluster, endpoint, tag):
        fname, port_key, stype, self.channel, self.side = ENDPOINTS[endpoint]
        self.endpoint = endpoint
        info = cluster.controller.connection_info(fname)
        self.client_info = cluster.controller.connection_info("client")
        port = info[port_key]
        if isinstance(port, list):
            port = port[0]
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(stype)
        self.sock.linger = 0
        self.identity = None
        if stype == zmq.DEALER:
            self.identity = ("rogue-%s-%s" % (endpoint, tag)).encode()
            self.sock.setsockopt(zmq.IDENTITY, self.identity)
        self.sock.connect("tcp://127.0.0.1:%d" % port)
        if stype == zmq.PUB:
            time.sleep(0.5)  # let the subscription reach us, or PUB drops what we send
        else:
            time.sleep(0.05)

    def close(self):
        self.sock.close(linger=0)

    # routing frames our socket must put before the delimiter for the message to be routable
    def prefix(self, engine_uuid):
        if self.endpoint in ("mux_client", "control_client"):
            return [engine_uuid.encode()]
        if self.side == "engine" and self.channel in ("mux", "control", "task", "broadcast"):
            return [b"\x00fake"]  # a client routing id, as an engine reply carries
        if self.channel == "iopub":
            return [b"engine.99.stream"]
        return []

    def valid_message(self, engine, buffers=()):
        """A validly signed, routable message for this endpoint, as frames."""
        eid, uuid = engine
        ch, side = self.channel, self.side
        if ch == "registration":
            msg = self.session.msg("connection_request", content={})
        elif side == "client" and ch == "mux":
            msg = self.session.msg("execute_request", content={
                "code": "None", "silent": True, "user_expressions": {}})
        elif side == "client" and ch == "control":
            msg = self.session.msg("kernel_info_request", content={})
        elif side == "client" and ch == "task":
            msg = self.session.msg("execute_request", content={
                "code": "None", "silent": True, "user_expressions": {}}, metadata={
                "after": [], "follow": [], "timeout": 0.0, "targets": [uuid], "retries": 0})
        elif side == "client" and ch == "broadcast":
            msg = self.session.msg("execute_request", content={
                "code": "None", "silent": True, "user_expressions": {}}, metadata={
                "targets": [[uuid, eid]], "is_broadcast": True, "is_coalescing": False})
        elif ch == "iopub":
            msg = self.session.msg("stream", content={"name": "stdout", "text": "rogue\n"})
        elif ch == "hb_pong":
            msg = self.session.msg("status", content={"execution_state": "idle"})
        else:  # an engine-side reply
            msg = self.session.msg("execute_reply", content={
                "status": "ok", "execution_count": 1, "user_expressions": {}, "payload": []})
        frames = self.session.serialize(msg, ident=self.prefix(uuid))
        return frames + list(buffers)

    def frames_for(self, kind, engine):
        eid, uuid = engine
        pre = self.prefix(uuid)
        good = self.valid_message(engine)
        body = good[len(pre):]  # [DELIM, sig, h, p, md, c]
        assert body[0] == DELIM
        if kind == "garbage":
            return [b"\x00\xffthis is not a message\x01"]
        if kind == "nodelim":
            return pre + [b"no", b"delimiter", b"{}", b"{}", b"{}", b"{}"]
        if kind == "truncated":
            return pre + body[:3]
        if kind == "unsigned":
            return pre + [DELIM, b""] + body[2:]
        if kind == "badsig":
            wrong = Session(key=b"not-the-key", signature_scheme="hmac-sha256")
            return pre + [DELIM, wrong.sign(body[2:])] + body[2:]
        if kind == "replay":
            return good
        if kind == "oversized":
            return self.valid_message(engine, buffers=[os.urandom(1024) * (BIG // 1024)])
        raise ValueError(kind)

    def send(self, frames):
        self.sock.send_multipart(frames, copy=False)

    def replies(self, timeout):
        """Messages that came back to us within `timeout` seconds."""
        got = []
        if self.sock.type == zmq.PUB:
            time.sleep(timeout)
            return got
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                return got
            got.append(self.sock.recv_multipart())


def _dropped_lines(text):
    out = []
    for line in text.splitlines():
        m = DROP_RE.search(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3), line))
    return out


def _log_size(cluster):
    try:
        return os.path.getsize(cluster.controller.log_path)
    except OSError:
        return 0


def _new_log(cluster, offset):
    with open(cluster.controller.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


RESULTS = {}  # (endpoint, kind) -> the new "dropped message" lines seen for that injection


def _expected(endpoint, kind):
    """(how many copies were sent, how many must be dropped, reason prefix)."""
    if endpoint == "hb_pong":
        reason = HB_PONG_REASONS.get(kind, "malformed")
    else:
        reason = REASONS[kind]
    if kind == "replay":
        # on hb_pong a signed message is just malformed, so both copies are dropped
        return 2, 2 if endpoint == "hb_pong" else 1, reason
    return 1, 1, reason


@pytest.mark.cpar_timeout(90)
@pytest.mark.parametrize("endpoint,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_bad_input(cluster, workload, endpoint, kind):
    ctl = cluster.controller
    if (endpoint, kind) in PYTHON_BREAKS and not ctl.is_c:
        pytest.skip("breaks the Python 7.1 controller (its mux relay stalls on a one-frame "
                    "message); the controller under test is not cpcontroller")
    engine = (workload.initial_ids[0], workload.initial_engines[workload.initial_ids[0]])
    rogue = Rogue(cluster, endpoint, kind)
    try:
        frames = rogue.frames_for(kind, engine)
        copies, ndropped, reason = _expected(endpoint, kind)
        start_iter = workload.iterations
        offset = _log_size(cluster)
        for _ in range(copies):
            rogue.send(frames)
            time.sleep(0.05)
        # wait for the controller to have dealt with it: a C controller logs right away
        deadline = time.monotonic() + (5 if ctl.is_c else 1)
        while time.monotonic() < deadline:
            if len(_dropped_lines(_new_log(cluster, offset))) >= ndropped:
                break
            time.sleep(0.05)
        replies = rogue.replies(0.5)
        RESULTS[(endpoint, kind)] = _dropped_lines(_new_log(cluster, offset))

        assert ctl.alive(), "controller died after %s on %s:\n%s" % (kind, endpoint, ctl.log_tail())
        if kind == "replay" and endpoint in ("registration", "mux_client", "control_client"):
            # the first copy went through and was answered once; the replay was not
            assert len(replies) == 1, "expected one reply to the first copy, got %d" % len(replies)
        if kind in ("garbage", "nodelim", "truncated", "unsigned", "badsig") or (
                kind == "oversized" and ctl.is_c):
            # nothing that was dropped may produce an answer (a Python controller has no size cap)
            assert replies == [], "a dropped %s message on %s was answered: %r" % (
                kind, endpoint, replies[:1])
        # the client's work keeps going, with correct results and no lost replies
        tl.wait_for(lambda: workload.iterations >= start_iter + 2 or workload.errors, 30,
                    what="two more workload iterations")
        assert workload.errors == [], workload.errors
        assert workload.is_alive()
    finally:
        rogue.close()


@pytest.mark.cpcontroller_only("checks cparallel's 'dropped message on <channel> from <peer>: "
                               "<reason>' log lines")
@pytest.mark.parametrize("endpoint,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_bad_input_logged(endpoint, kind):
    if (endpoint, kind) not in RESULTS:
        pytest.fail("test_bad_input[%s-%s] did not run before this test" % (endpoint, kind))
    lines = RESULTS[(endpoint, kind)]
    _, ndropped, reason = _expected(endpoint, kind)
    channel = ENDPOINTS[endpoint][3]
    shown = "\n".join(l[3] for l in lines) or "(none)"
    if kind == "replay" and endpoint in SEMANTIC_FIRST_DROP:
        # the first copy passed the signature checks but is no reply to anything this peer was
        # sent, so it may be dropped for that; the replay must be caught as a replay
        first = [l for l in lines if not l[2].startswith(reason)]
        assert len(first) <= 1, shown
        assert not first or not first[0][2].startswith(SIGNATURE_REASONS), shown
        lines = [l for l in lines if l[2].startswith(reason)]
    assert len(lines) == ndropped, "expected %d dropped-message line(s) for %s on %s, got:\n%s" % (
        ndropped, kind, endpoint, shown)
    ch, peer, why, _ = lines[0]
    assert ch == channel, shown
    assert why.startswith(reason), "reason %r, expected %r...\n%s" % (why, reason, shown)
    identity = ("rogue-%s-%s" % (endpoint, kind))
    if ENDPOINTS[endpoint][2] == zmq.DEALER and not why.startswith("too large"):
        assert identity in peer or identity.encode().hex() in peer, \
            "peer %r does not name the sender %r\n%s" % (peer, identity, shown)


@pytest.mark.cpar_timeout(60)
def test_registration_with_wrong_key(cluster, workload):
    ctl = cluster.controller
    info = ctl.connection_info("engine")
    wrong = Session(key=b"wrong-key", signature_scheme=info["signature_scheme"])
    uuid = "rogue-engine-uuid"
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.setsockopt(zmq.IDENTITY, uuid.encode())
    s.connect("tcp://127.0.0.1:%d" % info["registration"])
    try:
        offset = _log_size(cluster)
        start_iter = workload.iterations
        wrong.send(s, "registration_request", content={"uuid": uuid})
        assert not s.poll(1500), "a registration signed with the wrong key was answered"
        lines = _dropped_lines(_new_log(cluster, offset))
        assert ctl.alive()
        assert workload.rc.ids == workload.initial_ids
        tl.wait_for(lambda: workload.iterations >= start_iter + 2 or workload.errors, 30,
                    what="two more workload iterations")
        assert workload.errors == []
        if ctl.is_c:
            shown = "\n".join(l[3] for l in lines) or "(none)"
            assert len(lines) == 1, shown
            assert lines[0][0] == "registration" and lines[0][2].startswith("invalid signature"), shown
            assert uuid in lines[0][1], shown
    finally:
        s.close(linger=0)


def test_zz_engines_stayed_registered(cluster, workload):
    workload.stop()
    assert not workload.is_alive()
    assert workload.errors == [], workload.errors
    assert workload.iterations > 10
    assert [ev for ev in workload.events if ev.get("event") == "unregister"] == []
    assert workload.rc.ids == workload.initial_ids
    assert workload.rc._engines == workload.initial_engines
    assert cluster.controller.alive()
    fresh = cluster.client()
    assert fresh.ids == workload.initial_ids
    qs = fresh.queue_status()
    assert set(qs) == set(workload.initial_ids) | {"unassigned"}
    assert fresh[:].apply_sync(triple, 5) == [15] * ENGINES
