"""`rlrun-report PATH...`: the report of run dirs (`rlrun.results.report.write_report`) from the command
line; its `--help` loads neither matplotlib nor rliable.
"""

from __future__ import annotations

from pathlib import Path

from rlrun.cli.compose import fail
from rlrun.cli.setup import closed_pipe_ends_quietly
from rlrun.config import ConfigError


@closed_pipe_ends_quietly
def report() -> None:
    """`rlrun-report PATH... [--out DIR] [--compare KEY=A,B]`: tables, learning curves, aggregates
    across envs, performance profiles and probabilities of improvement in report.md."""
    import argparse

    from rlrun.results.references import SCORES, load_references
    from rlrun.results.statistics import RESAMPLES

    parser = argparse.ArgumentParser(
        prog="rlrun-report",
        description="Aggregate run dirs (or sweep dirs holding them) into a table, learning-curve PNGs "
                    "and report.md; seeds are the replicates.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs or dirs that hold run dirs")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: <first PATH>/report)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES,
                        help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default %(default)s)")
    parser.add_argument("--reference", nargs="?", const=SCORES, type=Path, default=None, metavar="CSV",
                        help="set the results beside published figures (default CSV: rlrun's "
                             "reference/scores.csv)")
    parser.add_argument("--compare", action="append", default=[], metavar="KEY=A,B",
                        help="probability of improvement of the groups with KEY=A over those with "
                             "KEY=B, all else equal (repeatable; e.g. --compare algo=ppo,a2c); by "
                             "default every pair that differs in one key, when there are few")
    args = parser.parse_args()
    from rlrun.results.report import write_report

    try:
        references = load_references(args.reference) if args.reference is not None else None
        write_report(args.paths, args.out or args.paths[0] / "report", args.resamples, args.seed, references,
                     args.compare)
    except ConfigError as error:
        fail(str(error))
