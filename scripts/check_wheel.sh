#!/usr/bin/env bash
# Builds rlrun's wheel, installs it with the [sweep] extra in a fresh venv (CPU torch first), and
# runs it from a directory outside the checkout, so that only the installed package can be
# imported: a short train, rlrun-eval and resume= of the printed run dir, --help, a typo,
# rlrun-report (with the shipped reference scores), a joblib sweep and an Optuna search with
# rlrun's sweeper plugin. Exits non-zero at the first problem, keeping its temporary directory
# then. 4 to 9 minutes on 2 cores, most of it pip.
# Usage: scripts/check_wheel.sh   (PYTHON=python3.12 scripts/check_wheel.sh for another Python)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'if (($?)); then echo "check_wheel: kept $tmp" >&2; else rm -rf "$tmp"; fi' EXIT
out="$tmp/out"

fail() {
    echo "check_wheel: $*" >&2
    exit 1
}

run() {  # run a command, show its output, keep it in $out; fail unless it exits 0
    echo "+ [${SECONDS}s] $*"
    local status=0
    "$@" >"$out" 2>&1 || status=$?
    cat "$out"
    ((status == 0)) || fail "exit $status from: $*"
}

expect() {  # expect FILE: fail unless the file exists
    [[ -e $1 ]] || fail "missing $1"
}

finished_step() {  # the step of the "Finished at step N" line in $out
    sed -n 's/^Finished at step \([0-9]*\).*/\1/p' "$out"
}

# The wheel is built from a copy of the files that git knows (tracked, or new and not ignored), so
# that a stale build/ or *.egg-info in the checkout cannot add files to it.
src="$repo"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    src="$tmp/src"
    mkdir "$src"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do if [[ -e $file ]]; then printf '%s\0' "$file"; fi; done |
        tar -c --null -T - | tar -x -C "$src")
fi

"${PYTHON:-python3}" -m venv "$tmp/venv"
. "$tmp/venv/bin/activate"
unset PYTHONPATH
run python -m pip install -q torch==2.13.0
run python -m pip wheel -q --no-deps -w "$tmp/dist" "$src"
wheels=("$tmp"/dist/rlrun-*.whl)
run python -m pip install -q "${wheels[0]}[sweep]"

mkdir "$tmp/work"
cd "$tmp/work"
run python -c 'import rlrun, hydra_plugins.rlrun_optuna_sweeper as s; print(rlrun.__file__, s.__file__)'
[[ $(cat "$out") == "$tmp/venv/"*" $tmp/venv/"* ]] || fail "rlrun is not imported from the venv"

run rlrun total_timesteps=2000 eval.episodes=2 seed=1
run_dir="$(sed -n 's/^Finished at step .*; run dir //p' "$out")"
[[ $run_dir == "$tmp/work/outputs/ppo/CartPole-v1/"* ]] || fail "no run dir printed under outputs/"
grep -q '^  preset .*ppo_classic.yaml' "$out" || fail "the start panel names no preset"
for file in .hydra/config.yaml metrics.jsonl train.log checkpoints/last.pt; do
    expect "$run_dir/$file"
done
first="$(finished_step)"

run rlrun-eval "$run_dir" eval.episodes=2
expect "$run_dir/checkpoints/last.eval.json"

run rlrun "resume=$run_dir" total_timesteps=4000 eval.episodes=2
grep -q "^Resuming from .*last.pt at step $first$" "$out" || fail "resume= did not resume at $first"
last="$(finished_step)"
((${last:-0} >= 4000)) || fail "the resumed run did not reach total_timesteps=4000"

run rlrun --help
grep -q '^Config groups' "$out" || fail "rlrun --help lacks rlrun's help template"

echo "+ [${SECONDS}s] rlrun algo=pppo"
status=0
rlrun algo=pppo >"$out" 2>&1 || status=$?
cat "$out"
((status == 2)) && [[ $(wc -l <"$out") -eq 1 ]] && grep -q 'ppo' "$out" ||
    fail "a wrong algo did not end with one line and exit 2"

run rlrun-report "$run_dir"
expect "$run_dir/report/report.md"

run rlrun -m algo=ppo,a2c total_timesteps=1000 eval.episodes=2 hydra/launcher=joblib \
    hydra.launcher.n_jobs=2
sweep="$(sed -n 's/^rlrun: sweep done, 2 run dirs (rlrun-report \(.*\) compares them):$/\1/p' "$out")"
[[ -n $sweep ]] || fail "the joblib sweep did not report 2 run dirs"
for algo in ppo a2c; do
    expect "$sweep/algo=$algo,eval.episodes=2,total_timesteps=1000/checkpoints/last.pt"
done
run rlrun-report "$sweep" --reference
grep -q '^## Published figures' "$sweep/report/report.md" || fail "no published figures in the report"

run rlrun hparams_search=ppo_optuna total_timesteps=1000 eval.episodes=2 \
    hydra.sweeper.n_trials=2 'hparams_search.seeds=[0]'
grep -q 'Best trial so far' "$out" || fail "rlrun's Optuna sweeper ran no trial"

echo "check_wheel: ${wheels[0]##*/} installs and runs from $tmp/work (${SECONDS}s)"
