"""The Dockerfile: hadolint-clean, pinned, multi-stage, non-root, built from the hashed lock files,
installing the built wheel."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.tools import DOCKERFILE, ROOT, run, tool


@dataclass
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
    return result


def stages(items: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for item in items:
        if item.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(item)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


def test_hadolint_finds_nothing() -> None:
    result = run(tool("hadolint"), "--failure-threshold", "style", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install fastapi\nCMD inkwell serve\n")
    result = run(tool("hadolint"), "--failure-threshold", "style", str(careless))
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` tag


def test_base_image_is_a_pinned_slim_python_311(dockerfile: list[Instruction]) -> None:
    args = {i.args.split("=", 1)[0]: i.args.split("=", 1)[1] for i in dockerfile
            if i.keyword == "ARG" and "=" in i.args}  # fmt: skip
    froms = [i.args.split()[0] for i in dockerfile if i.keyword == "FROM"]
    images = [args[f[2:-1]] if f.startswith("${") else f for f in froms]
    assert len(images) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_runtime_stage_runs_as_an_unprivileged_user(dockerfile: list[Instruction]) -> None:
    runtime = stages(dockerfile)[-1]
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric UID lets Kubernetes verify runAsNonRoot"


def test_dependencies_come_from_the_lock_without_caches(dockerfile: list[Instruction]) -> None:
    pip_runs = [i.args for i in dockerfile if i.keyword == "RUN" and "pip install" in i.args]
    assert any("-r requirements.lock" in args for args in pip_runs)
    for args in pip_runs:
        for command in args.split("&&"):
            if "pip install" in command:
                assert "--no-cache-dir" in command, command
    runtime = stages(dockerfile)[-1]
    assert not [i for i in runtime if i.keyword == "RUN" and "pip install" in i.args]
    assert not [i for i in dockerfile if i.keyword == "RUN" and "apt-get" in i.args], (
        "wheels only: no compiler tool chain is installed in any stage"
    )
    copied = [i.args for i in runtime if i.keyword == "COPY" and "--from=" in i.args]
    assert any("/opt/venv" in args for args in copied), "the runtime copies the built venv"


def test_the_image_installs_the_built_wheel_not_the_tree(dockerfile: list[Instruction]) -> None:
    build, runtime = stages(dockerfile)[0], stages(dockerfile)[-1]
    runs = " && ".join(i.args for i in build if i.keyword == "RUN")
    assert "pip wheel" in runs
    assert re.search(r"pip install [^&]*--no-deps [^&]*dist/inkwell-\*\.whl", runs), runs
    for args in (i.args for i in dockerfile if i.keyword == "RUN"):
        assert not re.search(r"pip install [^&]*(?:-e|--editable)\b", args), args
    # The runtime gets the virtualenv (package, migrations, dependencies) and no source tree.
    assert not [i for i in runtime if i.keyword == "COPY" and "--from" not in i.args]


def test_every_locked_install_requires_hashes(dockerfile: list[Instruction]) -> None:
    for args in (i.args for i in dockerfile if i.keyword == "RUN"):
        for command in args.split("&&"):
            if "pip install" in command and " -r " in command:
                assert "--require-hashes" in command, command
    for lock in ("requirements.lock", "requirements-dev.lock", "requirements-build.lock"):
        pins = re.findall(r"^[a-z0-9][\w.-]*==\S+", (ROOT / lock).read_text(), re.MULTILINE)
        assert pins, lock
        blocks = re.split(r"\n(?=[a-z0-9])", (ROOT / lock).read_text())
        for block in blocks:
            if re.match(r"[a-z0-9][\w.-]*==", block):
                assert "--hash=sha256:" in block, f"{lock}: {block.splitlines()[0]}"


def test_the_build_backend_is_locked_like_the_dev_tools(dockerfile: list[Instruction]) -> None:
    dev = (ROOT / "requirements-dev.lock").read_text()
    build = (ROOT / "requirements-build.lock").read_text()
    pin = re.compile(r"^setuptools==(\S+)", re.MULTILINE)
    locked, built_with = pin.search(dev), pin.search(build)
    assert locked is not None
    assert built_with is not None
    assert built_with.group(1) == locked.group(1)
    runs = " ".join(i.args for i in dockerfile if i.keyword == "RUN")
    assert "-r requirements-build.lock" in runs
    assert "setuptools==" not in runs  # the version comes from the lock, hashes included


def test_entrypoint_serves_on_all_interfaces(dockerfile: list[Instruction]) -> None:
    runtime = stages(dockerfile)[-1]
    entrypoint = [json.loads(i.args) for i in runtime if i.keyword == "ENTRYPOINT"]
    command = [json.loads(i.args) for i in runtime if i.keyword == "CMD"]
    assert entrypoint[-1] == ["inkwell"]
    assert command[-1] == ["serve"]
    env = " ".join(i.args for i in runtime if i.keyword == "ENV")
    assert re.search(r"\bHOST=0\.0\.0\.0\b", env)
    assert re.search(r"\bWEB_CONCURRENCY=\d+\b", env)
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE=1\b", env)


def test_healthcheck_probes_health_with_python(dockerfile: list[Instruction]) -> None:
    checks = [i.args for i in stages(dockerfile)[-1] if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    _, _, command = checks[0].partition("CMD ")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "/health" in argv[2]
    assert "curl" not in checks[0]
    assert "wget" not in checks[0]
    compile(argv[2], "HEALTHCHECK", "exec")  # the probe is valid Python


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/").removeprefix("**/")
        parts = path.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))] + parts
        if any(fnmatch.fnmatch(candidate, body) for candidate in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_image_copies(dockerfile: list[Instruction]) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = {
        source
        for i in dockerfile
        if i.keyword == "COPY" and "--from" not in i.args
        for source in i.args.split()[:-1]
    }
    for source in copied:
        assert not _ignored(source, patterns), f"{source} is COPY'd but ignored"
    for private in (".env", ".venv", ".git", "tests", "var/inkwell.db", "src/__pycache__"):
        assert _ignored(private, patterns), f"{private} would reach the build context"
