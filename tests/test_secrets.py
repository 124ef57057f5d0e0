"""Secrets are never printed, error lines are one line, broken credential input is bad input.

Issue 8, items 3 and 6 (the credential part): every form of every secret of a run is scrubbed from
what the CLI prints, from ``--debug`` logs and from errors a Python caller gets; registry text is
escaped and cut; a malformed docker config or a misbehaving credential helper exits 2 with one line.
"""

from __future__ import annotations

import base64
import json
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from devtools import images
from devtools.fault_proxy import LONG_ECHO_CHARS, FaultProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun, credential_helper
from tests.registry_checks import push

import promoter
from promoter.app.runtime import SecretScrubber, secret_forms
from promoter.authn.store import CREDENTIALS_FILE_LIMIT, Credential
from promoter.cli.exit_codes import cli_message
from promoter.errors import (
    LINE_SHOWN,
    REGISTRY_TEXT_SHOWN,
    AuthenticationError,
    CredentialError,
    PromoterError,
    RegistryError,
    RegistryErrorDetail,
    one_line,
)

# -- the forms of a secret ------------------------------------------------------------------------


def basic_forms(username: str, password: str) -> list[str]:
    """The password and every spelling of the base64 ``user:password`` a server might echo, plus
    a prefix long enough to hold part of the password."""
    b64 = base64.b64encode(f"{username}:{password}".encode()).decode()
    url_safe = base64.urlsafe_b64encode(f"{username}:{password}".encode()).decode()
    return [password, b64, b64.rstrip("="), url_safe, url_safe.rstrip("="), quote(b64, safe="")]


def leaks(texts: list[str], secrets: list[str]) -> list[str]:
    """The secrets that appear in any of the texts."""
    return [s for s in secrets if any(s in t for t in texts)]


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "hunter2-pw"), ("a", "p>?~~"), ("bob", "pw-ending-with-padding-x")],
)
def test_basic_credential_is_scrubbed_in_every_form(username: str, password: str) -> None:
    """Padded, unpadded, URL-safe and percent-encoded base64 of user:password are all scrubbed."""
    scrub = SecretScrubber()
    scrub.remember(*Credential(username, password).secrets)
    forms = basic_forms(username, password)
    text = scrub(" | ".join(forms))
    assert leaks([text], forms) == []
    assert text.count("<redacted>") == len(forms)


def test_secret_forms_of_plain_text_are_raw_percent_hex_and_base64_encoded() -> None:
    """A token that is not base64 is learned as given, percent-encoded, hex-encoded and in its own
    base64 (padded or not, either alphabet): forms a hostile server may echo it in."""
    forms = secret_forms("tok en/1")
    assert {"tok en/1", "tok%20en%2F1", "746f6b20656e2f31", "746F6B20656E2F31"} <= forms
    assert {"dG9rIGVuLzE=", "dG9rIGVuLzE", "dG9rIGVuLzE%3D"} <= forms
    assert secret_forms("") == set()


def test_a_password_echoed_in_hex_or_its_own_base64_is_scrubbed() -> None:
    scrub = SecretScrubber()
    scrub.remember("S3cretPassw0rd-XYZZY")
    echoed = "pw b64 UzNjcmV0UGFzc3cwcmQtWFlaWlk= hex 53336372657450617373773072642d58595a5a59"
    assert scrub(echoed) == "pw b64 <redacted> hex <redacted>"


def test_short_strings_are_not_secrets() -> None:
    """Strings under four characters would mangle ordinary words and are not learned."""
    scrub = SecretScrubber()
    scrub.remember("ab")
    assert scrub("ab cab") == "ab cab"


def test_identity_token_and_raw_ecr_token_are_secrets() -> None:
    """An identity token and a credential's raw form (an ECR authorizationToken) are scrubbed."""
    raw = base64.b64encode(b"AWS:eyJwYXlsb2FkIjoiZmFrZSJ9").decode()
    credential = Credential("AWS", "eyJwYXlsb2FkIjoiZmFrZSJ9", raw=raw)
    assert raw in credential.secrets
    assert "idtok-123" in Credential(identity_token="idtok-123").secrets
    scrub = SecretScrubber()
    scrub.remember(*credential.secrets)
    assert scrub(f"echo {raw} and eyJwYXlsb2FkIjoiZmFrZSJ9") == "echo <redacted> and <redacted>"


