"""Rules benchmark: 9 rules over 100,000 tasks, full and after 1% changed.

    python benchmarks/rules.py [--items 100000]

The 9 rules are the 8 built-in kinds plus one custom `require` rule with a
scope. Prints the full evaluation time, the incremental evaluation time after 1%
of the tasks changed (and how many tasks each evaluated), and, for each
expression engine considered, the cost of the custom rule's expression over every
task. Targets (issue 6): full <= 2 s, incremental <= 5% of full.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ledger_ingest import NOW, realistic_tasks, with_changes

from syncd.config import PolicySettings, RuleSettings
from syncd.ledger.repository import Ledger
from syncd.rules.engine import compile_rules, evaluate
from syncd.rules.expressions import task_context
from syncd.rules.store import RuleStore

REQUIRE = "estimate_hours > 0.0 || priority != 'high'"
SCOPE = "status != 'cancelled'"
RULES = [
    {"id": "owner", "kind": "single_owner"},
    {"id": "due", "kind": "due_date"},
    {"id": "priority", "kind": "priority"},
    {"id": "context", "kind": "context"},
    {"id": "deps", "kind": "dependency_risk"},
    {"id": "stale", "kind": "stale", "days": 5},
    {"id": "verify", "kind": "verify_before_close"},
    {"id": "soon", "kind": "due_soon", "days": 2},
    {"id": "estimate", "kind": "custom", "require": REQUIRE, "scope": SCOPE},
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    rules = compile_rules([RuleSettings.model_validate(r) for r in RULES])
    policy = PolicySettings()
    tasks = realistic_tasks(args.items)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(f"sqlite:///{Path(tmp) / 'rules.db'}")
        for start in range(0, len(tasks), 2000):
            ledger.ingest_page("gh", tasks[start : start + 2000], now=NOW)
        ledger.resolve_links()
        started = time.perf_counter()
        full = evaluate(ledger, rules, policy, NOW)
        full_seconds = time.perf_counter() - started
        opened = sum(c.open for c in full.rules.values())
        print(
            f"full evaluation: {full.evaluated:,} tasks x {len(rules)} rules in {full_seconds:.2f}s "
            f"({opened:,} open violations)  target <= 2 s"
        )
        changed, count = with_changes(tasks, 0.01)
        later = NOW + timedelta(minutes=5)
        edited = [t for t, old in zip(changed, tasks, strict=True) if t is not old]
        ledger.ingest_page("gh", [replace(t, updated_at=later) for t in edited], now=later)
        started = time.perf_counter()
        incremental = evaluate(ledger, rules, policy, later)
        seconds = time.perf_counter() - started
        print(
            f"incremental after {count:,} changed: {incremental.evaluated:,} tasks evaluated "
            f"(changed {incremental.changed}, came due {incremental.came_due}, "
            f"linked {incremental.dependents}) in {seconds:.3f}s = {seconds / full_seconds:.1%} "
            "of full (target <= 5%)"
        )
        views = RuleStore(ledger).load_all()
        ledger.close()
    contexts = [task_context(view, NOW) for view in views]
    compare_engines(contexts)


def compare_engines(contexts: list[dict[str, object]]) -> None:
    """The custom rule's expression, evaluated over every task by each engine considered."""
    import cel

    program = cel.compile(REQUIRE)
    names = program.variables()  # as the engine does: only what the expression reads
    started = time.perf_counter()
    for context in contexts:
        program.execute({name: context[name] for name in names})
    rust = time.perf_counter() - started
    print(
        f"expression engine common-expression-language (used): {len(contexts):,} evaluations "
        f"in {rust:.3f}s ({rust / len(contexts) * 1e6:.1f} µs each)"
    )
    try:
        import celpy
    except ImportError:
        print("expression engine cel-python: not installed (pip install cel-python)")
        return
    environment = celpy.Environment()
    runner = environment.program(environment.compile(REQUIRE))
    sample = contexts[: min(len(contexts), 5000)]
    started = time.perf_counter()
    for context in sample:
        runner.evaluate({k: celpy.json_to_cel(context[k]) for k in names})  # type: ignore[attr-defined, arg-type]
    python = (time.perf_counter() - started) / len(sample) * len(contexts)
    print(
        f"expression engine cel-python: {python:.1f}s projected for {len(contexts):,} "
        f"(measured on {len(sample):,}; {python / rust:.0f}x slower)"
    )


if __name__ == "__main__":
    main()
