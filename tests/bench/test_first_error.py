"""bench/first_error.py keeps working: every case it times still exits as it expects (a located mistake: 2)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_first_error_benchmark_runs_every_case_and_prints_its_ratios():
    done = subprocess.run([sys.executable, "bench/first_error.py", "--repeat", "1"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len([line for line in lines if re.search(r": \d+\.\d\d s \(\d+\.\d\dx; goal", line)]) == 7
    assert re.fullmatch(r"worst: run's first error \d+\.\d\dx \(goal 1x\), validate and --help \d+\.\d\dx \(goal 0\.33x\)", lines[-1])
