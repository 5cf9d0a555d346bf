"""Subprocess for the SIGKILL test: fill an outbox, say "ready", keep writing until killed.

``python -m tests.integration.outbox_writer PATH N`` puts messages with payloads
``b"0"``, ``b"1"``, ... on one topic: N of them (in batches and single puts), prints
``ready N``, then keeps putting more, one batch at a time, until it is killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edge.outbox import Outbox, OutItem

TOPIC = "tw/v1/site1/gw1/telemetry/dev1"


def main(argv: list[str]) -> int:
    path, count = Path(argv[0]), int(argv[1])
    outbox = Outbox(path, max_messages=10_000_000, overflow="refuse_new")
    seq = 0
    while seq < count:
        if seq % 3 == 0:
            outbox.put(TOPIC, str(seq).encode())
            seq += 1
            continue
        n = min(50, count - seq)
        outbox.put_many([OutItem(TOPIC, str(i).encode()) for i in range(seq, seq + n)])
        seq += n
    print(f"ready {seq}", flush=True)
    while True:  # until SIGKILL: a kill lands between (or inside) transactions
        with outbox.transaction() as tx:
            tx.put_many([OutItem(TOPIC, str(i).encode()) for i in range(seq, seq + 20)])
            tx.set_cursor("writer", seq + 19)
        seq += 20
        time.sleep(0.0005)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
