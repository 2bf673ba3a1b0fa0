"""CI integration at the repository root: ``.pre-commit-hooks.yaml`` run by the real
``pre-commit`` on a repository made here, and ``action.yml`` checked for the structure GitHub
reads and its scan step run as the runner would run it.

The hooks use ``language: system``: they run the ``bastion`` on PATH, here the one in this
virtual environment's ``bin``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deps.conftest import EDGE_RECORDS, write_records

from bastion.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
"""Where this environment's ``bastion`` console script is."""
HOOKS = ROOT / ".pre-commit-hooks.yaml"
ACTION = ROOT / "action.yml"


class Evil:
    """Creates the canary when unpickled (and only then)."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, ...]:
        return os.system, (f"touch {self.canary}",)


def _env(tmp_path: Path) -> dict[str, str]:
    """PATH with this environment's bin first; pre-commit's cache and git's identity in
    ``tmp_path``, so nothing outside it is read or written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "BASTION_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-cache"),
        HOME=str(tmp_path / "home"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
                          check=False)


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = _run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                cwd, env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _pre_commit() -> list[str]:
    if importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None:
        pytest.skip("pre-commit (the dev extra) or git is not installed: "
                    "pip install -c constraints.txt pre-commit")
    return [sys.executable, "-m", "pre_commit"]


@pytest.fixture
def hook_repo(tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    """A git repository holding this checkout's hooks file, committed (pre-commit reads a hook
    repository at a commit; the checkout itself is never committed to)."""
    env = _env(tmp_path)
    repo = tmp_path / "hooks"
    repo.mkdir()
    shutil.copy(HOOKS, repo / HOOKS.name)
    _git(repo, env, "init", "-q")
    _git(repo, env, "add", HOOKS.name)
    _git(repo, env, "commit", "-q", "-m", "hooks")
    return repo, _git(repo, env, "rev-parse", "HEAD"), env


@pytest.fixture
def project(tmp_path: Path, canary: Path) -> Path:
    """A repository with a benign model, a malicious one and a README, all staged."""
    env = _env(tmp_path)
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "models" / "benign.pkl").write_bytes(pickle.dumps({"w": [0.5, -1.0]}))
    (root / "models" / "evil.pt").write_bytes(pickle.dumps(Evil(canary)))
    (root / "README.md").write_text("# a project\n", encoding="utf-8")
    _git(root, env, "init", "-q")
    _git(root, env, "add", ".")
    return root


def test_the_scan_hook_fails_on_a_malicious_model_and_passes_a_benign_one(
    hook_repo: tuple[Path, str, dict[str, str]], project: Path, canary: Path
) -> None:
    pre_commit = _pre_commit()
    repo, _, env = hook_repo
    assert shutil.which("bastion", path=env["PATH"]) == str(BIN / "bastion")

    def try_hook(*files: str) -> subprocess.CompletedProcess[str]:
        return _run([*pre_commit, "try-repo", str(repo), "bastion-scan", "--verbose",
                     "--files", *files], project, env)

    benign = try_hook("models/benign.pkl", "README.md")
    assert benign.returncode == 0, benign.stdout + benign.stderr
    assert re.search(r"bastion scan \(model artifacts\)\.+Passed", benign.stdout)
    assert "README.md" not in benign.stdout  # not a model artifact: not handed to the hook

    evil = try_hook("models/benign.pkl", "models/evil.pt")
    assert evil.returncode == 1, evil.stdout + evil.stderr
    assert re.search(r"bastion scan \(model artifacts\)\.+Failed", evil.stdout)
    assert "posix.system" in evil.stdout and "evil.pt" in evil.stdout
    assert not canary.exists()


