"""promoter.yaml: validation with one-line errors, pipeline order, discovery and path resolution."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from promoter.cli.exit_codes import cli_message, exit_code_for
from promoter.config.load import (
    CONFIG_NAME,
    Environment,
    RegistrySettings,
    find_config,
    load_config,
)
from promoter.errors import ConfigError, InputError

DEV = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"

EXAMPLE = f"""\
environments:
  dev:
    overlay: infra/overlays/dev
    registry: {DEV}
  production:
    overlay: infra/overlays/production
    registry: {PROD}
    promotesFrom: dev
registries:                      # optional, per registry host
  {DEV}:
    endpoint: http://127.0.0.1:5101   # a local test registry
    insecure: false
    caFile: certs/ca.pem
"""


def write_config(folder: Path, text: str) -> Path:
    """Write a promoter.yaml into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_NAME
    path.write_text(textwrap.dedent(text))
    return path


def env(name: str, registry: str | None = None, source: str | None = None) -> str:
    """One environment entry in flow style, for compact tables; each environment has its own
    registry unless told (NAME.r.example.com)."""
    registry = registry or f"{name}.r.example.com"
    extra = f", promotesFrom: {source}" if source else ""
    return f"  {name}: {{overlay: o/{name}, registry: {registry}{extra}}}\n"


def test_example_loads_with_paths_resolved_against_the_file(tmp_path: Path) -> None:
    """The issue's example loads; overlay and caFile resolve against the config's folder."""
    path = write_config(tmp_path / "repo", EXAMPLE)
    config = load_config(path)
    repo = (tmp_path / "repo").resolve()
    assert config.path == path
    assert config.environments == {
        "dev": Environment("dev", repo / "infra/overlays/dev", DEV, None),
        "production": Environment("production", repo / "infra/overlays/production", PROD, "dev"),
    }
    assert config.registries == {
        DEV: RegistrySettings(
            "http://127.0.0.1:5101", insecure=False, ca_file=repo / "certs/ca.pem"
        )
    }
    assert config.registry_settings(PROD) == RegistrySettings()


def test_relative_paths_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the same file from another directory gives the same absolute overlay and caFile."""
    write_config(tmp_path / "repo", EXAMPLE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "repo" / CONFIG_NAME)
    assert config.environment("dev").overlay == (tmp_path / "repo/infra/overlays/dev").resolve()
    assert config.registries[DEV].ca_file == (tmp_path / "repo/certs/ca.pem").resolve()


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    """An absolute overlay or caFile is used as written."""
    overlay = tmp_path / "abs" / "overlay"
    path = write_config(
        tmp_path / "repo",
        f"""\
        environments:
          dev: {{overlay: {overlay}, registry: {DEV}}}
        registries:
          {DEV}: {{caFile: /etc/ssl/ca.pem}}
        """,
    )
    config = load_config(path)
    assert config.environment("dev").overlay == overlay.resolve()
    assert config.registries[DEV].ca_file == Path("/etc/ssl/ca.pem").resolve()


@pytest.mark.parametrize(
    ("environments", "order"),
    [
        (env("dev") + env("staging", source="dev") + env("prod", source="staging"),
         ["dev", "staging", "prod"]),
        (env("prod", source="staging") + env("staging", source="dev") + env("dev"),
         ["dev", "staging", "prod"]),
        (env("prod", source="dev") + env("dev") + env("sandbox"), ["dev", "prod", "sandbox"]),
        (env("b") + env("a"), ["b", "a"]),
        (env("p2", source="s2") + env("p1", source="s1") + env("s1") + env("s2"),
         ["s1", "p1", "s2", "p2"]),
    ],
)  # fmt: skip
def test_environments_come_in_pipeline_order(
    tmp_path: Path, environments: str, order: list[str]
) -> None:
    """Each environment comes after the one it promotes from; file order decides the rest."""
    config = load_config(write_config(tmp_path, "environments:\n" + environments))
    assert list(config.environments) == order


def test_source_of_follows_promotes_from(tmp_path: Path) -> None:
    """source_of gives the environment promoted from, and None at the start of the pipeline."""
    config = load_config(write_config(tmp_path, EXAMPLE))
    assert config.source_of("production") == config.environment("dev")
    assert config.source_of("dev") is None


def test_unknown_environment_is_an_input_error_listing_the_known_ones(tmp_path: Path) -> None:
    """Asking for an environment the file lacks is a one-line input error (exit 2) naming the file."""
    path = write_config(tmp_path, EXAMPLE)
    config = load_config(path)
    with pytest.raises(ConfigError) as caught:
        config.environment("stage")
    assert str(caught.value) == f"unknown environment 'stage' in {path}; known: dev, production"
    assert isinstance(caught.value, InputError)
    assert exit_code_for(caught.value) == 2


def test_environment_for_overlay_matches_resolved_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overlay folder given relative, with '..' or through a symlink finds its environment."""
    repo = tmp_path / "repo"
    config = load_config(write_config(repo, EXAMPLE))
    overlay = repo / "infra/overlays/production"
    overlay.mkdir(parents=True)
    (tmp_path / "link").symlink_to(overlay)
    monkeypatch.chdir(repo / "infra")
    production = config.environment("production")
    assert config.environment_for_overlay(Path("overlays/production")) == production
    assert config.environment_for_overlay(Path("overlays/dev/../production")) == production
    assert config.environment_for_overlay(tmp_path / "link") == production
    assert config.environment_for_overlay(repo / "infra") is None