def test_a_secret_split_by_a_cut_is_still_removed() -> None:
    """A registry message cut at 200 characters in the middle of an echoed secret shows no part of
    it, not even when the error is formatted before the scrubber sees it."""
    password = "correct-horse-battery"
    secret = base64.b64encode(f"tester:{password}".encode()).decode()
    message = "Authorization: Basic ".rjust(190, "-") + secret
    error = RegistryError(
        "GET", "http://r/v2/x/manifests/1", 400, (RegistryErrorDetail("X", message),)
    )
    scrub = SecretScrubber()
    scrub.remember(*Credential("tester", password).secrets)
    formatted = scrub(str(error))  # as a plan record holds it: str() first, scrubbed later
    assert "more characters]" in formatted
    assert secret[:4] not in formatted
    assert "<redacted>" in formatted


def test_errors_are_scrubbed_in_place_with_their_causes() -> None:
    """scrubber.error() cleans the message, the hint, the registry's details and the causes."""
    scrub = SecretScrubber()
    scrub.remember("s3cret-value")
    cause = ValueError("parse failed near s3cret-value")
    error = AuthenticationError(
        "GET",
        "http://r/v2/",
        401,
        (RegistryErrorDetail("UNAUTHORIZED", "got s3cret-value"),),
        what="ping s3cret-value",
        hint="s3cret-value",
    )
    error.__cause__ = cause
    scrub.error(error)
    shown = "".join(traceback.format_exception(error)) + repr(error)
    assert "s3cret-value" not in shown


# -- one line ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("red \x1b[31mX\x1b[0m", "red \\x1b[31mX\\x1b[0m"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("rtl \u202eoverride \u2028sep", "rtl \\u202eoverride \\u2028sep"),
        ("surrogate \udcff", "surrogate \\udcff"),
        ("unicode é ü 漢字", "unicode é ü 漢字"),
    ],
)
def test_one_line_escapes_what_is_not_printable(text: str, expected: str) -> None:
    """Control characters, ANSI escapes, separators and bidi overrides are escaped; letters stay."""
    assert one_line(text) == expected


def test_one_line_cuts_with_a_visible_mark() -> None:
    """A long text is cut and says how much was cut."""
    assert one_line("x" * 50, 10) == "x" * 10 + " [... 40 more characters]"


def test_registry_error_shows_little_of_the_registry_text() -> None:
    """At most three of a registry's errors are shown, each message cut to 200 characters."""
    details = tuple(RegistryErrorDetail(f"C{i}", "m" * 5000) for i in range(10))
    error = RegistryError("GET", "http://r/" + "p" * 5000, 500, details)
    message = error.message
    assert "and 7 more" in message
    assert message.count("m" * REGISTRY_TEXT_SHOWN) == 3
    assert len(message) < 1500
    assert "\n" not in message


def test_cli_message_keeps_the_hint_within_the_line() -> None:
    """A long message is cut so that the line with its hint fits in the line limit."""
    line = cli_message(CredentialError("x" * 5000, hint="log in again"))
    assert len(line) <= LINE_SHOWN + 40
    assert line.endswith("; log in again")


# -- a registry that echoes the Authorization header -------------------------------------------------


