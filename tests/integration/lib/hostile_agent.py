#!/usr/bin/env python3
"""A hostile agent: speaks raw bytes on fd 3 to test the supervisor's defences.

usage: hostile_agent.py MODE
Each mode sends something bad, checks the supervisor's answer and exits 0 when
the answer is the expected JSON-RPC error (then proves the channel still works
with a ping), 1 otherwise. Modes that must end the run do so on purpose.
"""
import json
import os
import sys

fd = int(os.environ.get("AGENTD_FD", "3"))
rbuf = b""


def send(data: bytes):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def recv():
    global rbuf
    while b"\n" not in rbuf:
        chunk = os.read(fd, 65536)
        if not chunk:
            sys.exit("channel closed")
        rbuf += chunk
    line, rbuf = rbuf.split(b"\n", 1)
    return json.loads(line)


def expect_error(code):
    msg = recv()
    got = msg.get("error", {}).get("code")
    if got != code:
        sys.exit(f"expected error {code}, got {msg}")
    print(f"got expected error {code}: {msg['error'].get('message')}")


def ping_ok():
    send(b'{"jsonrpc":"2.0","id":99,"method":"ping"}\n')
    msg = recv()
    if msg.get("id") != 99 or msg.get("result") != {}:
        sys.exit(f"ping after bad input failed: {msg}")


mode = sys.argv[1]
if mode == "garbage":
    send(b"this is not json\n")
    expect_error(-32700)
elif mode == "utf8":
    send(b'{"jsonrpc":"2.0","id":1,"method":"ping","x":"\xff\xfe"}\n')
    expect_error(-32700)
elif mode == "deep":
    send(b"[" * 100000 + b"]" * 100000 + b"\n")
    expect_error(-32700)
elif mode == "dupkeys":
    send(b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}\n')
    expect_error(-32700)
elif mode == "unknown":
    send(b'{"jsonrpc":"2.0","id":1,"method":"no/such/method"}\n')
    expect_error(-32601)
elif mode == "badshape":
    send(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}\n')
    expect_error(-32602)
elif mode == "bigline":
    chunk = b"a" * (1 << 20)
    for _ in range(100):  # a 100 MB line
        send(chunk)
    send(b"\n")
    expect_error(-32006)
elif mode == "midframe":
    send(b'{"jsonrpc":"2.0","id":1,"meth')
    os._exit(3)
elif mode == "flood":
    try:
        for _ in range(1000):
            send(b"garbage\n")
    except OSError:
        pass
    import time
    time.sleep(30)  # the supervisor must kill us long before this
    sys.exit("not killed")
else:
    sys.exit("unknown mode")
ping_ok()
print("channel still works")
