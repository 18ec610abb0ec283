"""A real Docker engine for the tests that run compose files on one.

`prepare()` runs tests/docker/engine.sh (Docker, docker-compose and debootstrap installed, the
daemon answering) and tests/docker/images.sh (the local stand-ins for the official images, built
only when missing or changed). `ComposeProject` runs docker-compose under a project name of its
own, takes everything down afterwards and reports whatever the project left behind.

DAPR_ENVOY_SKIP_DOCKER=1 is the only way to not run these tests; an engine that cannot start is a
failure with its reason, never a silent pass.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests/docker"
SKIP_VARIABLE = "DAPR_ENVOY_SKIP_DOCKER"
PROJECT_LABEL = "com.docker.compose.project"


class EngineUnavailable(Exception):
    """engine.sh or images.sh failed; the message says why."""


def skip_requested() -> bool:
    return os.environ.get(SKIP_VARIABLE) == "1"


def dotenv(name: str) -> str:
    """A variable of the repository's .env (ENVOY_VERSION)."""
    for line in (ROOT / ".env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(name)


def prepare(timeout: float = 1800) -> None:
    """The engine answering and the stand-in images built; EngineUnavailable with the scripts'
    output otherwise. A cold build (debootstrap twice) takes a minute or two; a warm one, a second."""
    env = dict(os.environ, PYTHON=sys.executable)
    for script in ("engine.sh", "images.sh"):
        try:
            proc = subprocess.run([str(SCRIPTS / script)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise EngineUnavailable(f"tests/docker/{script} took over {timeout:.0f}s:\n"
                                    f"{_tail(e.output)}") from None
        if proc.returncode != 0:
            raise EngineUnavailable(f"tests/docker/{script} failed (exit {proc.returncode}):\n"
                                    f"{_tail(proc.stdout)}")


def _tail(output: bytes | str | None, lines: int = 40) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return "\n".join((output or "").splitlines()[-lines:])


def docker(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class ComposeProject:
    """docker-compose under one unique project name (so parallel runs and a user's own
    `docker compose up` never meet), remembering which files it ran so it can take them down."""

    def __init__(self) -> None:
        self.name = f"dapr-envoy-test-{uuid.uuid4().hex[:10]}"
        self.used: list[tuple[Path, Path]] = []

    def command(self, project_dir: Path, compose_file: Path, *args: str) -> list[str]:
        return ["docker-compose", "--project-name", self.name, "--project-directory", str(project_dir),
                "--file", str(compose_file), *args]

    def __call__(self, project_dir: str | Path, compose_file: str | Path, *args: str,
                 timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """Runs `docker-compose -p <project> -f <compose_file> <args>` in project_dir (relative
        paths in the file, and its .env, are the project directory's). Output is captured;
        check=True raises with it when the command fails."""
        project_dir, compose_file = Path(project_dir), Path(compose_file)
        if (project_dir, compose_file) not in self.used:
            self.used.append((project_dir, compose_file))
        proc = subprocess.run(self.command(project_dir, compose_file, *args), cwd=project_dir,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def logs(self, tail: int = 60) -> str:
        out = []
        for project_dir, compose_file in self.used:
            proc = subprocess.run(self.command(project_dir, compose_file, "logs", "--no-color", "--tail", str(tail)),
                                  cwd=project_dir, capture_output=True, text=True, timeout=60)
            out.append(proc.stdout + proc.stderr)
        return "\n".join(out)

    def down(self) -> list[str]:
        """`down -v --remove-orphans --timeout 5` for every file used, then whatever still carries
        the project's label (containers, networks, volumes), which is removed too and returned."""
        errors = []
        for project_dir, compose_file in self.used:
            proc = subprocess.run(
                self.command(project_dir, compose_file, "down", "-v", "--remove-orphans", "--timeout", "5"),
                cwd=project_dir, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                errors.append(f"docker-compose down exited {proc.returncode}: {proc.stderr.strip()}")
        left = self.leftovers()
        for kind, ids in left.items():
            if ids:
                subprocess.run(["docker", kind, "rm", "--force", *ids] if kind != "network"
                               else ["docker", kind, "rm", *ids], capture_output=True, timeout=120)
        return errors + [f"{kind} left behind: {' '.join(ids)}" for kind, ids in left.items() if ids]

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label={PROJECT_LABEL}={self.name}"
        return {
            "container": docker("ps", "--all", "--quiet", "--filter", label).split(),
            "network": docker("network", "ls", "--quiet", "--filter", label).split(),
            "volume": docker("volume", "ls", "--quiet", "--filter", label).split(),
        }
