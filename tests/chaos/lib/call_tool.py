#!/usr/bin/env python3
"""call_tool.py TOOL JSON [TOOL JSON...]: make the calls in order, print each result as JSON."""
import json
import sys

import agentd

c = agentd.connect()
for tool, args in zip(sys.argv[1::2], sys.argv[2::2]):
    print(json.dumps(c.call(tool, json.loads(args)), separators=(",", ":")))
