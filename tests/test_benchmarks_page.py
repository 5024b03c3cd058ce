"""docs/benchmarks.md is what scripts/render_benchmarks.py makes of its template and the shipped
files, and its template states no result by hand."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render_benchmarks",
                                               ROOT / "scripts" / "render_benchmarks.py")
render_benchmarks = sys.modules["render_benchmarks"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_benchmarks)


def prose_numbers(template: str) -> list[str]:
    """The numbers with a decimal point (1.5) or a thousands separator (8,164) in the template's
    prose, which is its text outside fenced code blocks, placeholders ({{ ... }}), inline code
    spans and link targets. A dotted number of three or more parts is a version (2.13.0), not a
    number; a config value with a decimal point belongs in code (`algo.eps_end=0.01`)."""
    text = re.sub(r"^```.*?^```", "", template, flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"\{\{.*?\}\}", "", text, flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"\]\([^)\s]*\)", "]", text)
    numbers = re.findall(r"\d+(?:[.,]\d+)+", text)
    return [found for found in numbers if not re.fullmatch(r"\d+(?:\.\d+){2,}", found)]


@pytest.mark.slow
def test_the_page_is_rendered_from_the_template_and_the_shipped_files():
    assert render_benchmarks.page() == render_benchmarks.PAGE.read_text(), (
        "docs/benchmarks.md is out of date: run python scripts/render_benchmarks.py")


def test_the_template_prose_holds_no_hand_written_decimal():
    assert prose_numbers(render_benchmarks.TEMPLATE.read_text()) == []


@pytest.mark.parametrize("text, found", [
    ("returns 1.5 and -0.25 here", ["1.5", "0.25"]),
    ("8,164 s in all, 1,000 random steps", ["8,164", "1,000"]),
    ("the ratio is 1.07x.", ["1.07"]),
    ("torch 2.13.0, Gymnasium 1.4.0, v4, commit 9bd1719, 500k, seeds 0-4, 95%", []),
    ("`algo.eps_end=0.01` and {{ result classic Acrobot-v1 trpo 1.5 }}", []),
    ("[report](benchmarks/v1.2/report.md) but 2.5 outside", ["2.5"]),
    ("```bash\nrlrun lr=0.001\n```\nthen 0.5", ["0.5"]),
])
def test_the_prose_rule(text, found):
    assert prose_numbers(text) == found


# ----- the statistics rule ------------------------------------------------------------------
def test_five_runs_give_the_iqm_and_a_seeded_bootstrap_ci():
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    label, point, low, high = render_benchmarks.summary(values)
    assert (label, point) == ("IQM", 3.0)  # the lowest and highest run dropped: mean of 2, 3, 4
    assert 1.0 <= low < 3.0 < high <= 100.0
    render_benchmarks._summary.cache_clear()
    np.random.seed(123)  # the interval does not depend on numpy's global state
    assert render_benchmarks.summary(values) == (label, point, low, high)
    assert render_benchmarks.summary([7.0] * 6) == ("IQM", 7.0, 7.0, 7.0)


def test_fewer_than_five_runs_give_the_mean_and_the_range():
    assert render_benchmarks.summary([1.0, 2.0, 3.0, 10.0]) == ("mean", 4.0, 1.0, 10.0)
    assert render_benchmarks.summary([336.0, 446.0]) == ("mean", 391.0, 336.0, 446.0)


def test_placement_names_the_interval_it_tests():
    assert render_benchmarks.placement([336.0, 446.0], 659.5) == "above every seed"
    assert render_benchmarks.placement([336.0, 446.0], 400.0) == "inside the range of the 2 seeds"
    assert render_benchmarks.placement([1.0, 2.0, 3.0, 4.0, 100.0], 0.5) == "below the 95% CI"


# ----- placeholders on a tiny fixture -------------------------------------------------------
RUNS = """run_dir,env,algo,seed,final_return,steps,wall_s,sps
a/0,CartPole-v1,ppo,0,500,100352,10,1000
a/1,CartPole-v1,ppo,1,490,100352,20,1000
a/2,CartPole-v1,ppo,2,480,100352,30,1000
a/3,CartPole-v1,ppo,3,200,100352,40,1000
a/4,CartPole-v1,ppo,4,500,100352,50,1000
b/0,CartPole-v1,dqn,0,300,50000,5,1000
b/1,CartPole-v1,dqn,1,480,50000,5,1000
b/2,CartPole-v1,dqn,2,500,50000,5,1000
"""
SCORES = """env,env_version,algorithm,steps,mean,spread,spread_kind,seeds,measure,source,kind,budget,measure_kind,window,source_file
CartPole,v1,ppo,100000,100.0,5.0,std,1,one agent,RL Zoo,kind,,eval_agent_deterministic,,f
CartPole,v1,ppo,1000000,500.0,0.0,std,1,one agent at ten times the budget,RL Zoo,kind,,eval_agent_deterministic,,f
CartPole,v1,dqn,100000,510.0,0.0,std,1,one agent,RL Zoo,kind,,eval_agent_deterministic,,f
CartPole,v1,dqn,25000,200.0,0.0,std,1,one agent,RL Zoo,kind,,eval_agent_deterministic,,f
CartPole,v1,ppo,100000,450.0,10.0,std,3,training return,CleanRL,kind,,train_window,100,f
CartPole,v0,ppo,100000,500.0,0.0,std,10,best seed mean,Tianshou,kind,,max_seed_mean_stochastic,,f
"""
RANDOM = """env,env_version,mean,std,episodes,source
CartPole,v1,23.68,12.2,100,random
"""
CURVES_HEADER = "run_dir,env,algo,seed,step,eval_return,train_return\n"


def _curves() -> str:
    """ppo: every seed at 500 after 50k; training returns 400 + seed at the end. dqn: 100 + seed
    at 25k. Plus one training-only row per run."""
    rows = []
    for seed, final in enumerate([500, 490, 480, 200, 500]):
        rows += [f"a/{seed},CartPole-v1,ppo,{seed},30000,,{100 + seed}",
                 f"a/{seed},CartPole-v1,ppo,{seed},51200,500,{300 + seed}",
                 f"a/{seed},CartPole-v1,ppo,{seed},100352,{final},{400 + seed}"]
    for seed, final in enumerate([300, 480, 500]):
        rows += [f"b/{seed},CartPole-v1,dqn,{seed},25000,{100 + seed},50",
                 f"b/{seed},CartPole-v1,dqn,{seed},50000,{final},60"]
    return CURVES_HEADER + "\n".join(rows) + "\n"


@pytest.fixture
def toy(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "runs.csv").write_text(RUNS)
    (tmp_path / "scores.csv").write_text(SCORES)
    (tmp_path / "random.csv").write_text(RANDOM)
    return tmp_path


def _render(folder: Path, template: str) -> str:
    data = render_benchmarks.Data(folder, folder / "scores.csv", folder / "random.csv")
    return render_benchmarks.render(template, data)


def test_counts_of_solved_pairs_by_each_rule(toy):
    # ppo: the IQM of 200, 480, 490, 500, 500 is 490 >= 475, its mean 434 is not; dqn (3 seeds):
    # its mean 426.7 is not
    text = _render(toy, "{{ solved toy summary }}|{{ solved toy mean }}|{{ solved toy every }}|"
                        "{{ random CartPole-v1 }}")
    assert text == "1 of 2|0 of 2|0 of 2|23.7"


TEMPLATE = """{{ standing toy "RL Zoo" eval }}
{{ if curves toy }}curves: {{ standing toy Tianshou peak }}; {{ standing toy CleanRL train }}\
{{ else }}no curves{{ end }}
{{ comparison_table toy "RL Zoo" eval }}"""


def test_without_curves_the_curve_parts_are_left_out(toy):
    text = _render(toy, TEMPLATE)
    lines = text.splitlines()
    # ppo's IQM 490 against 100 (below any interval inside [200, 500]); dqn's mean 426.7 below 510
    assert lines[0] == ("ahead on 1 (PPO on CartPole-v1 at 100k (+390, 4.90x)); "
                        "behind on 1 (DQN on CartPole-v1 at 50k (-83.3, 0.84x))")
    assert lines[1] == "no curves"
    assert "| DQN | mean 427 [range 300, 500] (3 seeds at 50k) | 510 ± 0.0 (1 seed at 100k) |" \
        in text
    assert "above every seed | budget 100k vs 50k |" in text
    assert "at 1M" not in text  # ten times the runs' budget: not compared
    assert text.endswith("published budget: DQN on CartPole-v1 at 25k.")


def test_with_curves_the_curve_parts_are_rendered(toy):
    (toy / "toy" / "curves.csv").write_text(_curves())
    text = _render(toy, TEMPLATE)
    lines = text.splitlines()
    # ppo's seed mean peaks at 51200 (500 on every seed), where Tianshou's 500 lies inside
    # [500, 500]; its last training returns 400-404 have the IQM 402, and CleanRL's 450 lies above
    # them all
    assert lines[1] == ("curves: level on 1 (PPO on CartPole-v1 at 51k (0.0, 1.00x)); "
                        "behind on 1 (PPO on CartPole-v1 at 100k (-48.0, 0.89x))")
    # dqn at 25k: the mean of 100, 101, 102 against Zoo's 200
    assert "| DQN | mean 101 [range 100, 102] (3 seeds at 25k) | 200 ± 0.0 (1 seed at 25k) |" \
        in text
    assert "Not compared yet" not in text
    # the best seed mean is at 51k, but within the same 100k window as Tianshou's: no budget differs
    tianshou = _render(toy, "{{ comparison_table toy Tianshou peak }}")
    assert ("(5 seeds at 51k) | 500 ± 0.0 (10 seeds at 100k) | 0.0, 1.00x | inside the 95% CI | "
            "v0 vs v1 |") in tianshou


def test_seed_table_columns_follow_the_shipped_files(toy):
    without = _render(toy, "{{ seeds_table toy 25000 }}")
    assert "training return" not in without and "best evaluation" not in without
    (toy / "toy" / "curves.csv").write_text(_curves())
    with_curves = _render(toy, "{{ seeds_table toy 25000 }}")
    header = with_curves.splitlines()[0]
    assert "last training return, per seed" in header and "evaluation at 25k, per seed" in header
    ppo = next(line for line in with_curves.splitlines() if "| PPO |" in line)
    assert "| 400 / 401 / 402 / 403 / 404 |" in ppo and "| 500 (51k) |" in ppo


def test_curves_from_other_runs_are_refused(toy):
    (toy / "toy" / "curves.csv").write_text(_curves().replace(",100352,480,", ",100352,481,"))
    message = ("ppo on CartPole-v1, seed 2 ends at 481.0 but runs.csv says 480.0; ship runs.csv "
               "and curves.csv from the same runs")
    with pytest.raises(render_benchmarks.PageError, match=message):
        _render(toy, "{{ if curves toy }}x{{ end }}")


def test_template_mistakes_are_named(toy):
    with pytest.raises(render_benchmarks.PageError, match="unknown placeholder"):
        _render(toy, "{{ nonsense toy }}")
    with pytest.raises(render_benchmarks.PageError, match="guard this part"):
        _render(toy, "{{ standing toy CleanRL train }}")
    with pytest.raises(render_benchmarks.PageError, match="unmatched"):
        _render(toy, "{{ if curves toy }}a{{ if curves toy }}b{{ end }}c{{ end }}")


def test_check_exits_1_on_a_stale_page(toy, tmp_path, monkeypatch, capsys):
    template = tmp_path / "page.template.md"
    template.write_text("runs: {{ runs toy }}\n")
    page = tmp_path / "page.md"
    for attribute, value in [("TEMPLATE", template), ("PAGE", page), ("RESULTS", toy),
                             ("SCORES", toy / "scores.csv"), ("RANDOM", toy / "random.csv"),
                             ("ROOT", tmp_path)]:
        monkeypatch.setattr(render_benchmarks, attribute, value)
    assert render_benchmarks.main(["--check"]) == 1
    assert render_benchmarks.main([]) == 0
    assert page.read_text().endswith("runs: 8\n")
    assert render_benchmarks.main(["--check"]) == 0
    page.write_text(page.read_text().replace("8", "9"))
    assert render_benchmarks.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
