#!/usr/bin/env python3
"""WAL frames written per call by a group commit across many runs, for
journal layouts (docs/performance.md, agentd serve, "One index per journal
row"). Rows shaped like agentd.echo calls; RUNS runs of which PER, picked
at random, make one call per round; a round commits their intents, then
their outcomes, as the supervisor's batch does. Not part of `make bench`.

usage: bench/journal_frames.py [DIR]"""
import os
import random
import sqlite3
import sys
import tempfile
import time

RUNS, PER, ROUNDS, PAGE = 100, 70, 400, 2048
COLS = ("run, seq, ord, tool, args_hash, args, status, result, attempt, decision, rule, "
        "started_ms, finished_ms, link, chain, owner_uid")
TABLE = ("CREATE TABLE journal (run TEXT NOT NULL, seq INTEGER NOT NULL, ord INTEGER NOT NULL,"
         " tool TEXT NOT NULL, args_hash TEXT NOT NULL, args TEXT NOT NULL,"
         " status INTEGER NOT NULL, result TEXT, attempt INTEGER NOT NULL,"
         " decision TEXT NOT NULL, rule TEXT NOT NULL, started_ms INTEGER NOT NULL,"
         " finished_ms INTEGER NOT NULL, link TEXT NOT NULL, chain TEXT NOT NULL,"
         " owner_uid INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (run, seq))")
LAYOUTS = {
    "v4: key, (run, ord), (run, started_ms)":
        TABLE + "; CREATE UNIQUE INDEX o ON journal(run, ord);"
        " CREATE INDEX s ON journal(run, started_ms);",
    "v5: key, (owner_uid, started_ms)":
        TABLE + "; CREATE INDEX w ON journal(owner_uid, started_ms);",
    "WITHOUT ROWID, (owner_uid, started_ms)":
        TABLE + " WITHOUT ROWID; CREATE INDEX w ON journal(owner_uid, started_ms);",
    "v5 keyed by an integer run number":
        TABLE.replace("run TEXT", "run INTEGER") +
        "; CREATE INDEX w ON journal(owner_uid, started_ms);",
    "key only": TABLE + ";",
}


def measure(path, schema):
    for f in (path, path + "-wal", path + "-shm"):
        if os.path.exists(f):
            os.remove(f)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size={PAGE}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    db.execute("PRAGMA wal_autocheckpoint=0")
    runs = [f"r-20261126-152900-{random.getrandbits(32):08x}" for _ in range(RUNS)]
    if "run INTEGER" in schema:
        runs = list(range(1, RUNS + 1))
    seq, h, t = [0] * RUNS, "a" * 64, [1764170000000]

    def rounds(n):
        for _ in range(n):
            pick = random.sample(range(RUNS), PER)
            t[0] += 4
            db.execute("BEGIN IMMEDIATE")
            for i in pick:
                seq[i] += 1
                db.execute(f"INSERT INTO journal({COLS}) VALUES "
                           "(?,?,?,'agentd.echo',?,?,0,NULL,1,'allow','echo',?,0,?,?,1000)",
                           (runs[i], seq[i], seq[i], h, '{"value":%d}' % seq[i], t[0], h, h))
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            for i in pick:
                db.execute("UPDATE journal SET status = 1, result = ?, finished_ms = ?, chain = ? "
                           "WHERE run = ? AND seq = ? AND status = 0",
                           ('{"content":[{"text":"{\\"value\\":%d}","type":"text"}]}' % seq[i],
                            t[0] + 1, h, runs[i], seq[i]))
            db.execute("COMMIT")

    rounds(ROUNDS)  # every run has a few hundred rows already
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cpu = time.process_time()
    rounds(ROUNDS)
    cpu = time.process_time() - cpu
    frames = os.path.getsize(path + "-wal") / (PAGE + 24)
    db.close()
    for f in (path, path + "-wal", path + "-shm"):
        if os.path.exists(f):
            os.remove(f)
    return frames / (ROUNDS * PER), cpu * 1e6 / (ROUNDS * PER)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="agentd-frames-")
    print(f"{RUNS} runs, {PER} calls per commit pair, {PAGE}-byte pages")
    for name, schema in LAYOUTS.items():
        f, us = measure(os.path.join(d, "j.db"), schema)
        print(f"  {name:40s} {f:5.2f} WAL frames per call  ({us:.0f} us CPU per call here)")


if __name__ == "__main__":
    main()
