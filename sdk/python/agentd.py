"""agentd SDK for agent code running inside an agentd sandbox.

The sandbox's only way out is one channel to the supervisor: an AF_UNIX stream
socket (fd 3, named in AGENTD_FD) carrying newline-delimited JSON-RPC 2.0 with
MCP method names. This module is stdlib only so it works in any Python 3.8+.

    import agentd
    client = agentd.connect()
    state = client.resume()
    data = client.call("fs.read", {"path": "/srv/project/README.md"})

Every failure raises a subclass of agentd.Error.
"""

import base64
import json
import os
import socket
import threading

__all__ = [
    "Client",
    "connect",
    "Error",
    "ProtocolError",
    "Denied",
    "ToolError",
    "Diverged",
    "Interrupted",
    "UnknownOutcome",
    "LimitReached",
    "RemoteError",
    "PROTOCOL_VERSION",
    "MAX_FRAME",
]

PROTOCOL_VERSION = "2025-06-18"
MAX_FRAME = 4 << 20
_RECV_CHUNK = 65536

# JSON-RPC error codes (see docs/protocol.md).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
DENIED = -32001
DIVERGED = -32002
INTERRUPTED = -32003
UNKNOWN_OUTCOME = -32004
LIMIT_REACHED = -32005
FRAME_TOO_LARGE = -32006


class Error(Exception):
    """Base class of every error this module raises."""


class ProtocolError(Error):
    """The channel is unusable: not under agentd, closed, or a malformed frame."""


class RemoteError(Error):
    """The supervisor answered with a JSON-RPC error this module has no class for."""

    def __init__(self, code, message, data=None):
        super().__init__("%s (JSON-RPC %d)" % (message, code))
        self.code = code
        self.message = message
        self.data = data


class Denied(RemoteError):
    """Policy (or a human, for an `ask` rule) refused the call."""

    def __init__(self, code, message, data=None):
        super().__init__(code, message, data)
        data = data if isinstance(data, dict) else {}
        self.decision = data.get("decision")
        self.rule = data.get("rule")
        self.reason = data.get("reason") or message

    def __str__(self):
        return "denied by %s: %s" % (
            "rule %r" % self.rule if self.rule else "policy",
            self.reason,
        )


class Diverged(RemoteError):
    """A call replayed after a restart does not match the journal."""

    def __init__(self, code, message, data=None):
        super().__init__(code, message, data)
        data = data if isinstance(data, dict) else {}
        self.seq = data.get("seq")
        self.recorded = data.get("recorded")
        self.received = data.get("received")


class Interrupted(RemoteError):
    """The user interrupted the pending call; the message says what they want."""

    def __init__(self, code, message, data=None):
        super().__init__(code, message, data)
        data = data if isinstance(data, dict) else {}
        self.user_message = data.get("message")


class UnknownOutcome(RemoteError):
    """A crash left this call's effect unknown and it may not be rerun blindly."""


class LimitReached(RemoteError):
    """A budget or rate limit of the run was reached."""


