from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.support import K8S, OVERLAYS, Doc, load_docs, render


@pytest.fixture(scope="session")
def rendered_text() -> dict[str, str]:
    """kubectl kustomize output of base and of each overlay, rendered once per session."""
    texts = {"base": render(K8S / "base")}
    for overlay in OVERLAYS:
        texts[overlay] = render(K8S / "overlays" / overlay)
    return texts


@pytest.fixture(scope="session")
def rendered(rendered_text: dict[str, str]) -> dict[str, list[Doc]]:
    return {name: load_docs(text) for name, text in rendered_text.items()}


@pytest.fixture(scope="session")
def rendered_files(rendered_text: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rendered")
    files = {}
    for name, text in rendered_text.items():
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(text)
    return files
