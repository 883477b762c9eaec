"""The wheel contains every package folder; no top-level envs/agents packages are installed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPING = {
    "recsim_llm": "recsim_llm",
    "envs": "recsim_llm/envs",
    "agents": "recsim_llm/agents",
    "dashboard": "recsim_llm/dashboard",
}


def _expected_packages() -> set[str]:
    expected = set()
    for top, target in MAPPING.items():
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top)
            expected.add(str(Path(target) / rel) if str(rel) != "." else target)
    return expected


@pytest.mark.slow
def test_wheel_contains_every_package(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("recsim_llm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    packages = {str(Path(n).parent) for n in names if n.endswith("__init__.py")}
    missing = _expected_packages() - packages
    assert not missing, f"packages missing from the wheel: {sorted(missing)}"
    assert not any(n.startswith(("envs/", "agents/")) for n in names)
    assert "recsim_llm/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_envs_and_agents_are_not_installed_as_top_level_packages(tmp_path):
    """Outside the repository, ``envs``/``agents`` must not resolve to this project's folders."""
    code = (
        "import importlib.util, recsim_llm.envs, recsim_llm.agents\n"
        "for name in ('envs', 'agents'):\n"
        "    spec = importlib.util.find_spec(name)\n"
        "    print(name, spec.origin if spec else None)\n"
        "print('mapped', recsim_llm.envs.__file__, recsim_llm.agents.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    for name in ("envs", "agents"):
        assert str(REPO) not in lines[name], f"top-level {name!r} resolves into the repo"
    assert "envs/__init__.py" in lines["mapped"] and "agents/__init__.py" in lines["mapped"]
