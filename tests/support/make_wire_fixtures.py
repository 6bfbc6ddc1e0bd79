#!/usr/bin/env python3
"""Write the wire-layer test fixtures: real messages serialized by jupyter_client's Session.

Run from anywhere with a Python that has jupyter_client (7.x) and ipyparallel:

    python3 tests/support/make_wire_fixtures.py

It rewrites tests/unit/wire/data/. The C tests read those files and never need Python.

Each message goes to <name>.frames:
    uint32 big-endian frame count, then per frame a uint32 big-endian length and the bytes.
manifest.json lists the messages with what the C tests expect of each, the key, and a known
answer: four compact JSON parts (as jansson writes them) and the signatures that Python computes
over them with several schemes and keys, so that the C encoder and signer can be checked against
Python without a message.

Headers get fixed dates and msg_ids (still in jupyter_client's format) so that a rerun only changes
the files when jupyter_client's encoding changes.
"""

import datetime
import json
import os
import struct
import sys

from jupyter_client.session import Session

try:
    from ipyparallel.serialize import pack_apply_message
except ImportError:  # pragma: no cover - the buffers are opaque to the controller anyway
    pack_apply_message = None

KEY = b"5e3d1a2b-7c4f4e0a9b8d6c5e4f3a2b1c"
SESSION = "c9ba71fe-209a54a992e0052016421289"
ENGINE = "ee1a0460-e501e2edb0e1508a29bdbcf6"
PID = 4242
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "unit", "wire", "data")
UTC = datetime.timezone.utc


def header(session, msg_type, n, date):
    h = session.msg_header(msg_type)
    h["msg_id"] = "%s_%d_%d" % (session.session, PID, n)
    h["date"] = date
    return h


def write_frames(name, frames):
    with open(os.path.join(DATA, name + ".frames"), "wb") as f:
        f.write(struct.pack(">I", len(frames)))
        for fr in frames:
            fr = bytes(fr)
            f.write(struct.pack(">I", len(fr)))
            f.write(fr)


def entry(name, scheme, frames, idents, msg, date_text):
    """What the C tests expect of a message: counts, ids, and each JSON part as Python reads it."""
    delim = len(idents)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=UTC)
    date = datetime.datetime.strptime(date_text.replace("Z", "+0000"),
                                      "%Y-%m-%dT%H:%M:%S.%f%z" if "." in date_text
                                      else "%Y-%m-%dT%H:%M:%S%z")
    parts = [json.loads(bytes(f).decode("utf-8")) for f in frames[delim + 2:delim + 6]]
    return {
        "name": name,
        "file": name + ".frames",
        "scheme": scheme,
        "nidents": len(idents),
        "nbuffers": len(frames) - len(idents) - 6,
        "msg_type": msg["header"]["msg_type"],
        "msg_id": msg["header"]["msg_id"],
        "parent_msg_id": msg["parent_header"].get("msg_id"),
        "date": date_text,
        "date_us": (date - epoch) // datetime.timedelta(microseconds=1),
        "signature": bytes(frames[delim + 1]).decode("ascii"),
        "parts": parts,
    }


