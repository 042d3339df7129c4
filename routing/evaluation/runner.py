"""Run every method on repeated splits of one trace log and collect the report data.

Per seed: split (grouped random or topic shift), fit g(x) and the scorers on D_train, fit the
routers on D_train prefixes, select each router design on D_dev (SELECTROUTER), deploy it on
D_test with Algorithm 1, and score every method with the same metrics.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from routing.baselines import defer_random, defer_top, rule_risk
from routing.deployment import StepScores, TraceReplay, prepare_replays
from routing.features import ItemFeaturizer
from routing.metrics import METRICS, RunOutcome, bootstrap_ci, compute_metrics, per_slice
from routing.routers.ablations import NoTraceRouter, full_trace_router
from routing.routers.base import StepwiseRouter
from routing.routers.learned import LearnedPrefixRouter, judge_wrong
from routing.routers.llm import LLMRouter
from routing.routers.prefix_features import item_text
from routing.scorer import DisagreementScorer
from routing.selection import Design, design_grid, select_router
from routing.splits import Split, embed_texts, grouped_random_split, shift_measures, topic_shift_split
from routing.tracelog import TraceRecord

__all__ = ["METHODS", "REQUIRED_METHODS", "evaluate_traces"]

REQUIRED_METHODS = (
    "ai_only", "random", "l2d_rule", "l2d_logreg", "l2d_mlp", "no_trace", "full_trace_one_shot", "proposed",
    "proposed_delta2", "proposed_delta4",
)
#: Extra measured variants: the paper's Algorithm 1 without our options, budget pacing, the LLM router.
METHODS = REQUIRED_METHODS + ("proposed_paper", "proposed_paced", "llm_router")

CURVE_BUDGETS = (0.1, 0.3, 0.5)


def _outcome_pre_judge(wrong, escalated, replays) -> RunOutcome:
    """A method that decides before the judge runs: escalated items cost no judge tokens."""
    total = np.array([r.total_tokens for r in replays], dtype=float)
    return RunOutcome(wrong, escalated, np.where(escalated, 0.0, total), total, np.zeros(len(wrong), dtype=int))


def _split(kind: str, groups, texts, embeddings, seed: int) -> Split:
    if kind == "random":
        return grouped_random_split(groups, random_state=seed)
    if kind == "topic":
        return topic_shift_split(texts, groups, random_state=seed, embeddings=embeddings)
    raise ValueError(f"unknown split {kind!r}")


def _fit_routers(
    records, steps, inputs, g, p_hat, wrong, groups, fit_idx, featurizer, seed, llm_router
) -> dict[str, StepwiseRouter]:
    fit_records = [records[i] for i in fit_idx]
    fit_steps = [steps[i] for i in fit_idx]
    routers: dict[str, StepwiseRouter] = {
        "proposed": LearnedPrefixRouter(item_featurizer=featurizer, random_state=seed).fit(
            fit_records, p_hat[fit_idx], steps=fit_steps, item_features=g[fit_idx]
        ),
        "full_trace_one_shot": full_trace_router(item_featurizer=featurizer, random_state=seed).fit(
            fit_records, p_hat[fit_idx], steps=fit_steps, item_features=g[fit_idx]
        ),
        "no_trace": NoTraceRouter(featurizer=featurizer, random_state=seed).fit(
            fit_records, p_hat[fit_idx], item_features=g[fit_idx]
        ),
    }
    if llm_router is not None:
        routers["llm_router"] = copy.copy(llm_router).fit(fit_records, p_hat[fit_idx])
    return routers


def _score(router: StepwiseRouter, idx, steps, inputs, p_hat, labels, g) -> list[np.ndarray]:
    # Learned routers are cheap: score every step so that designs with any Δ can be replayed. The
    # LLM router costs one request per decision: only its own polling steps are scored.
    every_step = router if isinstance(router, LLMRouter) else router.with_policy(min_step=1, delta=1)
    return every_step.score_traces(
        [steps[i] for i in idx], [inputs[i] for i in idx], p_hat[idx], [labels[i] for i in idx], g[idx]
    )


def _run_seed(
    records: Sequence[TraceRecord], replays: Sequence[TraceReplay], wrong: np.ndarray, split: Split,
    budgets: Sequence[float], seed: int, llm_router: StepwiseRouter | None, selection: str, folds: int,
) -> dict[str, Any]:
    """One seed. ``selection="crossfit"``: fit on D_train ∪ D_dev and select designs on out-of-fold
    replays of all of it (K group folds); ``"holdout"``: fit on D_train, select on D_dev (the paper)."""
    te = split.test
    fit_idx = np.concatenate([split.train, split.dev]) if selection == "crossfit" else split.train
    inputs = [r.input for r in records]
    groups = np.array([r.group_key for r in records])
    labels = [r.judge_label for r in records]
    steps = [r.steps for r in replays]
    featurizer = ItemFeaturizer(random_state=seed).fit([inputs[i] for i in fit_idx])
    g = featurizer.transform(inputs)
    p_hat = np.zeros(len(records))
    oof_folds = list(GroupKFold(n_splits=folds).split(fit_idx, wrong[fit_idx], groups[fit_idx]))

    def scorer(model: str, idx: np.ndarray) -> DisagreementScorer:
        return DisagreementScorer(model=model, random_state=seed).fit(g[idx], wrong[idx], groups=groups[idx])

    # Out-of-fold p̂ on the fitting set: the routers must not learn from an overfitted p̂.
    for inner, outer in oof_folds:
        p_hat[fit_idx[outer]] = scorer("mlp", fit_idx[inner]).predict_disagreement(g[fit_idx[outer]])
    final_scorer = scorer("mlp", fit_idx)
    rest = np.setdiff1d(np.arange(len(records)), fit_idx)
    p_hat[rest] = final_scorer.predict_disagreement(g[rest])
    p_logreg = scorer("logreg", fit_idx).predict_disagreement(g[te])
    rule = rule_risk([inputs[i] for i in te])
    routers = _fit_routers(records, steps, inputs, g, p_hat, wrong, groups, fit_idx, featurizer, seed, llm_router)
    if selection == "crossfit":
        sel_idx = fit_idx
        dev_scores: dict[str, list] = {name: [None] * len(fit_idx) for name in routers}
        for inner, outer in oof_folds:
            fold_routers = _fit_routers(
                records, steps, inputs, g, p_hat, wrong, groups, fit_idx[inner], featurizer, seed, llm_router
            )
            for name, router in fold_routers.items():
                for k, row in zip(outer, _score(router, fit_idx[outer], steps, inputs, p_hat, labels, g)):
                    dev_scores[name][k] = row
        scores = {
            name: {"dev": StepScores(dev_scores[name]),
                   "test": StepScores(_score(router, te, steps, inputs, p_hat, labels, g))}
            for name, router in routers.items()
        }
    else:
        sel_idx = split.dev
        scores = {
            name: {part: StepScores(_score(router, idx, steps, inputs, p_hat, labels, g))
                   for part, idx in (("dev", sel_idx), ("test", te))}
            for name, router in routers.items()
        }
    router_of = {
        "proposed": "proposed", "proposed_delta2": "proposed", "proposed_delta4": "proposed",
        "proposed_paper": "proposed", "full_trace_one_shot": "full_trace_one_shot",
        "no_trace": "no_trace", "llm_router": "llm_router",
    }
    sel_replays, test_replays = [replays[i] for i in sel_idx], [replays[i] for i in te]
    test_totals = np.array([r.total_tokens for r in test_replays], dtype=float)
    out: dict[str, Any] = {"budgets": {}, "routers": routers, "g": g, "p_hat": p_hat, "n_fit": len(fit_idx),
                           "n_select": len(sel_idx)}
    for rho in budgets:
        outcomes: dict[str, RunOutcome] = {
            "ai_only": _outcome_pre_judge(wrong[te], np.zeros(len(te), dtype=bool), test_replays),
            "random": _outcome_pre_judge(wrong[te], defer_random(len(te), rho, seed), test_replays),
            "l2d_rule": _outcome_pre_judge(wrong[te], defer_top(rule, rho), test_replays),
            "l2d_logreg": _outcome_pre_judge(wrong[te], defer_top(p_logreg, rho), test_replays),
            "l2d_mlp": _outcome_pre_judge(wrong[te], defer_top(p_hat[te], rho), test_replays),
        }
        selected: dict[str, Any] = {}
        tables: dict[str, Any] = {}
        for method, router_name in router_of.items():
            if router_name not in routers:
                continue
            router = routers[router_name]
            dev = scores[router_name]["dev"]
            designs = design_grid(method, router, dev, p_hat[sel_idx])
            # Losses within one selection item of the best are indistinguishable: take the cheaper design.
            result = select_router(designs, dev, sel_replays, p_hat[sel_idx], wrong[sel_idx], rho,
                                   loss_tolerance=1.0 / len(sel_idx))
            deployed = result.best.deploy(scores[router_name]["test"], test_replays, p_hat[te], rho)
            outcomes[method] = RunOutcome(wrong[te], deployed.escalated, deployed.tokens, test_totals, deployed.router_calls)
            selected[method] = result.best.describe()
            tables[method] = result.table
            if method == "proposed":
                # Budget pacing, measured on the design selected for `proposed` (no separate search).
                paced = Design(result.best.router, result.best.escalate_at_start_above, "proportional", 0.1,
                               "proposed_paced")
                deployed = paced.deploy(scores[router_name]["test"], test_replays, p_hat[te], rho)
                outcomes["proposed_paced"] = RunOutcome(
                    wrong[te], deployed.escalated, deployed.tokens, test_totals, deployed.router_calls
                )
                selected["proposed_paced"] = paced.describe()
        out["budgets"][rho] = {"outcomes": outcomes, "selected": selected, "tables": tables}
    return out


def _decision_latency(router: StepwiseRouter, records, replays, p_hat, g, n: int = 2000) -> dict[str, float]:
    """Time of single ``decide`` calls on real prefixes (ms), after the once-per-item ``prepare``
    with g(x) given (the pipeline computes g(x) once, for p̂, before the judge starts). Wall time
    includes waiting for a CPU on a shared machine; thread CPU time does not."""
    wall, cpu = [], []
    for record, replay, p, item_features in zip(records, replays, p_hat, g):
        router.prepare(record.input, item_features=item_features)
        for t in range(1, len(replay.steps) + 1):
            start, start_cpu = time.perf_counter(), time.thread_time()
            router.decide(replay.steps[:t], record.input, float(p))
            cpu.append((time.thread_time() - start_cpu) * 1000)
            wall.append((time.perf_counter() - start) * 1000)
            if len(wall) >= n:
                break
        if len(wall) >= n:
            break
    wall_ms, cpu_ms = np.array(wall), np.array(cpu)
    return {
        "n": int(len(wall_ms)), "p50_ms": float(np.percentile(wall_ms, 50)),
        "p99_ms": float(np.percentile(wall_ms, 99)), "max_ms": float(wall_ms.max()),
        "p50_cpu_ms": float(np.percentile(cpu_ms, 50)), "p99_cpu_ms": float(np.percentile(cpu_ms, 99)),
    }


def evaluate_traces(
    records: Sequence[TraceRecord],
    *,
    budget: float = 0.3,
    split: Literal["random", "topic"] = "random",
    seeds: int = 5,
    dataset: str = "traces",
    llm_router: StepwiseRouter | None = None,
    llm_skip_reason: str | None = None,
    curve_budgets: Sequence[float] = CURVE_BUDGETS,
    selection: Literal["crossfit", "holdout"] = "crossfit",
    folds: int = 4,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate all methods; returns the report dict (``_selection`` holds the full design tables).

    BLAS is limited to one thread: on a shared 2-core machine oversubscription costs far more
    than it gains.
    """
    with threadpool_limits(limits=1):
        return _evaluate(
            records, budget=budget, split=split, seeds=seeds, dataset=dataset, llm_router=llm_router,
            llm_skip_reason=llm_skip_reason, curve_budgets=curve_budgets, selection=selection, folds=folds,
            progress=progress,
        )


