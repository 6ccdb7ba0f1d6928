#!/usr/bin/env python3
"""unknown_agent.py OUTDIR: one echo, one append to OUTDIR/ledger.txt (an
`effect`), then OUTDIR/done.txt. Prints how the append was answered."""
import sys

import agentd

out = sys.argv[1]
c = agentd.connect()
c.call("agentd.echo", {"value": 1})
try:
    c.call("fs.write", {"path": out + "/ledger.txt", "content": "entry\n", "append": True})
    print("append: ok", flush=True)
except agentd.RemoteError as e:
    print("append: error %d" % e.code, flush=True)
c.call("fs.write", {"path": out + "/done.txt", "content": "done\n"})
print("finished", flush=True)
