"""Fixtures: the local control plane (`storefactory-testkit up`), a fresh database per test,
and blueprint folders written on the fly."""

import os
import pathlib
import signal
import subprocess
import time

import pytest

import storefactory as sf

REPO = pathlib.Path(__file__).resolve().parents[2]

# A second blueprint, as an embedder would write one: a static page served by one
# Deployment, no database, its own generated secret and credentials. `fault` is a pod
# annotation the simulated kubelet obeys (e.g. `image-pull`).
STOREFRONT_METADATA = """\
description: A static storefront page.
parameters:
  fault: {description: A fault for the simulated kubelet, default: none}
lifecycle:
  ready:
    - {kind: Deployment, name: web, step: web, message: The storefront is served}
  secrets:
    - name: editor
      keys:
        user: {from: store.owner}
        token: {generate: 24, input: editor_token}
  credentials: {secret: editor, username_key: user, password_key: token, path: edit/}
"""

STOREFRONT_TEMPLATE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {{namespace}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {{namespace}}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        testkit.storefactory.io/fault: {{params.fault}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""


def write_storefront(root: pathlib.Path) -> pathlib.Path:
    """A folder of blueprint folders holding `storefront`."""
    folder = root / "storefront"
    folder.mkdir(parents=True)
    (folder / "blueprint.yaml").write_text(STOREFRONT_METADATA)
    (folder / "00-web.yaml.hbs").write_text(STOREFRONT_TEMPLATE)
    return root


@pytest.fixture
def storefront_dir(tmp_path):
    return write_storefront(tmp_path / "blueprints")


@pytest.fixture
def db(tmp_path):
    return sf.Database(tmp_path / "storefactory.db")


def _testkit_binary() -> pathlib.Path:
    given = os.environ.get("STOREFACTORY_TESTKIT")
    path = pathlib.Path(given) if given else REPO / "target" / "debug" / "storefactory-testkit"
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: build it with `cargo build -p storefactory-testkit` "
            "(or set STOREFACTORY_TESTKIT)"
        )
    return path


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory):
    """A running local control plane with a simulated kubelet; its kubeconfig's path."""
    folder = tmp_path_factory.mktemp("cluster")
    log_path = folder / "up.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(_testkit_binary()), "up", "--dir", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while "control plane ready" not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the control plane did not start:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield str(folder / "kubeconfig")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
