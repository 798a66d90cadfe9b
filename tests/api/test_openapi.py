"""The OpenAPI document is pinned: a change to the API shows up as a diff of tests/api/openapi.json.

After an intended change, regenerate it with
``NEXTMOVE_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/api/test_openapi.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nextmove.api import ApiConfig, create_app
from nextmove.playbook.loader import load_playbook

SNAPSHOT = Path(__file__).with_name("openapi.json")


def current_document(tmp_path: Path) -> dict[str, Any]:
    app = create_app(ApiConfig(playbook=load_playbook(), store_url=f"sqlite:///{(tmp_path / 'n.db').as_posix()}"))
    document: dict[str, Any] = app.openapi()
    # The package version changes with every release; the API's shape is what is pinned.
    document["info"].pop("version", None)
    app.state.services.close()
    return document


def test_openapi_document_matches_the_snapshot(tmp_path: Path) -> None:
    document = current_document(tmp_path)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if os.environ.get("NEXTMOVE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert SNAPSHOT.read_text(encoding="utf-8") == text, (
        "the OpenAPI document changed; if intended, rerun with NEXTMOVE_UPDATE_SNAPSHOTS=1 and commit the diff"
    )


def test_every_operation_documents_its_errors_as_json(tmp_path: Path) -> None:
    document = current_document(tmp_path)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1/"):
                continue
            assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorPublic"
            }
            assert operation.get("security"), (method, path)


def test_the_api_page_uses_only_documented_endpoints(tmp_path: Path) -> None:
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    document = current_document(tmp_path)
    templates = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in document["paths"]]
    used = set(re.findall(r"\$API(/[A-Za-z0-9_/\-{}$]*)", page))  # $RUN_ID: a shell variable in a path
    assert {"/v1/decide", "/v1/feedback", "/v1/recommendations"} <= used
    for path in used:
        assert any(t.match(path) for t in templates), f"docs/api.md uses {path}, which the API does not have"


def test_the_document_speaks_of_no_one_business(tmp_path: Path) -> None:
    # Books of any business are served: no lab or B2B outcome in the descriptions.
    text = json.dumps(current_document(tmp_path)).lower()
    for word in ("renewal", "churn", "arr added", "expansion"):
        assert word not in text, word