def main():
    os.makedirs(DATA, exist_ok=True)
    s256 = Session(key=KEY, signature_scheme="hmac-sha256", session=SESSION, username="username")
    s512 = Session(key=KEY, signature_scheme="hmac-sha512", session=SESSION, username="username")
    eng = Session(key=KEY, signature_scheme="hmac-sha256", session=ENGINE, username="engine")
    d1 = datetime.datetime(2026, 11, 26, 11, 50, 34, 70194, tzinfo=UTC)
    d2 = datetime.datetime(2026, 11, 26, 11, 50, 35, 0, tzinfo=UTC)  # isoformat drops .000000
    manifest = []

    # apply_request with buffers, the last one equal to the delimiter (split must take the first).
    if pack_apply_message is not None:
        bufs = list(pack_apply_message(sum, ([1, 2, 3],), {}))
    else:
        bufs = [b"\x80\x04fake-pickle", b"\x00\x01\x02"]
    bufs = [bytes(b) for b in bufs] + [b"\x00\xff" * 300, b"<IDS|MSG>"]
    h = header(s256, "apply_request", 1, d1)
    msg = s256.msg("apply_request", content={}, header=h,
                   metadata={"after": [], "follow": [], "timeout": None, "targets": [],
                             "retries": 0})
    frames = s256.serialize(msg) + bufs
    write_frames("apply_request", frames)
    manifest.append(entry("apply_request", "hmac-sha256", frames, [], msg,
                          "2026-11-26T11:50:34.070194Z"))

    # execute_request with non-ASCII code, sent through a ROUTER: one binary client identity.
    h = header(s256, "execute_request", 2, d1)
    code = "print('h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001f600')"
    msg = s256.msg("execute_request", header=h,
                   content={"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False})
    idents = [b"\x00\x80\x00\x00\x29"]
    frames = s256.serialize(msg, ident=idents)
    write_frames("execute_request", frames)
    manifest.append(entry("execute_request", "hmac-sha256", frames, idents, msg,
                          "2026-11-26T11:50:34.070194Z"))

    # registration_request from an engine, with a date that has no fraction.
    h = header(eng, "registration_request", 0, d2)
    msg = eng.msg("registration_request", header=h, content={"uuid": ENGINE, "id": None})
    frames = eng.serialize(msg)
    write_frames("registration_request", frames)
    manifest.append(entry("registration_request", "hmac-sha256", frames, [], msg,
                          "2026-11-26T11:50:35Z"))

    # An engine's apply_reply on its way back through a ROUTER-to-ROUTER relay: two identities.
    parent = header(s256, "apply_request", 7, d1)
    h = header(eng, "apply_reply", 3, d1)
    msg = eng.msg("apply_reply", header=h, parent=parent,
                  content={"status": "ok"},
                  metadata={"engine": ENGINE, "started": "2026-11-26T11:50:34.080000Z",
                            "dependencies_met": True, "is_broadcast": False,
                            "big": 2 ** 62 + 1})
    idents = [ENGINE.encode(), b"\x00k\x8bEg"]
    frames = eng.serialize(msg, ident=idents) + [b"result-buffer"]
    write_frames("routed_reply", frames)
    manifest.append(entry("routed_reply", "hmac-sha256", frames, idents, msg,
                          "2026-11-26T11:50:34.070194Z"))

    # The same kind of request signed with hmac-sha512.
    h = header(s512, "queue_request", 5, d1)
    msg = s512.msg("queue_request", header=h, content={"targets": None, "verbose": False})
    frames = s512.serialize(msg)
    write_frames("sha512", frames)
    manifest.append(entry("sha512", "hmac-sha512", frames, [], msg,
                          "2026-11-26T11:50:34.070194Z"))

    # Known answer: compact parts in a fixed key order, as the C encoder writes them.
    compact = dict(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    ka_header = {"msg_id": SESSION + "_4242_9", "msg_type": "db_reply", "username": "username",
                 "session": SESSION, "date": "2026-11-26T11:50:36.000001Z", "version": "5.3"}
    ka_parent = {"msg_id": "parent-\u00fc\u00df", "msg_type": "db_request"}
    ka_metadata = {}
    ka_content = {"status": "ok", "records": [{"n": 9007199254740993, "neg": -12, "t": True,
                                               "f": False, "z": None, "s": "\u65e5\"\\/"}]}
    parts = [json.dumps(p, **compact).encode("utf-8")
             for p in (ka_header, ka_parent, ka_metadata, ka_content)]
    # Signatures as jupyter_client computes them (hmac with hashlib's constructor), for several
    # schemes and for a key longer than the hash's block (which HMAC hashes first).
    long_key = (KEY * 6)[:200]
    signatures = []
    for scheme in ("hmac-sha256", "hmac-sha512", "hmac-sha1", "hmac-md5", "hmac-sha3_256",
                   "hmac-sha224"):
        for key in (KEY, long_key):
            s = Session(key=key, signature_scheme=scheme)
            signatures.append({"scheme": scheme, "key": key.decode(),
                               "signature": s.sign(parts).decode("ascii")})
    known = {
        "parts": [p.decode("utf-8") for p in parts],
        "signatures": signatures,
    }

    with open(os.path.join(DATA, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"key": KEY.decode(), "messages": manifest, "known_answer": known}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote %d messages to %s" % (len(manifest), os.path.relpath(DATA)), file=sys.stderr)


if __name__ == "__main__":
    main()