def test_find_config_walks_up_from_a_subfolder(tmp_path: Path) -> None:
    """promoter.yaml is found in the nearest parent of the starting folder, as git finds .git."""
    path = write_config(tmp_path / "repo", EXAMPLE)
    deep = tmp_path / "repo" / "infra" / "overlays" / "dev"
    deep.mkdir(parents=True)
    assert find_config(deep) == path.resolve()
    assert find_config(tmp_path / "repo") == path.resolve()


def test_find_config_prefers_the_nearest_file(tmp_path: Path) -> None:
    """A promoter.yaml in a nested folder wins over one further up."""
    write_config(tmp_path, EXAMPLE)
    inner = write_config(tmp_path / "team", EXAMPLE)
    (tmp_path / "team" / "sub").mkdir()
    assert find_config(tmp_path / "team" / "sub") == inner.resolve()


def test_find_config_without_a_file_says_what_to_do(tmp_path: Path) -> None:
    """With no promoter.yaml up to the root the error names the start and suggests --config."""
    start = tmp_path / "empty"
    start.mkdir()
    with pytest.raises(ConfigError) as caught:
        find_config(start)
    assert cli_message(caught.value) == (
        f"no promoter.yaml in {start} or its parents; create one or pass --config"
    )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A --config path that does not exist gives one line naming it."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"^cannot read .*nope\.yaml: No such file or directory$"):
        load_config(path)


def test_registries_may_be_empty(tmp_path: Path) -> None:
    """A registries key with every entry commented out means no per-registry settings."""
    text = "environments:\n" + env("dev") + "registries:\n  # r.example.com: {insecure: true}\n"
    assert load_config(write_config(tmp_path, text)).registries == {}


def test_docker_hub_aliases_normalise(tmp_path: Path) -> None:
    """Registry hosts normalise like image references, so index.docker.io is docker.io."""
    text = "environments:\n" + env("dev", registry="index.docker.io")
    assert load_config(write_config(tmp_path, text)).environment("dev").registry == "docker.io"


