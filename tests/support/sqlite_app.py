#!/usr/bin/env python3
"""A stand-in for an application that has a SQLite database open, for tests.

It runs in its own process (SQLite's POSIX locks are per process) and uses the
system's SQLite through Python, as another application would.

    sqlite_app.py transfer DB STOP_FILE [checkpoint]
                                          move amounts between accounts until STOP_FILE exists;
                                          in WAL mode, no automatic checkpoints unless "checkpoint"
    sqlite_app.py hold DB STATE           open DB, reach STATE, print "ready", then serve stdin until it closes:
                                          STATE: open (never queried), idle, read, write,
                                          exclusive (rollback mode: blocks even readers)
                                          "end" ends the transaction (ROLLBACK), "sql QUERY" prints the
                                          first column of the first row (or "error: ...")
    sqlite_app.py insert DB STOP_FILE     insert rows (k, ...) into log(k INTEGER PRIMARY KEY), one committed
                                          transaction each, about every 2 ms, until STOP_FILE exists; prints
                                          "started" after its first commit, then at the end every k it
                                          committed, one line (space-separated)
    sqlite_app.py crash DB SQL            run SQL in one committed transaction, then die without closing
    sqlite_app.py crash-mid DB SQL        run SQL inside a transaction, then die before COMMIT

`transfer` expects tables accounts(id INTEGER PRIMARY KEY, balance INTEGER) and
meta(commits INTEGER); every transaction moves an amount and counts itself,
so the sum of balances never changes. It prints its commit count when stopped.
"""
import os
import random
import sqlite3
import sys
import time


def connect(path):
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    return conn


def transfer(path, stop_file, checkpoint):
    conn = connect(path)
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode == "wal" and not checkpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    n = conn.execute("SELECT max(id) FROM accounts").fetchone()[0]
    rng = random.Random(42)
    commits = 0
    while not os.path.exists(stop_file):
        a, b = rng.randint(1, n), rng.randint(1, n)
        amount = rng.randint(1, 100)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, a))
        conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, b))
        conn.execute("UPDATE meta SET commits = commits + 1")
        conn.execute("COMMIT")
        commits += 1
        if mode != "wal":
            # Rollback mode has no fairness: a writer that never pauses can
            # starve every reader past its busy timeout on a loaded machine.
            # Half a millisecond keeps it busy (hundreds of commits a second).
            time.sleep(0.0005)
    conn.close()
    print(commits, flush=True)


def hold(path, state):
    conn = connect(path)
    if state == "idle":
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    elif state == "read":
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    elif state == "write":
        conn.execute("BEGIN IMMEDIATE")
    elif state == "exclusive":
        # Rollback mode: no other connection can even read until "end".
        conn.execute("BEGIN EXCLUSIVE")
    elif state != "open":
        sys.exit("unknown state " + state)
    print("ready", flush=True)
    for line in sys.stdin:
        line = line.strip()
        try:
            if line == "end":
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                print("ok", flush=True)
            elif line.startswith("sql "):
                row = conn.execute(line[4:]).fetchone()
                print(row[0] if row else "", flush=True)
        except sqlite3.Error as e:
            print("error: " + str(e), flush=True)
    conn.close()


def insert(path, stop_file):
    conn = connect(path)
    committed = []
    k = 0
    while not os.path.exists(stop_file):
        k += 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO log(k) VALUES (?)", (k,))
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            continue
        committed.append(k)
        if len(committed) == 1:
            print("started", flush=True)
        time.sleep(0.002)
    conn.close()
    print(" ".join(map(str, committed)), flush=True)


def crash(path, sql, commit):
    conn = connect(path)
    conn.execute("BEGIN")
    for stmt in sql.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    if commit:
        conn.execute("COMMIT")
    sys.stdout.flush()
    os._exit(0)


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "transfer":
        transfer(path, sys.argv[3], sys.argv[4:] == ["checkpoint"])
    elif cmd == "hold":
        hold(path, sys.argv[3])
    elif cmd == "insert":
        insert(path, sys.argv[3])
    elif cmd == "crash":
        crash(path, sys.argv[3], True)
    elif cmd == "crash-mid":
        crash(path, sys.argv[3], False)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
