"""The wheel carries every data file: each file of rlrun's packages that is not Python (configs,
reference scores) matches a pattern of pyproject's `[tool.setuptools.package-data]`, which is
what setuptools copies into the wheel. `scripts/check_wheel.sh` installs and runs the wheel."""

import glob
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, where pytest depends on tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rlrun", "hydra_plugins")  # [tool.setuptools.packages.find] include


def unpackaged(root: Path, package_data: dict[str, list[str]]) -> list[str]:
    """The files under `root`'s packages that are neither Python nor matched by `package_data`
    (patterns relative to their package's folder, globbed recursively as setuptools does)."""
    matched = {
        (root / package.replace(".", "/") / name).resolve()
        for package, patterns in package_data.items()
        for pattern in patterns
        for name in glob.glob(pattern, root_dir=root / package.replace(".", "/"), recursive=True)
    }
    files = (
        path.resolve()
        for package in PACKAGES
        for path in (root / package).rglob("*")
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts
    )
    return sorted(str(path.relative_to(root.resolve())) for path in files if path not in matched)


def test_every_data_file_is_package_data():
    with open(ROOT / "pyproject.toml", "rb") as file:
        package_data = tomllib.load(file)["tool"]["setuptools"]["package-data"]
    missing = unpackaged(ROOT, package_data)
    assert not missing, (
        f"{missing} would be left out of the wheel: add a pattern to "
        "[tool.setuptools.package-data] in pyproject.toml"
    )


def test_a_file_no_pattern_matches_is_named(tmp_path):
    for name in ("rlrun/conf/train.yaml", "rlrun/conf/algo/ppo.yaml", "rlrun/conf/help.txt",
                 "rlrun/results/reference/scores.csv", "rlrun/__init__.py", "hydra_plugins/p/notes.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    package_data = {"rlrun": ["results/reference/*.csv", "conf/*.yaml", "conf/**/*.yaml"]}
    assert unpackaged(tmp_path, package_data) == ["hydra_plugins/p/notes.md", "rlrun/conf/help.txt"]
