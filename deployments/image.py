"""The Docker work pools' image (Dockerfile), built under a tag made of its inputs' content, so a
build whose inputs have not changed is the image already there. `--local-base` builds on a Debian
base made here by mmdebstrap, for machines that cannot reach Docker Hub (PREFECT.md §15)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from deployments.deploy import ROOT

logger = logging.getLogger(__name__)

NAME = "registre-flows"
DEFAULT_BASE = "python:3.11-slim-bookworm"  # production's: the Dockerfile's default
LOCAL_BASE_NAME = f"{NAME}-base"
SUITE = "bookworm"
LOCAL_BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# What the Dockerfile copies: the build context and the tag's content, both.
CONTEXT = ("Dockerfile", "pyproject.toml", "prefect.yaml", "flows", "tasks", "deployments",
           "sandbox", "supabase")  # fmt: skip
SKIPPED = ("__pycache__", ".pyc")


class ImageError(RuntimeError):
    pass


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker") is None:
        raise ImageError("no docker command: install Docker (docs/docker.md)")
    return subprocess.run(["docker", *args], text=True, capture_output=True)


def image_id(name: str) -> str | None:
    found = docker("image", "inspect", "--format", "{{.Id}}", name)
    return found.stdout.strip() if found.returncode == 0 else None


def context_files(root: Path = ROOT) -> list[Path]:
    """The files of the build context, sorted, relative to `root`."""
    files = []
    for name in CONTEXT:
        path = root / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [
            p.relative_to(root)
            for p in candidates
            if p.is_file() and not any(part.endswith(SKIPPED) for part in p.parts)
        ]
    return sorted(files)


def content_tag(base_id: str, ca_bundle: bytes, root: Path = ROOT) -> str:
    """A tag of what goes into the image: the base image's id, the files, pip's bundle."""
    digest = hashlib.sha256(base_id.encode() + b"\0" + ca_bundle)
    for path in context_files(root):
        digest.update(str(path).encode() + b"\0" + (root / path).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def pip_ca_bundle() -> bytes:
    """The certificate bundle this machine's pip uses (PIP_CERT), for the install in the build;
    none when pip uses its own."""
    path = os.environ.get("PIP_CERT")
    return Path(path).read_bytes() if path and Path(path).is_file() else b""


def local_base() -> str:
    """A minimal Debian with Python 3.11, from this machine's own apt sources, made once."""
    recipe = f"{SUITE} minbase {' '.join(LOCAL_BASE_PACKAGES)}"
    name = f"{LOCAL_BASE_NAME}:{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"
    if image_id(name):
        return name
    if shutil.which("mmdebstrap") is None:
        raise ImageError("--local-base needs mmdebstrap (apt-get install mmdebstrap)")
    logger.info("making the base image %s with mmdebstrap", name)
    with tempfile.TemporaryDirectory(prefix="registre-base-") as tmp:
        tar = Path(tmp) / "base.tar"
        include = ",".join(LOCAL_BASE_PACKAGES)
        made = subprocess.run(
            ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={include}", SUITE, str(tar)],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            raise ImageError(f"mmdebstrap failed: {made.stderr.strip()[-2000:]}")
        imported = docker("import", str(tar), name)
        if imported.returncode != 0:
            raise ImageError(f"docker import failed: {imported.stderr.strip()}")
    return name


def build(base: str = DEFAULT_BASE, *, local: bool = False, root: Path = ROOT) -> str:
    """The image's name with its content tag, built unless an image of that tag exists."""
    if local:
        base = local_base()
    base_id = image_id(base)
    if base_id is None:
        pulled = docker("pull", base)
        if pulled.returncode != 0:
            raise ImageError(
                f"base image {base} is not here and cannot be pulled ({pulled.stderr.strip()});"
                " on a machine without Docker Hub, use --local-base"
            )
        base_id = image_id(base) or base
    ca_bundle = pip_ca_bundle()
    name = f"{NAME}:{content_tag(base_id, ca_bundle, root)}"
    if image_id(name):
        logger.info("image %s is up to date", name)
        return name
    logger.info("building %s on %s", name, base)
    with tempfile.TemporaryDirectory(prefix="registre-image-") as tmp:
        context = Path(tmp)
        for path in context_files(root):
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / path, context / path)
        if ca_bundle:
            (context / "ca-bundle.pem").write_bytes(ca_bundle)
        # the host's network: the build reaches apt and PyPI as this machine does
        built = docker("build", "--network", "host", "--build-arg", f"BASE={base}",
                       "--tag", name, str(context))  # fmt: skip
    if built.returncode != 0:
        raise ImageError(f"docker build failed:\n{(built.stdout + built.stderr)[-4000:]}")
    return name
