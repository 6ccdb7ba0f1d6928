"""Agent for the messages test: msg_agent.py URL TAG

POSTs free-TAG-1, waits for the file go1-TAG in its working directory, POSTs
free-TAG-2 (queued messages arrive as agentd/message before its reply),
waits for go2-TAG, takes its inbox (agentd/inbox), POSTs free-TAG-3. Attempt
1 then crashes, so attempt 2 replays everything, messages included.
"""
import os
import sys
import time

import agentd

url, tag = sys.argv[1], sys.argv[2]
attempt = os.environ.get("AGENTD_ATTEMPT")
c = agentd.connect()
c.resume(use_state=False)


def say(line):
    print(f"[{attempt}] {line}", flush=True)


def post(name):
    return c.call("http.request", {"method": "POST", "url": f"{url}/effect/{name}"})


def wait_for(name):
    for _ in range(600):
        if os.path.exists(name):
            return
        time.sleep(0.05)
    say(f"timeout waiting for {name}")
    sys.exit(1)


post(f"free-{tag}-1")
say("ready1")
wait_for(f"go1-{tag}")
post(f"free-{tag}-2")
for m in c.messages():
    say(f"msg@2: {m.get('text')} mode={m.get('mode')}")
say("ready2")
wait_for(f"go2-{tag}")
for m in c.inbox():
    say(f"inbox: {m.get('text')} mode={m.get('mode')}")
post(f"free-{tag}-3")
for m in c.messages():
    say(f"msg@3: {m.get('text')} mode={m.get('mode')}")
if attempt == "1":
    os._exit(3)
say("done")
