"""The LiteLLM proxy as a peer in the benchmark: installed into its own virtual environment under a
cache folder, never into the project's.

LiteLLM's wheel on this mirror asks for a certifi release newer than the mirror holds; the installer
takes LiteLLM without dependencies and then installs its declared (proxy) dependencies with that one
floor relaxed to the newest certifi available.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

LITELLM_VERSION = os.environ.get("LITELLM_VERSION", "1.106.10")
CACHE = Path(os.environ.get("TOKENHUB_BENCH_CACHE", Path.home() / ".cache" / "tokenhub-bench"))
VENV = CACHE / f"litellm-{LITELLM_VERSION}"
PYTHON_FOR_PEER = os.environ.get("LITELLM_PYTHON", sys.executable)


def _pip(*args: str) -> None:
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True
    )


def _requirements(wheel: Path) -> list[str]:
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    wanted = []
    for line in lines:
        if not line.startswith("Requires-Dist: "):
            continue
        requirement = Requirement(line.removeprefix("Requires-Dist: "))
        if requirement.marker and not any(requirement.marker.evaluate({"extra": extra}) for extra in ("", "proxy")):
            continue
        requirement.marker = None
        if requirement.name == "certifi":
            wanted.append("certifi")
        else:
            wanted.append(str(requirement))
    return wanted


def ensure_litellm() -> Path:
    """The path of the `litellm` command, installing it on first use."""
    command = VENV / "bin" / "litellm"
    if command.exists():
        return command
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([PYTHON_FOR_PEER, "-m", "venv", str(VENV)], check=True)
    wheels = CACHE / "wheels"
    subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "-d",
            str(wheels),
            f"litellm=={LITELLM_VERSION}",
        ],
        check=True,
    )
    wheel = next(wheels.glob(f"litellm-{LITELLM_VERSION}-*.whl"))
    _pip(*_requirements(wheel))
    _pip("--no-deps", str(wheel))
    return command


def litellm_config(path: Path, upstream: str, master_key: str) -> Path:
    """The same models and prices as TokenHub's demo catalog, pointing at the same fake provider."""
    origin = upstream.removesuffix("/v1")
    path.write_text(f"""model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream}
      api_key: bench-upstream-key
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
  - model_name: claude-haiku-4-5
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: {origin}
      api_key: bench-upstream-key
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000005
general_settings:
  master_key: {master_key}
litellm_settings:
  drop_params: true
""")
    return path


if __name__ == "__main__":
    print(ensure_litellm())