BASE = "environments:\n" + env("dev")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("environments:\n  dev:\n    registry: r.example.com\n",
         "environments.dev.overlay: field required"),
        ("environments:\n  dev: {overlay: o}\n", "environments.dev.registry: field required"),
        ("environments:\n  dev: {overlay: o, registy: r.example.com}\n",
         "environments.dev: unknown key 'registy'; did you mean 'registry'? (and 1 more problem)"),
        ("environments:\n  dev: {overlay: o, registry: r.example.com, promotes_from: x}\n",
         "environments.dev: unknown key 'promotes_from'; did you mean 'promotesFrom'?"),
        ("environments:\n  dev: {overlay: o, registry: r.example.com, zzz: 1}\n",
         ("environments.dev: unknown key 'zzz' (known: overlay, registry, promotesFrom, "
          "divergedTags, allowImagesFrom, admission, prune, kustomizeBuildOptions, "
          "allowKustomizePlugins)")),
        (BASE + "registries:\n  x.example.com: {ecr: {repository: {imageTagMutabilty: X}}}\n",
         ("registries.x.example.com.ecr.repository: unknown key 'imageTagMutabilty'; "
          "did you mean 'imageTagMutability'?")),
        (BASE + "registries:\n  x.example.com: {insecure: maybe}\n",
         "registries.x.example.com.insecure: expected a boolean, got 'maybe'"),
        (BASE + "registries:\n  x.example.com: {insecure: 'true'}\n",
         "registries.x.example.com.insecure: expected a boolean, got 'true'"),
        (BASE + "registries:\n  x.example.com: {caFile: 7}\n",
         "registries.x.example.com.caFile: expected a string, got 7"),
        (BASE + "registries:\n  x.example.com: {ca_file: a.pem}\n",
         "registries.x.example.com: unknown key 'ca_file'; did you mean 'caFile'?"),
        (BASE + "registries:\n  x.example.com: {endpoint: 'ftp://mirror'}\n",
         ("registries.x.example.com.endpoint: expected an http:// or https:// URL like "
          "http://127.0.0.1:5000, got 'ftp://mirror'")),
        (BASE + "registries:\n  x.example.com: {endpoint: '127.0.0.1:5000'}\n",
         ("registries.x.example.com.endpoint: expected an http:// or https:// URL like "
          "http://127.0.0.1:5000, got '127.0.0.1:5000'")),
        (BASE + "registries:\n  x.example.com: {endpoint: 'http://u:p@mirror'}\n",
         ("registries.x.example.com.endpoint: remove the user name/password from the URL "
          "('http://***@mirror'); store credentials with promoter login or docker login instead")),
        (BASE + "registries:\n  x.example.com: {endpoint: 'http://mirror:65536'}\n",
         ("registries.x.example.com.endpoint: invalid port in 'http://mirror:65536': "
          "use a port from 1 to 65535")),
        (BASE + "registries:\n  'https://x.example.com': {}\n",
         ("registries: 'https://x.example.com' is not a registry host "
          "(expected host[:port], without scheme or path)")),
        (BASE + "registries:\n  x.example.com: null\n",
         "registries.x.example.com: expected a mapping, got nothing (null)"),
        (BASE + "registries: [a]\n", "registries: expected a mapping, got a list"),
        ("environments:\n" + env("dev") + env("production", source="stage"),
         "environments.production.promotesFrom: unknown environment 'stage' (known: dev, production)"),
        ("environments:\n" + env("a", source="b") + env("b", source="a"),
         "environments.a.promotesFrom: promotesFrom forms a cycle: a -> b -> a"),
        ("environments:\n" + env("a") + env("b", source="c") + env("c", source="b"),
         "environments.b.promotesFrom: promotesFrom forms a cycle: b -> c -> b"),
        ("environments:\n" + env("a", source="a"),
         "environments.a.promotesFrom: promotesFrom forms a cycle: a -> a"),
        ("environments:\n" + env("dev", registry="https://r.example.com"),
         ("environments.dev.registry: 'https://r.example.com' is not a registry host "
          "(expected host[:port], without scheme or path)")),
        ("environments:\n" + env("dev", registry="r.example.com/team"),
         ("environments.dev.registry: 'r.example.com/team' is not a registry host "
          "(expected host[:port], without scheme or path)")),
        ("environments:\n" + env("dev", registry="registry"),
         ("environments.dev.registry: 'registry' is not a registry host "
          "(expected host[:port], without scheme or path)")),
        ("environments:\n" + env("dev", registry="'r.example.com:port'"),
         ("environments.dev.registry: 'r.example.com:port' is not a registry host "
          "(expected host[:port], without scheme or path)")),
        ("environments:\n  dev: {overlay: o, registry: 5000}\n",
         "environments.dev.registry: expected a string, got 5000"),
        ("environments:\n  dev: {overlay: '', registry: r.example.com}\n",
         "environments.dev.overlay: must not be empty"),
        ("environments:\n  dev:\n", "environments.dev: expected a mapping, got nothing (null)"),
        ("environments:\n" + env("my env"),
         "environments: invalid environment name 'my env' (use letters, digits, '.', '_' and '-')"),
        ("environments: {}\n", "environments: at least one environment is required"),
        ("environments:\n", "environments: at least one environment is required"),
        ("registries: {}\n", "environments: field required"),
        ("environments:\n" + env("dev") + "registry: r.example.com\n",
         "unknown key 'registry'; did you mean 'registries'?"),
        ("- dev\n", "expected a mapping at the top, got a list"),
        ("", "the file is empty; it needs an 'environments' mapping"),
        ("environments:\n" + env("dev") + env("dev"),
         "invalid YAML at line 3, column 3: duplicate key 'dev'"),
    ],
)  # fmt: skip
def test_bad_config_gives_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    """Every mistake is one line: the file, the key path and what is wrong (an unknown key with the
    nearest known one at that place, or the known ones); exit code 2."""
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {message}"
    assert "\n" not in str(caught.value)
    assert exit_code_for(caught.value) == 2