def _evaluate(
    records, *, budget, split, seeds, dataset, llm_router, llm_skip_reason, curve_budgets, selection, folds, progress
) -> dict[str, Any]:
    started = time.perf_counter()
    records = [r for r in records if r.human_label is not None]
    if len(records) < 20:
        raise ValueError(f"need at least 20 records with a human label, got {len(records)}")
    replays = prepare_replays(records)
    wrong = judge_wrong(records).astype(bool)
    groups = [r.group_key for r in records]
    texts = [item_text(r.input) for r in records]
    embeddings = embed_texts(texts)
    budgets = sorted(set([budget, *curve_budgets]))
    runs, shifts, sizes, slices = [], [], [], []
    for seed in range(seeds):
        parts = _split(split, groups, texts, embeddings, seed)
        shifts.append(shift_measures(texts, embeddings, wrong, parts, random_state=seed))
        slices.append([records[i].slice for i in parts.test])
        runs.append(_run_seed(records, replays, wrong, parts, budgets, seed, llm_router, selection, folds))
        sizes.append((runs[-1]["n_fit"], runs[-1]["n_select"], len(parts.test)))
        if progress:
            progress(f"seed {seed}: done after {time.perf_counter() - started:.1f}s")
    methods: dict[str, Any] = {}
    per_seed: dict[str, list[dict[str, float]]] = {}
    slice_tables: dict[str, Any] = {}
    for method in METHODS:
        outcomes = [run["budgets"][budget]["outcomes"].get(method) for run in runs]
        if any(o is None for o in outcomes):
            continue
        seed_metrics = [compute_metrics(o) for o in outcomes]
        per_seed[method] = seed_metrics
        ci = bootstrap_ci(outcomes)
        methods[method] = {
            **{m: float(np.mean([s[m] for s in seed_metrics])) for m in METRICS},
            "ci": {m: list(ci[m]) for m in METRICS},
        }
        slice_tables[method] = per_slice(outcomes, slices)
    curves = {
        method: {
            str(rho): {
                m: float(np.mean([compute_metrics(run["budgets"][rho]["outcomes"][method])[m] for run in runs]))
                for m in ("accuracy", "escalation_rate", "judge_tokens", "judge_tokens_ai_only")
            }
            for rho in budgets
        }
        for method in methods
    }
    skipped = {}
    if "llm_router" not in methods:
        skipped["llm_router"] = llm_skip_reason or "no LLM endpoint configured"
    last = runs[-1]
    report = {
        "dataset": dataset,
        "split": split,
        "budget": budget,
        "seeds": seeds,
        "n_records": len(records),
        "n_train": float(np.mean([s[0] for s in sizes])),
        "n_dev": float(np.mean([s[1] for s in sizes])),
        "n_test": float(np.mean([s[2] for s in sizes])),
        "selection": selection if selection == "holdout" else f"crossfit({folds} group folds over train+dev)",
        "judge_error_rate": float(wrong.mean()),
        "tokens_estimated": any(r.judge_output_tokens is None for r in records),
        "shift": {k: float(np.mean([s[k] for s in shifts])) for k in shifts[0]},
        "methods": methods,
        "per_seed": per_seed,
        "per_slice": slice_tables,
        "curves": curves,
        "selected_designs": {
            method: [run["budgets"][budget]["selected"].get(method) for run in runs]
            for method in methods if method in runs[0]["budgets"][budget]["selected"]
        },
        "skipped": skipped,
        "seconds": time.perf_counter() - started,
    }
    report["decision_latency"] = _decision_latency(
        last["routers"]["proposed"], records, replays, last["p_hat"], last["g"]
    )
    report["_selection"] = {
        method: [run["budgets"][budget]["tables"].get(method) for run in runs]
        for method in report["selected_designs"]
    }
    return report
