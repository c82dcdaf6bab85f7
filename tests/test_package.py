"""The package as a user installs it: a wheel and an sdist build, the wheel installs
into a fresh venv, and a small project runs against it without the repository on
the path (and without redis-py, which only the Redis layer needs)."""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "package_example"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_wheel_installs_and_runs_a_project(tmp_path):
    dist = tmp_path / "dist"
    run(
        sys.executable, "-m", "build", "--wheel", "--sdist", "--no-isolation",
        "-o", str(dist), str(ROOT), cwd=tmp_path,
    )  # fmt: skip
    wheel = next(dist.glob("aether_compat-*.whl"))
    assert next(dist.glob("aether_compat-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "aether_compat/py.typed" in names
    assert "aether_compat/static/aether_compat/aether.js" in names  # browser client
    assert "aether_compat/schema/aether.v1.schema.json" in names
    assert "aether_compat/templates/aether_compat/admin_live.html" in names
    assert any(name.endswith("/LICENSE") for name in names)
    assert not any(name.startswith(("tests/", "project/")) for name in names)

    # A venv that sees the installed dependencies, but not the repository.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = str(env_dir / "bin" / "python")
    run(python, "-m", "pip", "install", "-q", "--no-deps", str(wheel), cwd=tmp_path)
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = str(project)
    out = run(python, "example.py", cwd=project, env=env)
    assert f"installed at {env_dir}" in out, out
