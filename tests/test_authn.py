"""Credential lookup and storage: docker config, credential helpers, containers auth.json."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from promoter.authn.store import Credential, find_credential, store_credential
from promoter.errors import ConfigError, CredentialError


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _helper(bin_dir: Path, name: str, script: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real docker-credential-<name> program on PATH that logs its calls next to itself."""
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / f"docker-credential-{name}"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return program


def test_no_config_means_anonymous() -> None:
    """Without any config file the lookup is anonymous."""
    assert find_credential("ghcr.io") is None


def test_docker_config_auth_and_identity_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auths entries match by host, even written as URLs; identitytoken wins over auth."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    _write(
        tmp_path / "d" / "config.json",
        {
            "auths": {
                "https://reg.example.com/v1/": {"auth": _b64("alice:s3cret:with:colons")},
                "tok.example.com": {"auth": _b64("bob:x"), "identitytoken": "refresh-123"},
                "https://index.docker.io/v1/": {"auth": _b64("hub:hubpass")},
            }
        },
    )
    assert find_credential("reg.example.com") == Credential("alice", "s3cret:with:colons")
    assert find_credential("tok.example.com") == Credential("bob", identity_token="refresh-123")
    assert find_credential("docker.io") == Credential("hub", "hubpass")
    assert find_credential("other.example.com") is None


def test_credential_repr_hides_secrets() -> None:
    """repr() of a credential never contains the password or token."""
    text = repr(Credential("alice", "hunter2-secret"))
    assert "hunter2" not in text
    assert "alice" in text


def test_cred_helpers_then_creds_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """credHelpers[host] runs docker-credential-<name> get; credsStore covers other hosts."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    _write(
        tmp_path / "d" / "config.json",
        {"credHelpers": {"ecr.example.com": "fake"}, "credsStore": "store"},
    )
    _helper(
        tmp_path / "bin",
        "fake",
        'read host; echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"AWS\\",\\"Secret\\":\\"pw-$host\\"}"\n',
        monkeypatch,
    )
    _helper(
        tmp_path / "bin",
        "store",
        'read host; if [ "$host" = known.example.com ]; then '
        'echo \'{"Username":"<token>","Secret":"idtok"}\'; '
        "else echo 'credentials not found in native keychain'; exit 1; fi\n",
        monkeypatch,
    )
    assert find_credential("ecr.example.com") == Credential("AWS", "pw-ecr.example.com")
    assert find_credential("known.example.com") == Credential(identity_token="idtok")
    assert find_credential("unknown.example.com") is None


def test_missing_or_failing_helper_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper that is not installed, or that fails, names itself and the registry; what a failing
    helper printed is not shown (it may hold a secret)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    _write(tmp_path / "d" / "config.json", {"credHelpers": {"r.example.com": "nothere"}})
    with pytest.raises(CredentialError, match=r"docker-credential-nothere .* not on PATH"):
        find_credential("r.example.com")
    _helper(tmp_path / "bin", "nothere", "echo 'backend locked' >&2; exit 3\n", monkeypatch)
    with pytest.raises(
        CredentialError, match=r"get failed for r\.example\.com \(exit status 3\)"
    ) as info:
        find_credential("r.example.com")
    assert "backend locked" not in str(info.value)


def test_containers_auth_json_after_docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$REGISTRY_AUTH_FILE is read when the docker config has nothing for the host."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    _write(tmp_path / "d" / "config.json", {"auths": {"a.example.com": {"auth": _b64("a:1")}}})
    auth_file = _write(tmp_path / "auth.json", {"auths": {"b.example.com": {"auth": _b64("b:2")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    assert find_credential("a.example.com") == Credential("a", "1")
    assert find_credential("b.example.com") == Credential("b", "2")


def test_xdg_runtime_auth_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json is read."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    _write(
        tmp_path / "run" / "containers" / "auth.json",
        {"auths": {"c.example.com": {"auth": _b64("c:3")}}},
    )
    assert find_credential("c.example.com") == Credential("c", "3")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"auths": {"r.example.com": {"auth": "%%%"}}}', "not base64"),
    ],
)
def test_malformed_config_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, fragment: str
) -> None:
    """A broken config file is an input error naming the file and what to do."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=fragment) as info:
        find_credential("r.example.com")
    assert str(tmp_path / "config.json") in str(info.value)


def test_store_writes_docker_config_keeping_other_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing keeps existing entries, writes base64 user:password, and makes the file 0600."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    path = _write(
        tmp_path / "d" / "config.json",
        {"auths": {"x.example.com": {"auth": _b64("x:y")}}, "psFormat": "t"},
    )
    assert store_credential("127.0.0.1:5000", "me", "pw") == path
    doc = json.loads(path.read_text())
    assert doc["psFormat"] == "t"
    assert doc["auths"]["x.example.com"] == {"auth": _b64("x:y")}
    assert doc["auths"]["127.0.0.1:5000"] == {"auth": _b64("me:pw")}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert find_credential("127.0.0.1:5000") == Credential("me", "pw")


def test_store_uses_the_configured_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With credsStore set, login hands the secret to the helper instead of the file."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    _write(tmp_path / "d" / "config.json", {"credsStore": "rec"})
    log = tmp_path / "stored.json"
    _helper(tmp_path / "bin", "rec", f'[ "$1" = store ] && cat > {log}\n', monkeypatch)
    assert store_credential("r.example.com", "me", "pw") == "docker-credential-rec"
    assert json.loads(log.read_text()) == {
        "ServerURL": "r.example.com",
        "Username": "me",
        "Secret": "pw",
    }
    assert "auths" not in json.loads((tmp_path / "d" / "config.json").read_text())
