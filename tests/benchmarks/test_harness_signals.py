"""Stopping the harness with `kill` stops the training subprocess it waits for."""

import os
import signal
import subprocess
import sys
import time

from benchmarks.paths import ROOT


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_to_the_harness_stops_its_trainer(tmp_path):
    pid_file = tmp_path / "trainer.pid"
    trainer = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    harness = ("import sys\n"
               "from benchmarks.ldlm_arms import run_logged\n"
               "from benchmarks.run import stop_children_on_sigterm\n"
               "stop_children_on_sigterm()\n"
               f"run_logged('train stand-in', [sys.executable, '-c', {trainer!r}])\n")
    parent = subprocess.Popen([sys.executable, "-c", harness], cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()):
        assert parent.poll() is None and time.monotonic() < deadline, "the stand-in trainer never started"
        time.sleep(0.1)
    trainer_pid = int(pid_file.read_text())
    try:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 128 + signal.SIGTERM
        assert not is_running(trainer_pid), "the harness exited and left its trainer running"
    finally:
        if is_running(trainer_pid):
            os.kill(trainer_pid, signal.SIGKILL)