def test_the_deps_hook_audits_the_files_its_args_name(
    hook_repo: tuple[Path, str, dict[str, str]], project: Path
) -> None:
    pre_commit = _pre_commit()
    repo, rev, env = hook_repo
    db = project / "osv.sqlite"
    assert main(["deps", "db", "import", str(write_records(project.parent / "v", EDGE_RECORDS)),
                 "--db", str(db)]) == 0
    config = {"repos": [{"repo": str(repo), "rev": rev, "hooks": [{
        "id": "bastion-deps-audit",
        "args": ["--db", "osv.sqlite", "-r", "requirements.txt"]}]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    requirements = project / "requirements.txt"

    def run_hooks() -> subprocess.CompletedProcess[str]:
        _git(project, env, "add", "requirements.txt", ".pre-commit-config.yaml")
        return _run([*pre_commit, "run", "--verbose", "--files", "requirements.txt"],
                    project, env)

    requirements.write_text("edge-last==1.0\n", encoding="utf-8")
    vulnerable = run_hooks()
    assert vulnerable.returncode == 1, vulnerable.stdout + vulnerable.stderr
    assert "EDGE-LAST-1" in vulnerable.stdout
    requirements.write_text("edge-clean==1.0\n", encoding="utf-8")
    clean = run_hooks()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert re.search(r"bastion deps audit \(dependencies\)\.+Passed", clean.stdout)
    # a staged model file alone does not run the dependency audit
    skipped = _run([*pre_commit, "run", "--files", "models/benign.pkl"], project, env)
    assert skipped.returncode == 0 and "(no files to check)Skipped" in skipped.stdout


def test_the_hooks_file_is_a_valid_manifest_of_system_hooks() -> None:
    pre_commit = _pre_commit()
    done = subprocess.run([*pre_commit, "validate-manifest", str(HOOKS)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    hooks = {h["id"]: h for h in yaml.safe_load(HOOKS.read_text(encoding="utf-8"))}
    assert set(hooks) == {"bastion-scan", "bastion-deps-audit"}
    # language: python would pip-install Bastion and maybe another torch into a hook env
    assert {h["language"] for h in hooks.values()} == {"system"}
    scan, deps = re.compile(hooks["bastion-scan"]["files"]), re.compile(
        hooks["bastion-deps-audit"]["files"])
    for name in ("m.pt", "a/B.PKL", "w.safetensors", "x.onnx", "g.gguf", "m.joblib", "t.npz",
                 "h/tokenizer_config.json"):
        assert scan.search(name) and not deps.search(name), name
    for name in ("requirements.txt", "ci/requirements-dev.txt", "pyproject.toml", "uv.lock",
                 "poetry.lock", "Pipfile.lock", "pylock.toml", "pylock.prod.toml"):
        assert deps.search(name) and not scan.search(name), name
    for name in ("main.py", "README.md", "docs/requirements.md", "setup.cfg"):
        assert not scan.search(name) and not deps.search(name), name


def _action() -> dict[str, Any]:
    loaded = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_the_action_is_a_composite_action_whose_references_resolve() -> None:
    action = _action()
    assert action["name"] and action["description"]
    assert action["runs"]["using"] == "composite"
    inputs, steps = action["inputs"], action["runs"]["steps"]
    for name, spec in inputs.items():
        assert spec.get("description"), name
        assert isinstance(spec.get("default", ""), str), name  # inputs are strings
    ids = [s["id"] for s in steps if "id" in s]
    assert len(ids) == len(set(ids))
    # every ${{ inputs.X }} and steps.Y.outputs.Z an expression names exists
    text = "\n".join(_strings(action))
    for name in re.findall(r"inputs\.([A-Za-z0-9_-]+)", text):
        assert name in inputs, f"inputs.{name} is not defined"
    for step_id, output in re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)",
                                      text):
        assert step_id in ids, step_id
        step = next(s for s in steps if s.get("id") == step_id)
        assert f"{output}=" in step["run"], f"{step_id} never writes {output}"
    for name, spec in action["outputs"].items():
        assert spec["value"].startswith("${{"), name
    for step in steps:
        assert ("run" in step) != ("uses" in step), step.get("name")
        if "run" in step:
            assert step["shell"] == "bash", step["name"]
            # inputs reach the script only through env: no expression inside the script
            assert "${{" not in step["run"], step["name"]
            syntax = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True,
                                    text=True, check=False)
            assert syntax.returncode == 0, (step["name"], syntax.stderr)
    uploads = [s for s in steps if s.get("uses", "").startswith("github/codeql-action/"
                                                                "upload-sarif@")]
    assert [u["with"]["sarif_file"] for u in uploads] == [
        "${{ inputs.sarif-dir }}/scan.sarif", "${{ inputs.sarif-dir }}/assess.sarif"]
    assert all(u["if"].startswith("always()") for u in uploads)  # findings are uploaded too
    install = next(s for s in steps if s["name"] == "Install Bastion")
    assert "python -m pip" in install["run"] and "bastion-ml" in install["run"]
    assert "--constraint" in install["run"]
    runs = [s["run"] for s in steps if 'bastion "${args[@]}" || code=$?' in s.get("run", "")]
    assert len(runs) == 2 and all("--format sarif" in r for r in runs)


def _run_step(name: str, env: dict[str, str], cwd: Path) -> tuple[int, dict[str, str]]:
    """Run one of the action's bash steps as the runner does: its env, a GITHUB_OUTPUT file."""
    step = next(s for s in _action()["runs"]["steps"] if s["name"] == name)
    output = cwd / f"github-output-{len(list(cwd.glob('github-output-*')))}"
    output.touch()
    done = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c",
                           step["run"]], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False, env={**env, "GITHUB_OUTPUT": str(output)})
    lines = output.read_text(encoding="utf-8").splitlines()
    return done.returncode, dict(line.split("=", 1) for line in lines)


def test_the_actions_scan_step_writes_sarif_and_reports_the_exit_code(
    project: Path, canary: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    step_env = {**env, "BASTION_PATHS": "models/benign.pkl\nmodels/evil.pt README.md\n",
                "BASTION_FAIL_ON": "high", "BASTION_SCAN_POLICY": "",
                "BASTION_SARIF_DIR": "out dir"}
    code, outputs = _run_step("Scan model artifacts", step_env, project)
    assert code == 0 and outputs == {"exit-code": "1"}  # the step passes; the last one fails
    sarif = json.loads((project / "out dir" / "scan.sarif").read_text(encoding="utf-8"))
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in sarif["runs"][0]["results"] if r["ruleId"] == "pickle.global.dangerous"}
    assert uris == {"models/evil.pt"} and not canary.exists()
    code, outputs = _run_step("Scan model artifacts",
                              {**step_env, "BASTION_PATHS": "no-such-model.pt"}, project)
    assert code == 2 and outputs == {"exit-code": "2"}  # an error stops the job, no upload
    final = {**env, "SCAN_CODE": "1", "ASSESS_CODE": "", "BASTION_FAIL_ON": "high"}
    assert _run_step("Fail on findings at or above fail-on", final, project)[0] == 1
    assert _run_step("Fail on findings at or above fail-on", {**final, "SCAN_CODE": "0"},
                     project)[0] == 0
    # neither a scan nor an assessment ran: a misconfigured action never passes silently
    assert _run_step("Fail on findings at or above fail-on", {**final, "SCAN_CODE": ""},
                     project)[0] == 2


def test_an_assessment_without_data_or_policy_is_an_error(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "BASTION_MODEL": "m.onnx", "BASTION_DATA": "", "BASTION_POLICY": "",
           "BASTION_ARCH": "", "BASTION_FAIL_ON": "high", "BASTION_SARIF_DIR": "s"}
    code, outputs = _run_step("Attack-test the model", env, tmp_path)
    assert code == 2 and outputs == {"exit-code": "2"}