class ToolError(Error):
    """The tool ran and failed (isError true), e.g. ENOENT or a refused connection."""

    def __init__(self, code, message, result=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.result = result


_ERROR_CLASSES = {
    DENIED: Denied,
    DIVERGED: Diverged,
    INTERRUPTED: Interrupted,
    UNKNOWN_OUTCOME: UnknownOutcome,
    LIMIT_REACHED: LimitReached,
}


def _encode(obj):
    # allow_nan=False: the supervisor parses strict JSON; json.dumps escapes
    # control characters, so a frame never contains a raw newline.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Client:
    """One agent channel. Calls are serialised; it is safe to share across threads."""

    def __init__(self, sock, max_frame=MAX_FRAME):
        self._sock = sock
        self._max_frame = max_frame
        self._buf = bytearray()
        self._next_id = 1
        self._lock = threading.RLock()
        self._messages = []
        self._unclaimed = {}
        self.last_replayed = False
        self.last_seq = None

    # -- lifecycle -------------------------------------------------------

    def close(self):
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- framing ---------------------------------------------------------

    def _send(self, obj):
        if self._sock is None:
            raise ProtocolError("agentd channel is closed")
        data = _encode(obj).encode("utf-8") + b"\n"
        if len(data) - 1 > self._max_frame:
            raise ProtocolError("request of %d bytes exceeds the %d byte frame limit"
                                % (len(data) - 1, self._max_frame))
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise ProtocolError("cannot write to the agentd channel: %s" % e) from None

    def _read_frame(self):
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not line.strip():
                    continue
                return line
            if len(self._buf) > self._max_frame:
                raise ProtocolError("frame from supervisor exceeds %d bytes" % self._max_frame)
            try:
                chunk = self._sock.recv(_RECV_CHUNK)
            except InterruptedError:
                continue
            except OSError as e:
                raise ProtocolError("cannot read the agentd channel: %s" % e) from None
            if not chunk:
                raise ProtocolError("the supervisor closed the agentd channel")
            self._buf += chunk

    def _read_message(self):
        line = self._read_frame()
        try:
            msg = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolError("invalid JSON from supervisor: %s" % e) from None
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            raise ProtocolError("not a JSON-RPC 2.0 message: %r" % line[:200])
        return msg

    def _handle_incoming(self, msg):
        """Deal with a message that is not a response: queue or answer it."""
        method = msg.get("method")
        if "id" not in msg:
            if method == "agentd/message":
                params = msg.get("params")
                self._messages.append(params if isinstance(params, dict) else {})
            # Other notifications (progress, cancelled...) need no action here.
            return
        # A request from the supervisor: answer ping, refuse anything else.
        if method == "ping":
            self._send({"jsonrpc": "2.0", "id": msg["id"], "result": {}})
        else:
            self._send({
                "jsonrpc": "2.0",
                "id": msg["id"],
                "error": {"code": METHOD_NOT_FOUND, "message": "method not found"},
            })

    # -- requests --------------------------------------------------------

    def request(self, method, params=None):
        """Send one JSON-RPC request and return its result; raise on an error reply."""
        with self._lock:
            req_id = self._next_id
            self._next_id += 1
            req = {"jsonrpc": "2.0", "id": req_id, "method": method}
            if params is not None:
                req["params"] = params
            self._send(req)
            while True:
                if req_id in self._unclaimed:
                    msg = self._unclaimed.pop(req_id)
                else:
                    msg = self._read_message()
                if "method" in msg:
                    self._handle_incoming(msg)
                    continue
                if "id" not in msg:
                    raise ProtocolError("response without id: %r" % msg)
                if msg["id"] != req_id:
                    # Not ours (nothing else is in flight today): keep it
                    # rather than misattribute it, but bound the backlog.
                    if msg["id"] is None or len(self._unclaimed) >= 64:
                        err = msg.get("error") or {}
                        raise ProtocolError("unexpected response from supervisor: %s"
                                            % err.get("message", msg))
                    self._unclaimed[msg["id"]] = msg
                    continue
                return self._result_of(msg)

    @staticmethod
    def _result_of(msg):
        if "error" in msg:
            err = msg["error"]
            if not isinstance(err, dict) or not isinstance(err.get("code"), int):
                raise ProtocolError("malformed error object: %r" % (err,))
            code = err["code"]
            message = str(err.get("message", ""))
            data = err.get("data")
            if code in _ERROR_CLASSES:
                raise _ERROR_CLASSES[code](code, message, data)
            if code in (PARSE_ERROR, INVALID_REQUEST, FRAME_TOO_LARGE):
                raise ProtocolError("supervisor rejected the request: %s (JSON-RPC %d)"
                                    % (message, code))
            raise RemoteError(code, message, data)
        if "result" not in msg:
            raise ProtocolError("response with neither result nor error")
        return msg["result"]

    def notify(self, method, params=None):
        """Send a JSON-RPC notification (no reply)."""
        with self._lock:
            note = {"jsonrpc": "2.0", "method": method}
            if params is not None:
                note["params"] = params
            self._send(note)

    def initialize(self, name="agentd-python", version="0.1.0"):
        """MCP handshake; optional with agentd. Returns the server's result."""
        res = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": name, "version": version},
        })
        self.notify("notifications/initialized")
        return res

    def ping(self):
        self.request("ping")
        return True

    def list_tools(self):
        """The tools this run may use: a list of {name, description, inputSchema}."""
        res = self.request("tools/list")
        tools = res.get("tools") if isinstance(res, dict) else None
        if not isinstance(tools, list):
            raise ProtocolError("tools/list result has no tools list")
        return tools

    def call(self, tool, args=None):
        """Call a tool; return its structuredContent.

        Raises Denied, ToolError, Diverged, Interrupted, UnknownOutcome,
        LimitReached or ProtocolError. After the call, last_replayed says
        whether the result came from the journal instead of a live run.
        """
        # Only structuredContent is read: no text copy of it is needed.
        res = self.request("tools/call", {"name": tool, "arguments": args or {},
                                          "_meta": {"agentd/text": False}})
        if not isinstance(res, dict):
            raise ProtocolError("tools/call result is not an object")
        meta = res.get("_meta") if isinstance(res.get("_meta"), dict) else {}
        self.last_replayed = meta.get("agentd/replayed") is True
        self.last_seq = meta.get("agentd/seq")
        content = res.get("structuredContent")
        if content is None:
            content = self._content_from_text(res)
        if res.get("isError"):
            err = content.get("error") if isinstance(content, dict) else None
            if not isinstance(err, dict):
                err = {}
            raise ToolError(err.get("code", "EUNKNOWN"), err.get("message", "tool failed"), content)
        return content

    @staticmethod
    def _content_from_text(res):
        # A plain MCP server may send only text content; agentd always sends
        # structuredContent, whose compact JSON is also the first text block.
        for block in res.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "text":
                try:
                    return json.loads(block.get("text", ""))
                except ValueError:
                    return {"text": block.get("text", "")}
        return {}

    def resume(self, use_state=True):
        """Ask where this attempt starts: {run_id, attempt, state, state_seq, journal_len}.

        With use_state true and a saved state, calls up to state_seq count as
        done and the agent continues from `state`; otherwise it re-executes
        from the start and completed calls are replayed from the journal.
        """
        res = self.request("agentd/resume", {"use_state": bool(use_state)})
        if not isinstance(res, dict):
            raise ProtocolError("agentd/resume result is not an object")
        return res

    def checkpoint(self, state):
        """Save a JSON-serialisable state blob; returns the seq it was saved at."""
        res = self.request("agentd/checkpoint", {"state": state})
        return res.get("seq") if isinstance(res, dict) else None

    def messages(self):
        """Take the user messages (agentd/message params) queued so far."""
        with self._lock:
            out, self._messages = self._messages, []
            return out

    def inbox(self):
        """Take every user message: those already pushed as agentd/message
        notifications, then the ones still queued (agentd/inbox marks them
        delivered). Each is {id, text, mode}."""
        res = self.request("agentd/inbox")
        msgs = res.get("messages") if isinstance(res, dict) else None
        if not isinstance(msgs, list):
            raise ProtocolError("agentd/inbox result has no messages list")
        return self.messages() + [m for m in msgs if isinstance(m, dict)]

    # -- convenience wrappers for the built-in tools ---------------------

    def fs_read(self, path, offset=None, length=None):
        """Read a host file granted by policy: str for text, bytes for binary.

        Without a length it reads until eof (one call per chunk the
        supervisor returns).
        """
        parts = []
        pos = offset or 0
        binary = False
        while True:
            args = {"path": path}
            if pos:
                args["offset"] = pos
            if length is not None:
                args["length"] = length
            res = self.call("fs.read", args)
            if "content_base64" in res:
                chunk = base64.b64decode(res["content_base64"])
                binary = True
            else:
                chunk = res.get("content", "").encode("utf-8")
            parts.append(chunk)
            if length is not None or res.get("eof", True) or not chunk:
                break
            pos += len(chunk)
        data = b"".join(parts)
        if binary:
            return data
        return data.decode("utf-8")

    def fs_write(self, path, content, append=False):
        """Write (or append) text to a host file granted by policy; returns {path, bytes}."""
        args = {"path": path, "content": content}
        if append:
            args["append"] = True
        return self.call("fs.write", args)

    def fs_list(self, path):
        return self.call("fs.list", {"path": path}).get("entries", [])

    def fs_stat(self, path):
        return self.call("fs.stat", {"path": path})

    def fs_delete(self, path):
        return self.call("fs.delete", {"path": path})

    def http_request(self, method, url, headers=None, body=None, timeout_ms=None):
        """HTTP through agentd; returns {status, headers (lowercase names), body}."""
        args = {"method": method, "url": url}
        if headers:
            args["headers"] = dict(headers)
        if body is not None:
            args["body"] = body
        if timeout_ms is not None:
            args["timeout_ms"] = int(timeout_ms)
        return self.call("http.request", args)


def connect(fd=None, max_frame=MAX_FRAME):
    """Open the agent channel (AGENTD_FD, default 3). Raises ProtocolError outside agentd."""
    if fd is None:
        env = os.environ.get("AGENTD_FD")
        if env is None:
            raise ProtocolError(
                "not running under agentd: AGENTD_FD is not set "
                "(start the agent with `agentd run -- CMD`)")
        try:
            fd = int(env)
        except ValueError:
            raise ProtocolError("AGENTD_FD is not a number: %r" % env) from None
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise ProtocolError("not running under agentd: fd %d is not the agentd channel (%s)"
                            % (fd, e.strerror or e)) from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ProtocolError("not running under agentd: fd %d is not a unix stream socket" % fd)
    sock.setblocking(True)
    return Client(sock, max_frame=max_frame)
