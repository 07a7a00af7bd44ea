"""The harness's progress log: one timestamped line per stage on stdout."""

import time


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
