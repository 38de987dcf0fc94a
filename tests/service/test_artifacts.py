"""Artifacts are append-only and versioned; digests come from the file."""

from __future__ import annotations

import hashlib

import pytest
from chainpipe.core.errors import InvalidInput, InvalidTransition, NotFound
from chainpipe.core.services.artifacts import add_artifact, get_artifact, list_artifacts
from chainpipe.core.services.pipelines import cancel_pipeline

from tests.service.helpers import running_pipeline


@pytest.fixture
def build(tmp_path):
    path = tmp_path / "build.zip"
    path.write_bytes(b"release 1")
    return path


def test_path_records_sha256_and_size_and_the_current_stage(run, alice, build):
    pid = running_pipeline(run, alice)
    art = run(add_artifact, alice, pid, name="build.zip", type="binary", path=str(build))
    assert art["digest"] == "sha256:" + hashlib.sha256(b"release 1").hexdigest()
    assert art["size"] == 9 and art["version"] == 1 and art["stage"] == "requirements"
    assert art["id"].startswith("art-") and art["path"] == str(build)


def test_the_same_name_creates_the_next_version_and_never_updates(run, alice, build):
    pid = running_pipeline(run, alice)
    first = run(add_artifact, alice, pid, name="build.zip", type="binary", path=str(build))
    build.write_bytes(b"release 2")
    second = run(add_artifact, alice, pid, name="build.zip", type="binary", path=str(build))
    assert second["version"] == 2 and second["digest"] != first["digest"]
    all_versions = run(list_artifacts, alice, pid, all_versions=True)
    assert [(a["version"], a["digest"]) for a in all_versions] == [(1, first["digest"]), (2, second["digest"])]
    assert [a["version"] for a in run(list_artifacts, alice, pid)] == [2]


def test_latest_listing_is_per_name(run, alice):
    pid = running_pipeline(run, alice)
    for name in ("b", "a", "b"):
        run(add_artifact, alice, pid, name=name, type="report", uri=f"s3://bucket/{name}")
    assert [(a["name"], a["version"]) for a in run(list_artifacts, alice, pid)] == [("a", 1), ("b", 2)]


def test_docker_image_reference_carries_its_digest(run, alice):
    pid = running_pipeline(run, alice)
    digest = "sha256:" + "ab" * 32
    art = run(add_artifact, alice, pid, name="api", type="docker-image", uri=f"ghcr.io/acme/api@{digest}")
    assert art["digest"] == digest and art["size"] is None


def test_stage_may_be_named_with_an_alias(run, alice):
    pid = running_pipeline(run, alice)
    assert run(add_artifact, alice, pid, name="r", type="report", uri="x", stage="testing")["stage"] == "test"


@pytest.mark.parametrize("kwargs,problem", [
    ({"type": "zip"}, "unknown artifact type: zip; allowed: binary, docker-image, report, log, sbom, document"),
    ({"type": "binary", "path": "/nope/missing.zip"}, "file not found: /nope/missing.zip"),
    ({"type": "binary", "path": "/"}, "not a regular file: /"),
    ({"type": "binary", "digest": "md5:abc"}, "digest must look like sha256:"),
    ({"type": "binary", "path": "BUILD", "digest": "sha256:" + "0" * 64}, "does not match the file's"),
    ({"type": "binary", "path": "BUILD", "uri": "s3://x"}, "either --path or --uri"),
    ({"type": "binary", "uri": "s3://x", "stage": "staging"}, "unknown stage"),
    ({"type": "binary"}, "say what the artifact is: --path FILE"),
])
def test_bad_input_is_refused_and_nothing_is_written(run, alice, build, kwargs, problem):
    pid = running_pipeline(run, alice)
    if kwargs.get("path") == "BUILD":
        kwargs["path"] = str(build)
    with pytest.raises(InvalidInput, match=problem):
        run(add_artifact, alice, pid, name="build.zip", **kwargs)
    assert run(list_artifacts, alice, pid) == []


def test_no_artifacts_on_a_closed_pipeline(run, alice):
    pid = running_pipeline(run, alice)
    run(cancel_pipeline, alice, pid)
    with pytest.raises(InvalidTransition, match="can't add an artifact to a pipeline that is cancelled"):
        run(add_artifact, alice, pid, name="x", type="log", uri="x")


def test_find_artifact_by_name_and_version(run, alice, settings):
    from chainpipe.core.uow import UnitOfWork

    pid = running_pipeline(run, alice)
    for _ in range(3):
        run(add_artifact, alice, pid, name="img", type="docker-image", uri="ghcr.io/acme/img:1")
    with UnitOfWork(settings) as uow:
        assert get_artifact(uow, pid, "img").version == 3
        assert get_artifact(uow, pid, "img@2").version == 2
        with pytest.raises(NotFound, match="artifact not found in pipeline .*: img@9"):
            get_artifact(uow, pid, "img@9")
