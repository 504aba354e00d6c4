"""No pickle anywhere in the shipped packages: state is JSON and safetensors only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / name for name in ("bandit_router", "langchain_bandit_router", "llamaindex_bandit_router")
            if (ROOT / name).is_dir()]

FORBIDDEN = {
    "imports pickle": re.compile(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib|shelve|marshal)\b", re.M),
    "calls pickle": re.compile(r"\b(c?pickle|dill|cloudpickle|joblib|shelve|marshal)\.\w"),
    "torch.load without weights_only=True": re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)[^)]*\)"),
    "np.load with allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "pandas read_pickle": re.compile(r"read_pickle|to_pickle"),
}


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in package.rglob("*.py"))


def test_the_scan_covers_the_core():
    names = {p.relative_to(ROOT).as_posix() for p in sources()}
    assert {"bandit_router/router.py", "bandit_router/state.py", "bandit_router/policies/base.py"} <= names


@pytest.mark.parametrize("rule", sorted(FORBIDDEN))
def test_no_pickle_in_the_code_base(rule):
    pattern = FORBIDDEN[rule]
    hits = [f"{p.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0)}"
            for p in sources() for text in [p.read_text()] for m in pattern.finditer(text)]
    assert hits == []


@pytest.mark.parametrize("line", [
    "import pickle", "from pickle import loads", "    data = pickle.loads(raw)", "torch.load(path)",
    "torch.load(path, map_location='cpu')", "np.load(path, allow_pickle=True)", "import joblib",
])
def test_the_rules_catch_pickle(line):
    assert any(pattern.search(line) for pattern in FORBIDDEN.values())


@pytest.mark.parametrize("line", ["torch.load(path, weights_only=True)", "np.load(path)",
                                  "# never pickle: JSON + safetensors", "np.load(path, allow_pickle=False)"])
def test_the_rules_allow_safe_code(line):
    assert not any(pattern.search(line) for pattern in FORBIDDEN.values())