@pytest.fixture
def echo_proxy(
    basic_registry: RegistryProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    """A fault proxy on loopback in front of the Basic-auth registry, logged in through the docker
    config; rules are added per test."""
    proxy = FaultProxy(basic_registry.url)
    proxy.start()
    auth = base64.b64encode(f"{basic_registry.username}:{basic_registry.password}".encode())
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps({"auths": {proxy.host: {"auth": auth.decode()}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    yield proxy
    proxy.stop()


def _seed(registry: RegistryProcess, repo: str) -> None:
    push(registry, repo, images.oci_image([images.layer(10, "echo")], seed="echo"))


def _assert_clean(run: CliRun, secrets: list[str], *, one_line_err: bool) -> None:
    assert leaks([run.out, run.err], secrets) == [], run.err
    if one_line_err:
        assert len(run.err.splitlines()) == 1, run.err
    for raw in ("\x1b", "\r", "\x07", "\u202e"):
        assert raw not in run.err


@pytest.mark.parametrize("status", [400, 401, 500])
@pytest.mark.parametrize("echo", ["plain", "ansi", "long", "split"])
def test_registry_echoing_authorization_never_prints_it(
    basic_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    echo_proxy: FaultProxy,
    repo: str,
    cli: Callable[..., CliRun],
    status: int,
    echo: str,
) -> None:
    """A source that echoes the Basic credential in its error: exit 1, one escaped line, no form
    of the secret in stdout, stderr or the --debug log."""
    _seed(basic_registry, repo)
    assert basic_registry.username
    assert basic_registry.password
    secrets = basic_forms(basic_registry.username, basic_registry.password)
    src, dst = f"{echo_proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    echo_proxy.add_rule("GET", "/manifests/", status=status, echo=echo, times=100)
    plain = cli("copy", "--retries", "0", src, dst)
    assert plain.code == 1, plain.err
    _assert_clean(plain, secrets, one_line_err=True)
    assert len(plain.err) < LINE_SHOWN + 100
    debug = cli("copy", "--debug", "--retries", "0", src, dst)
    assert debug.code == 1, debug.err
    assert "GET" in debug.err  # the debug log did run
    _assert_clean(debug, secrets, one_line_err=False)
    as_json = cli("copy", "-o", "json", "--retries", "0", src, dst)
    assert as_json.code == 1
    _assert_clean(as_json, secrets, one_line_err=True)
    assert echo_proxy.hits, "the proxy was not used"
    if echo != "long":  # a 10 kB message is over the error body cap: nothing of it is shown
        assert "request blocked" in plain.err
    assert LONG_ECHO_CHARS > 4096


def test_token_registry_echoing_the_bearer_token_never_prints_it(
    token_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registry that echoes the Bearer token it was sent: the token is not printed."""
    _seed(token_registry, repo)
    with FaultProxy(token_registry.url) as proxy:
        auth = base64.b64encode(f"{token_registry.username}:{token_registry.password}".encode())
        (tmp_path / "config.json").write_text(
            json.dumps({"auths": {proxy.host: {"auth": auth.decode()}}})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        proxy.add_rule("GET", "/manifests/", status=400, echo="ansi", times=100)
        result = cli(
            "copy",
            "--debug",
            "--retries",
            "0",
            f"{proxy.host}/{repo}:1.0",
            f"{dest_registry.host}/{repo}:1.0",
        )
    assert result.code == 1, result.err
    assert "request blocked" in result.err
    assert "Bearer <redacted>" in result.err
    assert "eyJ" not in result.out + result.err  # the start of every JWT
    assert token_registry.password
    assert token_registry.password not in result.err


@pytest.mark.parametrize("echo", ["plain", "ansi", "split"])
def test_python_api_errors_carry_no_secret(
    basic_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    echo_proxy: FaultProxy,
    repo: str,
    echo: str,
) -> None:
    """The exception a Python caller gets (str, repr, traceback, causes) holds no form of the
    secret, and neither do errors copy_batch returns."""
    _seed(basic_registry, repo)
    assert basic_registry.username
    assert basic_registry.password
    secrets = basic_forms(basic_registry.username, basic_registry.password)
    src, dst = f"{echo_proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    echo_proxy.add_rule("GET", "/manifests/", status=400, echo=echo, times=100)
    with promoter.Session(retries=0) as session:
        with pytest.raises(RegistryError) as info:
            session.copy(src, dst)
        (returned,) = session.copy_batch([(src, dst)])
    assert isinstance(returned, PromoterError)
    for error in (info.value, returned):
        shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
        assert leaks(shown, secrets) == []
        assert "request blocked" in str(error)
        assert "\x1b" not in str(error)


def test_api_one_shot_function_errors_are_scrubbed(
    basic_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    echo_proxy: FaultProxy,
    repo: str,
) -> None:
    """promoter.copy (a one-shot function) raises a scrubbed error too."""
    _seed(basic_registry, repo)
    assert basic_registry.username
    assert basic_registry.password
    echo_proxy.add_rule("GET", "/manifests/", status=500, echo="plain", times=100)
    with pytest.raises(RegistryError) as info:
        promoter.copy(
            f"{echo_proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0", retries=0
        )
    secrets = basic_forms(basic_registry.username, basic_registry.password)
    assert "request blocked" in str(info.value)
    assert leaks([str(info.value), repr(info.value)], secrets) == []


def test_session_scrubs_errors_it_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error raised out of a Session operation is scrubbed of the session's secrets in place
    (message, registry details, hint, causes) before the caller sees it."""
    secret = base64.b64encode(b"tester:raised-secret").decode()

    def failing(*_args: object, **_kwargs: object) -> None:
        detail = RegistryErrorDetail("DENIED", f"echo: Basic {secret}")
        error = RegistryError("GET", "http://r/v2/", 403, (detail,), hint=secret)
        raise error from ValueError(f"cause holding {secret}")

    monkeypatch.setattr("promoter.app.session.resolve_digest", failing)
    with promoter.Session() as session:
        session.scrubber.remember(*Credential("tester", "raised-secret").secrets)
        with pytest.raises(RegistryError) as info:
            session.digest("r.example.com/a/b:1")
    shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert "echo: Basic <redacted>" in shown
    assert leaks([shown], basic_forms("tester", "raised-secret")) == []


# -- credential helpers -----------------------------------------------------------------------------


def _helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, script: str) -> None:
    """A docker-credential-test program on PATH, configured for ``host``."""
    credential_helper(tmp_path, monkeypatch, host, "test", script)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")


def test_failing_helper_output_is_not_printed(
    basic_registry: RegistryProcess,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A helper that fails printing a secret: exit 1, one line naming the helper, no output of it."""
    _helper(
        tmp_path,
        monkeypatch,
        basic_registry.host,
        "echo 'token=leaked-helper-secret'; echo 'more leaked-helper-secret' >&2; exit 1\n",
    )
    for args in (("digest",), ("digest", "--debug")):
        result = cli(*args, f"{basic_registry.host}/x/y:1.0")
        assert result.code == 1, result.err
        assert "leaked-helper-secret" not in result.out + result.err
        assert "docker-credential-test get failed" in result.err
    assert len(cli("digest", f"{basic_registry.host}/x/y:1.0").err.splitlines()) == 1


@pytest.mark.parametrize(
    "script",
    [
        "printf '\\377\\376{}'\n",  # not UTF-8
        "echo 'this is not json'\n",
        "echo '[1, 2]'\n",
        'echo \'{"Username": 1, "Secret": "s"}\'\n',
        'echo \'{"Username": "u"}\'\n',
        "python3 -c 'print(\"[\" * 100000)'\n",
    ],
)
def test_helper_with_unreadable_answer_is_bad_input(
    basic_registry: RegistryProcess,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
) -> None:
    """A helper printing non-UTF-8 or garbage JSON: exit 2, one line naming the helper."""
    _helper(tmp_path, monkeypatch, basic_registry.host, script)
    result = cli("digest", f"{basic_registry.host}/x/y:1.0")
    assert result.code == 2, result.err
    assert len(result.err.splitlines()) == 1, result.err
    assert "docker-credential-test" in result.err
    assert "internal error" not in result.err


# -- malformed docker config --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"auths": ["a", "b"]}', "'auths' must be a JSON object"),
        (b'{"auths": "x"}', "'auths' must be a JSON object"),
        (b'{"credHelpers": ["ecr-login"]}', "'credHelpers' must be a JSON object"),
        (b'{"credsStore": 7}', "credential helper must be named"),
        (b'{"credsStore": "../../bin/sh"}', "credential helper must be named"),
        (b'{"auths": {"HOST": "dXNlcjpwdw=="}}', "auths entry for"),
        (b'{"auths": {"HOST": {"auth": 12}}}', "'auth' of the entry"),
        (b'{"auths": {"HOST": {"identitytoken": {"a": 1}}}}', "'identitytoken' of the entry"),
        (b'{"auths": {"HOST": {"username": "u", "password": ["p"]}}}', "'password' of the entry"),
        (b'{"auths": {}, "x": "\xff\xfe"}', "not UTF-8"),
        (b"[" * 200_000, "nested too deeply"),
        (b'{"a": "' + b" " * (CREDENTIALS_FILE_LIMIT + 10) + b'"}', "larger than 1024 KiB"),
        (b"[]", "must hold a JSON object"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_malformed_docker_config_is_bad_input(
    basic_registry: RegistryProcess,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes,
    fragment: str,
) -> None:
    """A docker config of the wrong shape, bytes or size: exit 2, one line naming the file."""
    config = tmp_path / "docker"
    config.mkdir()
    path = config / "config.json"
    path.write_bytes(content.replace(b"HOST", basic_registry.host.encode()))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    result = cli("digest", f"{basic_registry.host}/x/y:1.0")
    assert result.code == 2, result.err
    assert len(result.err.splitlines()) == 1, result.err
    assert str(path) in result.err
    assert fragment in result.err
    assert "internal error" not in result.err
    assert "dXNlcjpwdw" not in result.err


def test_a_redirect_naming_credentials_shows_none_when_its_host_refuses(
    cli: Callable[..., CliRun],
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
) -> None:
    """A blob redirect to ``http://robot:pw@host/...`` whose host refuses connections fails with a
    message naming the host, never the user or password (plain or percent-encoded)."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    push(source_registry, repo, images.oci_image([images.layer(9, repo)], seed=repo))
    location = f"http://robot:s3cretPW@127.0.0.1:{port}/blob?X-Amz-Signature=sig"
    with FaultProxy(source_registry.url) as proxy:
        proxy.add_rule("GET", r"/blobs/", status=307, headers={"Location": location}, times=50)
        run = cli(
            "copy", f"{proxy.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0", "--retries", "0"
        )
    assert run.code == 1
    assert f"127.0.0.1:{port}" in run.err
    for secret in ("s3cretPW", "robot:", "robot%3A"):
        assert secret not in run.out + run.err
