"""`nydus-console inspect` against a real registry (Debian's docker-registry).

The registry runs on 127.0.0.1 with no auth, htpasswd basic auth, or the
Bearer token flow with the token server double; images are pushed through
its API by the fixture. Reference parsing is checked with examples and
with hypothesis.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from testbed.registry import PASSWORD, USER, RegistryServer

from nydus_console.cli import main
from nydus_console.images.analysis import (
    NYDUS_ARTIFACT,
)
from nydus_console.images.credentials import parse_docker_config
from nydus_console.images.reference import (
    MAX_NAME_LENGTH,
    BadReference,
    parse_reference,
)
from nydus_console.images.registry import RegistryClient

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DIGEST = "sha256:" + "ab" * 32


# --- references ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "api_host"),
    [
        ("nginx", "docker.io/library/nginx:latest", "registry-1.docker.io"),
        ("team/app:v1", "docker.io/team/app:v1", "registry-1.docker.io"),
        ("index.docker.io/x/y:2", "docker.io/x/y:2", "registry-1.docker.io"),
        ("localhost/app", "localhost/app:latest", "localhost"),
        ("localhost:5000/a/b:c", "localhost:5000/a/b:c", "localhost:5000"),
        (
            f"reg.example:443/a@{DIGEST}",
            f"reg.example:443/a@{DIGEST}",
            "reg.example:443",
        ),
        (f"a/b:t@{DIGEST}", f"docker.io/a/b:t@{DIGEST}", "registry-1.docker.io"),
        ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000"),
        ("a__b/c.d-e_f:1.0-rc_1", "docker.io/a__b/c.d-e_f:1.0-rc_1", None),
    ],
)
def test_references_normalise(text: str, expected: str, api_host: str | None) -> None:
    ref = parse_reference(text)
    assert str(ref) == expected
    if api_host:
        assert ref.api_host == api_host
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a;rm -rf /",
        "$(id)",
        "`id`",
        "a/../b",
        "../etc/passwd",
        "app:tag with space",
        "app\n",
        "-rf",
        "http://evil.example/x",
        "a//b",
        "app:",
        "app:-x",
        "app@sha256:1234",
        "app@md5:" + "a" * 32,
        "reg.example:99999/app",
        "reg.example/app?x=1",
        "reg.example/app#frag",
        "UPPER.example/App",
        "x" * 600,
        "reg.example/%2e%2e/app",
        "évil/app",
    ],
)
def test_hostile_references_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(BadReference) as caught:
        parse_reference(text)
    assert "is not a valid image reference" in str(caught.value)
    assert repr(text[:80])[:40] in str(caught.value)


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=120))
def test_any_text_is_refused_or_reaches_only_the_registry_api(text: str) -> None:
    try:
        ref = parse_reference(text)
    except BadReference:
        return
    assert parse_reference(str(ref)) == ref
    client = RegistryClient(ref.api_host, insecure=True)
    url = client.url(ref.path, "manifests", ref.reference)
    assert url.host == httpx.URL(f"http://{ref.api_host}/").host
    assert url.raw_path.startswith(f"/v2/{ref.path}/manifests/".encode())
    assert b".." not in url.raw_path
    assert not url.query
    assert not url.fragment


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(
        r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}(:[1-9][0-9]{0,3})?", fullmatch=True
    ),
    st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+){0,2}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)
def test_grammar_examples_parse(domain: str, path: str, tag: str) -> None:
    # The grammar has no length limit; a name is at most 255 characters,
    # counted after a domain without a dot or port becomes docker.io/<domain>.
    assume(len(f"docker.io/{domain}/{path}") <= MAX_NAME_LENGTH)
    ref = parse_reference(f"{domain}/{path}:{tag}")
    assert ref.tag == tag
    assert parse_reference(str(ref)) == ref


def test_docker_config_credentials_are_masked() -> None:
    auth = base64.b64encode(b"alice:s3cret-pw").decode()
    text = json.dumps(
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": auth},
                "reg.example:5000": {"username": "bob", "password": "hunter2-pw"},
                "broken.example": {"auth": "!!!"},
            },
            "credHelpers": {"ecr.example": "ecr-login"},
        }
    )
    config = parse_docker_config(text, "config.json")
    assert config.registries() == ["docker.io", "reg.example:5000"]
    creds = config.lookup("docker.io")
    assert creds is not None and creds.password == "s3cret-pw"
    assert "s3cret" not in repr(config) + repr(creds) + str(creds)
    assert config.helper_for("ecr.example") == "ecr-login"


# --- a real registry ----------------------------------------------------------


def push_oci(registry: RegistryServer, repo: str, tag: str) -> dict[str, Any]:
    return registry.push_oci_image(repo, tag)


def push_nydus(
    registry: RegistryServer, repo: str, tag: str, **options: Any
) -> dict[str, Any]:
    return registry.push_nydus_image(repo, tag, **options)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point DOCKER_CONFIG at an empty directory of the test."""
    folder = tmp_path / "docker"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def write_docker_config(folder: Path, host: str, user: str, password: str) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_oci_image_shows_layers_and_the_referrers_tag_fallback(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    pushed = push_oci(registry, "team/app", "v1")
    code, out, _ = run_cli(capsys, f"{registry.host}/team/app:v1", "--insecure")
    assert code == 0
    assert f"digest:     {pushed['digest']}" in out
    assert "media type: application/vnd.oci.image.manifest.v1+json" in out
    assert "nydus:      no" in out
    assert "layers:     2" in out
    assert f"{900:>12}  {OCI_LAYER}" in out
    tag = pushed["digest"].replace(":", "-")
    assert (
        f"read from referrers tag {tag} (the registry has no referrers API: 404)" in out
    )
    assert "no nydus referrer" in out


def test_nydus_image_is_recognised_with_its_fs_version(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    push_nydus(registry, "team/app", "v1-nydus", fs_version="5")
    code, out, _ = run_cli(capsys, f"{registry.host}/team/app:v1-nydus", "--insecure")
    assert code == 0
    assert "nydus:      yes, fs version 5" in out
    assert "nydus bootstrap" in out
    assert "nydus blob" in out
    code, out, _ = run_cli(
        capsys, f"{registry.host}/team/app:v1-nydus", "--insecure", "--json"
    )
    report = json.loads(out)
    assert report["is_nydus"] is True
    assert report["manifests"][0]["fs_version"] == "5"
    assert [layer["role"] for layer in report["manifests"][0]["layers"]] == [
        "nydus blob",
        "nydus blob",
        "nydus bootstrap",
    ]
    assert report["referrers"] == []


def test_bootstrap_without_fs_version_annotation_says_so(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    push_nydus(registry, "team/app", "old", fs_version="")
    code, out, _ = run_cli(capsys, f"{registry.host}/team/app:old", "--insecure")
    assert code == 0
    assert "nydus:      yes, fs version not annotated" in out
    assert "no nydus-fs-version annotation" in out


def test_index_lists_platforms_and_marks_the_nydus_manifest(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    oci = push_oci(registry, "team/multi", "oci")
    nydus = push_nydus(registry, "team/multi", "nydus")
    platform = {"os": "linux", "architecture": "amd64"}
    arm = {"os": "linux", "architecture": "arm64", "variant": "v8"}
    registry.push_index(
        "team/multi",
        "v1",
        [
            {**oci, "platform": platform},
            {**nydus, "platform": platform, "artifactType": NYDUS_ARTIFACT},
            {**push_oci(registry, "team/multi", "arm"), "platform": arm},
        ],
    )
    code, out, _ = run_cli(
        capsys, f"{registry.host}/team/multi:v1", "--insecure", "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["is_index"] and report["is_nydus"]
    assert [p["platform"] for p in report["platforms"]] == [
        "linux/amd64",
        "linux/amd64",
        "linux/arm64/v8",
    ]
    assert [p["marked_nydus"] for p in report["platforms"]] == [False, True, False]
    assert [m["is_nydus"] for m in report["manifests"]] == [False, True, False]
    assert report["manifests"][1]["fs_version"] == "6"


def test_oci_image_with_a_nydus_referrer_found_through_the_tag_schema(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    subject = push_oci(registry, "team/ref", "v1")
    referrer = push_nydus(
        registry, "team/ref", "v1-nydus", subject=subject, artifact_type=NYDUS_ARTIFACT
    )
    tag = subject["digest"].replace(":", "-")
    registry.push_index("team/ref", tag, [{**referrer, "artifactType": NYDUS_ARTIFACT}])
    code, out, _ = run_cli(capsys, f"{registry.host}/team/ref:v1", "--insecure")
    assert code == 0
    assert "nydus:      no" in out
    assert f"nydus referrer {referrer['digest']}, fs version 6" in out
    assert "(the registry has no referrers API: 404)" in out
    code, out, _ = run_cli(
        capsys, f"{registry.host}/team/ref:v1", "--insecure", "--json"
    )
    report = json.loads(out)
    assert report["has_nydus_referrer"] is True
    assert report["referrers"][0]["source"].startswith(f"referrers tag {tag}")


def test_missing_image_and_bad_reference_exit_statuses(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    code, _, err = run_cli(capsys, f"{registry.host}/team/none:v9", "--insecure")
    assert code == 1
    assert f"{registry.host}/team/none:v9 was not found on {registry.host}" in err
    code, _, err = run_cli(capsys, f"{registry.host}/team/$(id):v1", "--insecure")
    assert code == 64
    assert "$(id)" in err


def test_basic_auth_with_password_stdin_and_docker_config(
    start_registry: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_docker_config: Path,
) -> None:
    registry = start_registry("basic")
    push_oci(registry, "team/app", "v1")
    image = f"{registry.host}/team/app:v1"
    code, _, err = run_cli(capsys, image, "--insecure")
    assert code == 1
    assert "denied access to" in err
    assert "401" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = run_cli(
        capsys, image, "--insecure", "--username", USER, "--password-stdin"
    )
    assert code == 0, err
    assert "layers:     2" in out
    assert PASSWORD not in out + err
    write_docker_config(no_docker_config, registry.host, USER, PASSWORD)
    code, out, err = run_cli(capsys, image, "--insecure")
    assert code == 0, err
    assert PASSWORD not in out + err
    write_docker_config(no_docker_config, registry.host, USER, "wrong-password")
    code, out, err = run_cli(capsys, image, "--insecure")
    assert code == 1
    assert "wrong-password" not in out + err


def test_bearer_token_flow_asks_for_the_repository_scope(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry("token")
    push_nydus(registry, "team/app", "v1")
    assert registry.token_server is not None
    registry.token_server.requests.clear()
    image = f"{registry.host}/team/app:v1"
    code, _, err = run_cli(capsys, image, "--insecure")
    assert code == 1
    assert "with no credentials" in err
    write_docker_config(no_docker_config, registry.host, USER, PASSWORD)
    code, out, err = run_cli(capsys, image, "--insecure")
    assert code == 0, err
    assert "nydus:      yes, fs version 6" in out
    asked = [r for r in registry.token_server.requests if r["user"] == USER]
    assert asked and asked[0]["query"]["scope"] == ["repository:team/app:pull"]
    assert asked[0]["query"]["service"] == [registry.token_server.service]
    assert PASSWORD not in out + err


def test_wrong_password_stdin_is_named_as_rejected(
    start_registry: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_docker_config: Path,
) -> None:
    registry = start_registry("basic")
    push_oci(registry, "team/app", "v1")
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong-password\n"))
    code, out, err = run_cli(
        capsys,
        f"{registry.host}/team/app:v1",
        "--insecure",
        "--username",
        USER,
        "--password-stdin",
    )
    assert code == 1
    assert f"rejected the credentials for {USER} from --password-stdin" in err
    assert "no credentials" not in err
    assert "wrong-password" not in out + err


def test_wrong_docker_config_password_is_named_as_rejected(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    config = no_docker_config / "config.json"
    for kind in ("basic", "token"):
        registry = start_registry(kind)
        push_oci(registry, "team/app", "v1")
        write_docker_config(no_docker_config, registry.host, USER, "wrong-password")
        code, out, err = run_cli(capsys, f"{registry.host}/team/app:v1", "--insecure")
        assert code == 1, kind
        expected = f"rejected the credentials for {USER} from the docker config"
        assert expected in err, kind
        assert str(config) in err, kind
        assert "wrong-password" not in out + err
    assert "the token server 127.0.0.1 rejected" in err


def test_json_failure_prints_the_error_and_keeps_the_status(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    image = f"{registry.host}/team/none:v9"
    code, out, err = run_cli(capsys, image, "--insecure", "--json")
    assert code == 1
    document = json.loads(out)
    assert document["reference"] == image
    assert document["error"]["kind"] == "not_found"
    assert "was not found" in document["error"]["message"]
    assert document["exit_code"] == 1
    assert "was not found" in err
    code, out, _ = run_cli(capsys, "team/$(id)", "--json")
    assert code == 64
    assert "$(id)" in json.loads(out)["error"]["message"]


def test_anonymous_pull_through_the_token_server(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry("token", anonymous_pull=True)
    push_oci(registry, "team/public", "v1")
    code, out, err = run_cli(capsys, f"{registry.host}/team/public:v1", "--insecure")
    assert code == 0, err
    assert "nydus:      no" in out


def test_https_by_default_and_plain_http_only_with_insecure(
    start_registry: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_docker_config: Path,
) -> None:
    secure = start_registry(tls=True)
    push_oci(secure, "team/app", "v1")
    assert secure.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(secure.ca_file))
    code, out, err = run_cli(capsys, f"{secure.host}/team/app:v1")
    assert code == 0, err
    assert "layers:     2" in out
    plain = start_registry()
    push_oci(plain, "team/app", "v1")
    code, _, err = run_cli(capsys, f"{plain.host}/team/app:v1")
    assert code == 1
    assert f"cannot reach {plain.host} over HTTPS" in err
    assert "--insecure" in err


def test_username_needs_password_stdin(
    capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    code, _, err = run_cli(capsys, "reg.example/app", "--username", "alice")
    assert code == 64
    assert "--password-stdin" in err


def test_docker_manifest_list_with_a_nydus_manifest(
    start_registry: Any, capsys: pytest.CaptureFixture[str], no_docker_config: Path
) -> None:
    registry = start_registry()
    platform = {"os": "linux", "architecture": "amd64"}
    nydus = registry.push_nydus_image("team/docker", "nydus", docker=True)
    features = {**platform, "os.features": ["nydus.remoteimage.v1"]}
    registry.push_index(
        "team/docker", "v1", [{**nydus, "platform": features}], docker=True
    )
    code, out, _ = run_cli(
        capsys, f"{registry.host}/team/docker:v1", "--insecure", "--json"
    )
    assert code == 0
    report = json.loads(out)
    expected = "application/vnd.docker.distribution.manifest.list.v2+json"
    assert report["media_type"] == expected
    assert report["platforms"][0]["marked_nydus"] is True
    manifest = report["manifests"][0]
    assert manifest["media_type"] == (
        "application/vnd.docker.distribution.manifest.v2+json"
    )
    assert manifest["is_nydus"] is True
    assert manifest["layers"][-1]["role"] == "nydus bootstrap"
    assert report["referrers"] == []
