"""benchmarks/report.py on the committed CPU-tier result: every table renders, and unmatched figures are flagged."""

import json
from pathlib import Path

from benchmarks.report import render

RESULT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cpu.json"


def test_report_renders_committed_cpu_result_and_flags_unmatched_points():
    result = json.loads(RESULT.read_text())
    report = render(result)
    summary = result["summary"]
    assert f"**{summary['speed_vs_mdlm']:.2f}×**" in report
    for arm in ("ldlm", "ldlm-sampled", "ar", "mdlm"):
        assert f"| {arm} |" in report
    # argmax LDLM never reaches the data's entropy: its figure must be called out as not comparable
    unmatched = [k for k, ok in summary["entropy_matched_within_sweep"].items() if not ok]
    assert unmatched and "Not matched: the knob sweep of " + ", ".join(unmatched) in report
    for ablation in result["ablations"]:
        line = next(row for row in report.splitlines() if row.startswith(f"| {ablation['ablation']} |"))
        assert ("not matched" in line) == (not ablation["at_matched_entropy"]["matched"])