SECRET = "S3cretPassw0rd"
ROBOT = f"robot:{SECRET}@{PROD}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + f"registries:\n  {ROBOT}: {{endpont: x}}\n",
         f"registries.***@{PROD}: unknown key 'endpont'; did you mean 'endpoint'?"),
        (BASE + f"registries:\n  {ROBOT}: {{insecure: maybe}}\n",
         f"registries.***@{PROD}.insecure: expected a boolean, got 'maybe'"),
        (BASE + f"registries:\n  {ROBOT}:\n",
         f"registries.***@{PROD}: expected a mapping, got nothing (null)"),
        (BASE + f"registries:\n  {ROBOT}: {{ecr: {{roleArn: 7}}}}\n",
         f"registries.***@{PROD}.ecr.roleArn: expected a string, got 7"),
        (BASE + f"registries:\n  {PROD}: {{endpoint: ['{ROBOT}']}}\n",
         f"registries.{PROD}.endpoint: expected a string, got a list"),
        (BASE + f"registries:\n  x.example.com: {{insecure: 'https://{ROBOT}/'}}\n",
         ("registries.x.example.com.insecure: expected a boolean, got 'https://***@"
         f"{PROD}/'")),
        (BASE + f"registries:\n  x.example.com: {{endpoint: 'http://127.0.0.1:5000/?token={SECRET}'}}\n",
         ("registries.x.example.com.endpoint: an endpoint takes no query string or fragment, "
          "got 'http://127.0.0.1:5000/?...'; give the registry's base URL")),
        (BASE + f"registries:\n  x.example.com: {{endpoint: 'http://127.0.0.1:99999/?token={SECRET}'}}\n",
         ("registries.x.example.com.endpoint: invalid port in 'http://127.0.0.1:99999/?...': "
          "use a port from 1 to 65535")),
        (BASE + f"registries:\n  x.example.com: {{endpoint: 'ftp://mirror/#{SECRET}'}}\n",
         ("registries.x.example.com.endpoint: an endpoint takes no query string or fragment, "
          "got 'ftp://mirror/#...'; give the registry's base URL")),
        (BASE + f"registries:\n  x.example.com: {{insecure: 'http://h/?token={SECRET}'}}\n",
         "registries.x.example.com.insecure: expected a boolean, got 'http://h/?...'"),
        (BASE + f"registries:\n  'http://h/?token={SECRET}': {{}}\n",
         ("registries: 'http://h/?...' is not a registry host "
          "(expected host[:port], without scheme or path)")),
        ("environments:\n" + f"  '{ROBOT}': {{overlay: o, registry: r.example.com}}\n",
         (f"environments: invalid environment name '***@{PROD}' "
          "(use letters, digits, '.', '_' and '-')")),
        ("environments:\n" + env("dev") + f"  prod: {{overlay: o, registry: p.example.com, promotesFrom: '{ROBOT}'}}\n",
         f"environments.prod.promotesFrom: unknown environment '***@{PROD}' (known: dev, prod)"),
        ("environments:\n" + env("dev") + f"  prod: {{overlay: o, registry: p.example.com, allowImagesFrom: ['{ROBOT}']}}\n",
         (f"environments.prod.allowImagesFrom: '***@{PROD}' is not another environment "
          "(known: dev, prod; '*' allows all)")),
        (BASE + f"registries:\n  {PROD}: {{ecr: {{apiEndpoint: 'https://api.example/?X-Amz-Security-Token={SECRET}'}}}}\n",
         (f"registries.{PROD}.ecr.apiEndpoint: an endpoint takes no query string or fragment, "
          "got 'https://api.example/?...'; give the registry's base URL")),
        (BASE + f"registries:\n  {ROBOT}: {{}}\n  {ROBOT}: {{}}\n",
         f"invalid YAML at line 5, column 3: duplicate key '***@{PROD}'"),
    ],
)  # fmt: skip
def test_config_errors_never_show_credentials_or_url_queries(
    tmp_path: Path, text: str, message: str
) -> None:
    """Whatever is wrong with promoter.yaml, a user:password@ typed into a key or a value is shown
    as ***@ and a URL loses its query string and fragment, in every message (README "Credentials
    are never typed into references")."""
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    shown = cli_message(caught.value)
    assert SECRET not in shown
    assert SECRET not in repr(caught.value.__cause__) + repr(caught.value.__context__)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("environments:\n  dev: {overlay: o\n", "line 3, column 1"),
        ("environments:\n  dev:\n    overlay: o\n   registry: r\n", "line 4, column 4"),
        (
            "environments:\n  dev: {overlay: o, registry: r.example.com}\n\tbad: 1\n",
            "line 3, column 1",
        ),
    ],
)
def test_invalid_yaml_names_the_line(tmp_path: Path, text: str, where: str) -> None:
    """Invalid YAML is one line with the file, the line and column, and the parser's words."""
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    # The parser's own wording differs between libyaml and pure-Python PyYAML; the place does not.
    assert str(caught.value).startswith(f"{path}: invalid YAML at {where}: ")
    assert "\n" not in str(caught.value)


def test_an_environment_cannot_promote_from_its_own_registry(tmp_path: Path) -> None:
    """production with dev's registry promotes nothing, ever: refused at load, naming both."""
    shared = "r.example.com"
    text = "environments:\n" + env("dev", shared) + env("production", shared, source="dev")
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: environments.production.registry: the same registry as dev, which it promotes "
        "from; promotion copies the same repository path and tag, so nothing would ever move: give "
        "production its own registry"
    )
