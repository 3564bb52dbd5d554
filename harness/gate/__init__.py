"""Pre-release performance gates: budgets and baseline regressions that do not flake.

``parabench gate --budget FILE --current RUN_DIR [--baseline PATH]`` judges a
run dir against a scenario's budget and exits 0 (pass), 1 (a check failed) or
2 (bad input). The parts, in the order a gate runs them:

* ``harness.gate.budget`` — budget files (YAML), validated up front
  (``load_budget``); light to import, so a bad file is refused at once;
* ``harness.gate.rundata`` — raw per-run values from a run dir (client
  samples or server spans);
* ``harness.gate.baseline`` — baseline files (``write_baseline`` for
  ``--update-baseline``) and summary.json baselines (``load_baseline``);
* ``harness.gate.checks`` — the decisions (``run_gate``): limits with
  bootstrap intervals, regressions that fail only when significant *and*
  beyond tolerance, and the runs that would decide an open question;
* ``harness.gate.output`` — terminal table, Markdown, JUnit XML.

Example::

    from harness.gate.budget import load_budget
    from harness.gate.baseline import load_baseline
    from harness.gate.checks import run_gate
    from harness.gate.rundata import load_run_dir

    budget = load_budget("scenarios/research_assistant.budget.yaml")
    current = load_run_dir("reports/ci", budget.scenario)
    baseline = load_baseline("baselines/ra.json", budget.scenario, side=current.side)
    result = run_gate(budget, current, baseline)
    print(result.status, result.counts())

See docs/gates.md for every rule and why.
"""

from __future__ import annotations

from harness.gate.budget import Budget, load_budget

__all__ = ["Budget", "load_budget"]
