#!/usr/bin/env python3
"""Speaks raw frames on fd 3 to check the tools/call reply's text block:
with "_meta": {"agentd/text": false} the reply's content is [], otherwise it
holds the result's text, on live calls (attempt 1) and on the same calls
replayed from the journal (attempt 2, each with the other setting). Every
reply is compared byte for byte; exits 1 on the first difference, with 1 at
the end of attempt 1 too (so agentd starts attempt 2).

usage: text_agent.py
"""
import json
import os
import sys

fd = int(os.environ.get("AGENTD_FD", "3"))
attempt = int(os.environ["AGENTD_ATTEMPT"])
rbuf = b""
next_id = 1


def send(obj):
    data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def recv_line():
    global rbuf
    while b"\n" not in rbuf:
        chunk = os.read(fd, 65536)
        if not chunk:
            sys.exit("channel closed")
        rbuf += chunk
    line, rbuf = rbuf.split(b"\n", 1)
    return line.decode()


def call(args, meta):
    global next_id
    rid, next_id = next_id, next_id + 1
    params = {"name": "agentd.echo", "arguments": args}
    if meta is not None:
        params["_meta"] = meta
    send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params})
    return rid, recv_line()


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


# (arguments, _meta on attempt 1, _meta on attempt 2, the text block wanted
# on attempt 1, on attempt 2); the last is a tool error (isError: true).
OFF = {"agentd/text": False}
calls = [
    ({"value": 'a"b\\c\n'}, None, OFF, True, False),
    ({"value": [1, {"k": None}]}, {"agentd/text": False, "progressToken": "p"}, None, False, True),
    ({"value": 3}, {"agentd/text": True}, {"agentd/text": "no"}, True, True),
    ({"value": "x" * 10240}, OFF, OFF, False, False),
    ({"bogus": 1}, OFF, {}, False, True),
]

# A _meta that is not an object is refused like any bad params, and takes
# no seq.
send({"jsonrpc": "2.0", "id": 0, "method": "tools/call",
      "params": {"name": "agentd.echo", "arguments": {}, "_meta": False}})
got = json.loads(recv_line())
if got.get("error", {}).get("code") != -32602:
    sys.exit(f"_meta false: expected -32602, got {got}")

for seq, (args, m1, m2, t1, t2) in enumerate(calls, 1):
    meta, text = (m1, t1) if attempt == 1 else (m2, t2)
    rid, line = call(args, meta)
    reply = json.loads(line)
    sc = reply["result"]["structuredContent"]
    is_error = "error" in sc
    if is_error != ("bogus" in args) or (not is_error and sc != {"value": args["value"]}):
        sys.exit(f"call {seq}: structuredContent {sc}")
    # The journal's canonical text: keys sorted, as the supervisor frames it.
    body = json.dumps(sc, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    content = "[]" if not text else "[" + compact({"type": "text", "text": body}) + "]"
    want = ('{"jsonrpc":"2.0","id":%d,"result":{"content":%s,"structuredContent":%s,'
            '"isError":%s,"_meta":{"agentd/seq":%d%s}}}'
            % (rid, content, body, "true" if is_error else "false", seq,
               ',"agentd/replayed":true' if attempt == 2 else ""))
    if line != want:
        sys.exit(f"attempt {attempt} call {seq}:\n got  {line[:400]}\n want {want[:400]}")
    print(f"attempt {attempt} call {seq}: {len(line) + 1} bytes, "
          f"{'with' if text else 'without'} the text block", flush=True)
sys.exit(1 if attempt == 1 else 0)
