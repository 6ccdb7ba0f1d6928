#!/usr/bin/env python3
"""Call one tool from inside the sandbox, agentd-call style, with the Python SDK.

usage: serve_call.py TOOL JSON_ARGS
Exit status: 0 success, 10 denied, 11 tool error, 12 anything else (not
python's own 1 and 2, so a missing script is not taken for a denial).
"""
import json
import sys

import agentd

try:
    agentd.connect().call(sys.argv[1], json.loads(sys.argv[2]))
except agentd.Denied:
    sys.exit(10)
except agentd.ToolError:
    sys.exit(11)
except Exception:
    sys.exit(12)
