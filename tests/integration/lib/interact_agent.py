"""Agent for the approvals and messages tests.

interact_agent.py URL TAG GATED [crash_after_ask] [checkpoint]

POSTs effect free-TAG-1, (checkpoint {"step": 1}), then GATED-TAG (a call the
policy answers `ask`), then free-TAG-2, printing what happened to each and
every user message it received, marked with its attempt. With
crash_after_ask, attempt 1 dies after the gated call (to test replay).
"""
import os
import sys

import agentd

url, tag, gated = sys.argv[1], sys.argv[2], sys.argv[3]
flags = sys.argv[4:]
attempt = os.environ.get("AGENTD_ATTEMPT")
c = agentd.connect()
state = c.resume(use_state="checkpoint" in flags).get("state")


def say(line):
    print(f"[{attempt}] {line}", flush=True)


def post(name):
    return c.call("http.request", {"method": "POST", "url": f"{url}/effect/{name}"})


def show_messages(where):
    got = c.messages()
    for m in got:
        say(f"msg@{where}: {m.get('text')} mode={m.get('mode')}")
    return got


if state is None:
    post(f"free-{tag}-1")
    if "checkpoint" in flags:
        c.checkpoint({"step": 1})
else:
    say(f"resumed from state {state}")
post(f"free-{tag}-1b")
if any(m.get("mode") == "restart" for m in show_messages("1b")):
    say("replanned")
    say("done")
    sys.exit(0)
try:
    r = post(f"{gated}-{tag}")
    say(f"asked: approved status={r['status']} replayed={c.last_replayed}")
except agentd.Denied as e:
    say(f"asked: denied reason={e.data.get('reason')} approved={e.data.get('approved')}")
except agentd.Interrupted as e:
    say(f"asked: interrupted message={e.user_message}")
show_messages("asked")
if "crash_after_ask" in flags and attempt == "1":
    os._exit(3)
post(f"free-{tag}-2")
show_messages("2")
for m in c.inbox():
    say(f"inbox: {m.get('text')} mode={m.get('mode')}")
say("done")
