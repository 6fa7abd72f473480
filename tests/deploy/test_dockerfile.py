"""The Dockerfile and .dockerignore, parsed (Docker does not run here)."""

from __future__ import annotations

import fnmatch
import re

from tests.deploy.support import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(index for index, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_base_image_is_python_311_slim() -> None:
    steps = instructions()
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in steps if word == "ARG" and "=" in rest}
    bases = [rest.split()[0] for word, rest in steps if word == "FROM"]
    resolved = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base) for base in bases]
    assert resolved and all(base == "python:3.11-slim" for base in resolved), resolved


def test_runs_as_a_non_root_user() -> None:
    stage = final_stage()
    users = [rest for word, rest in stage if word == "USER"]
    assert users, "the final stage must switch user"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root") and (not user.isdigit() or int(user) >= 1000)
    last_user = max(index for index, (word, _) in enumerate(stage) if word == "USER")
    assert not [word for word, _ in stage[last_user:] if word in ("RUN", "COPY", "ADD")], (
        "nothing after USER runs as root"
    )


def test_requirements_are_installed_before_the_code_is_copied() -> None:
    steps = instructions()
    copy_requirements = next(
        i for i, (w, rest) in enumerate(steps) if w == "COPY" and rest.startswith("requirements.txt")
    )
    install = next(i for i, (w, rest) in enumerate(steps) if w == "RUN" and "pip install -r" in rest)
    copy_code = next(i for i, (w, rest) in enumerate(steps) if w == "COPY" and rest.split()[0] == ".")
    assert copy_requirements < install < copy_code


def test_runtime_environment() -> None:
    stage = final_stage()
    env = " ".join(rest for word, rest in stage if word == "ENV")
    for setting in ("PYTHONPATH=/app", "DATA_DIR=/data", "PORT=8000", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env, setting
    assert ("WORKDIR", "/app") in stage
    assert not [rest for word, rest in instructions() if word == "ADD"], "COPY only: nothing fetched from URLs"


def test_dockerignore_keeps_secrets_and_clutter_out_but_not_the_code() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, pattern.removeprefix("**/")) or fnmatch.fnmatch(path, pattern) for pattern in patterns
        )

    for path in (".git", ".venv", "tests", ".env", "jwt.pem", ".data"):
        assert ignored(path), path
    for path in ("requirements.txt", "services", "shared", "services/users/app.py"):
        assert not ignored(path), path
