"""docker-compose.yml, the Dockerfiles and the files they mount agree with the code and
with each other: the Compose Specification schema, a healthcheck and memory/CPU bounds on
every service inside the origin box (seed 003: 2.9 GB RAM, 3 cores), commands that name
modules and files that exist, KADR_* names the settings classes read, and the ports that
nginx and Prometheus use. Nothing is run: there is no Docker engine in the test box.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests/fixtures/compose_spec/compose-spec.json"  # see its README for the source
NGINX_CONF = ROOT / "nginx.conf"
PROMETHEUS_YML = ROOT / "infra/prometheus/prometheus.yml"
GRAFANA = ROOT / "infra/grafana"

BOX_RAM_BYTES = int(2.9e9)
BOX_CPUS = 3.0
# Processes that are not kadr's own and may take non-KADR_ variables.
# Read by prometheus_client, gunicorn and glibc malloc, not by a settings class.
NON_KADR_ENV_OK = {
    "PROMETHEUS_MULTIPROC_DIR",
    "GUNICORN_CMD_ARGS",
    "MALLOC_ARENA_MAX",
    "FORWARDED_ALLOW_IPS",
    # library caches, on the writable /tmp of a read-only root
    "XDG_CACHE_HOME",
    "MPLCONFIGDIR",
    "NUMBA_CACHE_DIR",
}


# ---- loading ------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def _interpolate(value):
    """Compose's variable substitution with an empty environment: the file's defaults."""
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        if op and op.endswith("?"):
            raise AssertionError(f"${{{name}}} is required ({arg}): the file must work with no .env")
        return arg if op and op.endswith("-") else ""

    return _VAR.sub(sub, value)


@cache
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@cache
def compose() -> dict:
    return _interpolate(raw_compose())


def services() -> dict[str, dict]:
    return compose()["services"]


def default_services() -> dict[str, dict]:
    return {n: s for n, s in services().items() if not s.get("profiles")}


def kadr_services() -> dict[str, dict]:
    """Services running kadr's own images (built here)."""
    return {n: s for n, s in services().items() if "build" in s}


def env(svc: dict) -> dict[str, str]:
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(item.split("=", 1) if "=" in item else (item, "") for item in e)
    return {k: "" if v is None else str(v) for k, v in e.items()}


def command(svc: dict) -> list[str]:
    c = svc.get("command") or []
    return shlex.split(c) if isinstance(c, str) else [str(x) for x in c]


_UNITS = {"b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}


def mem_bytes(value) -> int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", str(value).strip())
    assert m and m.group(2).lower() in _UNITS | {"": 1}, f"unreadable memory size {value!r}"
    return int(float(m.group(1)) * _UNITS.get(m.group(2).lower(), 1))


def resources(svc: dict) -> dict:
    return ((svc.get("deploy") or {}).get("resources")) or {}


def option(cmd: list[str], *flags: str) -> str | None:
    """The value of ``-A x`` / ``--app x`` / ``--app=x`` in an argv."""
    for i, arg in enumerate(cmd):
        for f in flags:
            if arg == f and i + 1 < len(cmd):
                return cmd[i + 1]
            if f.startswith("--") and arg.startswith(f + "="):
                return arg.split("=", 1)[1]
    return None


def celery_queue(svc: dict) -> str | None:
    cmd = command(svc)
    return option(cmd, "-Q", "--queues") if cmd[:1] == ["celery"] else None


def host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def bind_mounts(svc: dict) -> list[dict]:
    """Bind mounts as {source, target, create_host_path}."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if parts[0].startswith((".", "/")):
                out.append({"source": parts[0], "target": parts[1], "create_host_path": True, "short": True})
        elif v.get("type") == "bind":
            out.append(
                {
                    "source": v["source"],
                    "target": v["target"],
                    "create_host_path": (v.get("bind") or {}).get("create_host_path", False),
                    "short": False,
                }
            )
    return out


def volume_mounts(svc: dict) -> dict[str, str]:
    """Named volume mounts: target -> volume name."""
    out = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if not parts[0].startswith((".", "/")) and len(parts) > 1:
                out[parts[1]] = parts[0]
        elif v.get("type", "volume") == "volume" and v.get("source"):
            out[v["target"]] = v["source"]
    return out


def settings_class(svc: dict) -> type[BaseSettings]:
    """The settings class of the process a kadr service runs, found from its command."""
    cmd = command(svc)
    if cmd[:1] == ["gunicorn"]:
        package = cmd[-1].split(":")[0].rsplit(".", 1)[0]  # gateway.wsgi:app -> gateway
    elif cmd[:1] == ["celery"]:
        package = option(cmd, "-A", "--app").rsplit(".", 1)[0]  # services.enhance.tasks -> services.enhance
    elif cmd[:2] == ["python", "-m"]:
        package = cmd[2].rsplit(".", 1)[0]  # services.ops.exporter -> services.ops
    else:
        raise AssertionError(f"no rule for the settings of command {cmd}")
    mod = importlib.import_module(package + ".settings")
    own = [
        c
        for c in vars(mod).values()
        if isinstance(c, type) and issubclass(c, BaseSettings) and c.__module__ == mod.__name__
    ]
    assert len(own) == 1, f"{mod.__name__} should define one settings class, found {own}"
    return own[0]


def listen_ports(name: str, svc: dict) -> set[int]:
    """Ports the service's process listens on, as the compose file configures them."""
    e, cmd, ports = env(svc), command(svc), set()
    if "GUNICORN_BIND" in e:
        ports.add(host_port(e["GUNICORN_BIND"])[1])
    if e.get("KADR_METRICS_PORT", "0") != "0":
        ports.add(int(e["KADR_METRICS_PORT"]))
    if cmd[:2] == ["python", "-m"] and cmd[2].startswith("services.ops."):
        fields = settings_class(svc).model_fields
        key = {
            "services.ops.exporter": "exporter_port",
            "services.ops.autoscaler": "autoscaler_metrics_port",
            "services.ops.janitor": "janitor_port",
        }[cmd[2]]
        ports.add(int(e.get("KADR_" + key.upper(), fields[key].default)))
    if name == "nginx":
        ports.add(nginx_listen_port())
    addr = option(cmd, "--web.listen-address")
    if addr is not None:
        ports.add(host_port(addr)[1])
    if "grafana" in str(svc.get("image", "")):
        ports.add(int(e.get("GF_SERVER_HTTP_PORT", 3000)))
    return ports


def metrics_bind_host(svc: dict) -> str:
    e, cmd = env(svc), command(svc)
    if "GUNICORN_BIND" in e:
        return host_port(e["GUNICORN_BIND"])[0]
    if cmd[:2] == ["python", "-m"] and cmd[2].startswith("services.ops."):
        return e.get("KADR_EXPORTER_HOST", settings_class(svc).model_fields["exporter_host"].default)
    return e.get("KADR_METRICS_HOST", "127.0.0.1")


@cache
def nginx_text() -> str:
    return NGINX_CONF.read_text()


def nginx_listen_port() -> int:
    m = re.search(r"^\s*listen\s+(?:[\d.]+:)?(\d+)\s*;", nginx_text(), re.MULTILINE)
    assert m, "no listen directive in nginx.conf"
    return int(m.group(1))


def published_targets(svc: dict) -> set[int]:
    out = set()
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.add(int(p["target"]))
        else:
            out.add(int(str(p).rsplit(":", 1)[-1].split("/")[0]))
    return out


# ---- (a) schema ---------------------------------------------------------------------


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    assert schema.get("title") == "Compose Specification"
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_errors(doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator().iter_errors(doc)]


def test_compose_file_follows_the_compose_specification():
    assert not _schema_errors(compose()), "\n".join(_schema_errors(compose()))


def test_the_schema_check_refuses_a_misspelt_key():
    # The vendored schema is strict; a typo here must not pass unnoticed.
    doc = copy.deepcopy(compose())
    doc["services"]["gateway"]["healthchek"] = doc["services"]["gateway"].pop("healthcheck")
    assert any("healthchek" in e for e in _schema_errors(doc))


# ---- (b) health, restart, resources ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(raw_compose()["services"]))
def test_service_is_health_checked_restarted_and_bounded(name):
    svc = services()[name]
    hc = svc.get("healthcheck") or {}
    assert hc.get("test") and not hc.get("disable") and hc["test"][0] in ("CMD", "CMD-SHELL"), (
        f"{name}: needs a healthcheck"
    )
    assert hc.get("interval") and hc.get("retries"), f"{name}: healthcheck without interval/retries"
    assert svc.get("restart") == "unless-stopped", f"{name}: restart must be unless-stopped"
    res = resources(svc)
    lim, rsv = res.get("limits") or {}, res.get("reservations") or {}
    for key in ("memory", "cpus"):
        assert key in lim and key in rsv, f"{name}: deploy.resources needs limits and reservations of {key}"
    assert 0 < mem_bytes(rsv["memory"]) <= mem_bytes(lim["memory"]), f"{name}: memory reservation above limit"
    assert 0 < float(rsv["cpus"]) <= float(lim["cpus"]) <= BOX_CPUS, (
        f"{name}: cpus must be 0 < reservation <= limit <= {BOX_CPUS}"
    )


def test_default_services_fit_the_origin_box():
    default = default_services()
    mem = {n: mem_bytes(resources(s)["limits"]["memory"]) for n, s in default.items()}
    total = sum(mem.values())
    assert total <= BOX_RAM_BYTES, (
        f"memory limits of the default services add up to {total / 1e9:.2f} GB > 2.9 GB: {mem}"
    )
    # CPU is compressible (a limit caps a burst), so the reservations must fit, not the limits.
    cpus = sum(float(resources(s)["reservations"]["cpus"]) for s in default.values())
    assert cpus <= BOX_CPUS, f"CPU reservations of the default services add up to {cpus} > {BOX_CPUS}"
    # The origin ran one API worker on this box.
    assert env(services()["gateway"])["GUNICORN_WORKERS"] == "1"


def test_readiness_asks_only_for_queues_that_the_default_stack_consumes():
    from gateway.settings import GatewaySettings
    from services.contracts.tasks import QUEUES

    required = env(services()["gateway"]).get("KADR_REQUIRED_QUEUES")
    required = json.loads(required) if required else GatewaySettings.model_fields["required_queues"].default
    consumed_default = {celery_queue(s) for s in default_services().values()} - {None}
    assert set(required) <= consumed_default, (
        f"/readyz would wait forever for {set(required) - consumed_default}: no default service consumes it"
    )
    consumed_any = {celery_queue(s) for s in services().values()} - {None}
    assert set(QUEUES) <= consumed_any, f"no service (in any profile) consumes {set(QUEUES) - consumed_any}"


def test_depends_on_names_services_of_the_same_or_default_profile():
    for name, svc in services().items():
        deps = svc.get("depends_on") or {}
        for dep, cond in deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps):
            assert dep in services(), f"{name} depends on unknown service {dep}"
            theirs, mine = set(services()[dep].get("profiles") or []), set(svc.get("profiles") or [])
            assert not theirs or theirs & mine, f"{name} would not start without profile {theirs} of {dep}"
            if cond.get("condition") == "service_healthy":
                assert services()[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no check"


# ---- (c) commands, files, images ----------------------------------------------------------


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("name", sorted(n for n, s in raw_compose()["services"].items() if "build" in s))
def test_command_names_modules_and_files_that_exist(name):
    from services.contracts.tasks import QUEUES

    svc = services()[name]
    cmd = command(svc)
    assert cmd, f"{name}: a kadr service states its command"
    if cmd[0] == "gunicorn":
        conf = option(cmd, "-c", "--config")
        assert conf and (ROOT / conf).is_file(), f"{name}: gunicorn config {conf} not found"
        module, _, attr = cmd[-1].partition(":")
        assert attr and _module_exists(module), f"{name}: WSGI module {module} not found"
    elif cmd[0] == "celery":
        app = option(cmd, "-A", "--app")
        assert app and _module_exists(app), f"{name}: celery app module {app} not found"
        assert cmd[cmd.index(app) + 1] == "worker"
        queue = option(cmd, "-Q", "--queues")
        assert queue in QUEUES, f"{name}: queue {queue} is not one of {QUEUES}"
        assert app == f"services.{queue}.tasks", f"{name}: queue {queue} is consumed by {app}"
        assert (option(cmd, "-n", "--hostname") or "").startswith(queue + "@"), f"{name}: node name"
        pool = option(cmd, "-P", "--pool")
        # The camera's frame rings live in the worker process: its tasks must share it.
        assert pool == ("threads" if queue == "camera" else "prefork"), f"{name}: --pool {pool}"
    elif cmd[:2] == ["python", "-m"]:
        assert _module_exists(cmd[2]), f"{name}: module {cmd[2]} not found"
        assert Path(importlib.util.find_spec(cmd[2]).origin).read_text().count('__name__ == "__main__"'), (
            f"{name}: {cmd[2]} has no __main__ block"
        )
    else:
        raise AssertionError(f"{name}: no check for command {cmd}; add one here")


def _dockerfiles() -> dict[Path, dict]:
    out = {}
    for name, svc in kadr_services().items():
        b = svc["build"]
        b = {"context": b} if isinstance(b, str) else b
        ctx = (ROOT / b.get("context", ".")).resolve()
        entry = out.setdefault(ctx / b.get("dockerfile", "Dockerfile"), {"context": ctx, "services": []})
        entry["services"].append(name)
    return out


def _dockerignore(ctx: Path) -> list[str]:
    f = ctx / ".dockerignore"
    lines = f.read_text().splitlines() if f.exists() else []
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = Path(rel).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pat in patterns:
        if pat.startswith("!"):
            continue  # re-inclusions are not used here
        if pat.startswith("**/"):
            if any(fnmatch.fnmatch(p, pat[3:]) for p in parts):
                return True
        elif any(fnmatch.fnmatch(p, pat) for p in prefixes):
            return True
    return False


def test_dockerfiles_build_from_what_the_context_sends():
    files = _dockerfiles()
    assert files
    for path, info in files.items():
        assert path.is_file(), f"{info['services']}: Dockerfile {path} not found"
        text = path.read_text()
        stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
        assert len(stages) >= 2, f"{path.name}: multi-stage build expected"
        # The base is a build argument (a registry's python:3.11-slim by default, a locally
        # bootstrapped Debian where none answers); the host's wheels and CA come in as
        # optional contexts, empty stages unless supplied.
        assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text[: text.index("\nFROM ")], re.MULTILINE), (
            f"{path.name}: BASE_IMAGE must be a build argument defaulting to python:3.11-slim"
        )
        assert set(stages) == {"scratch", "${BASE_IMAGE}"} and stages[-1] == "${BASE_IMAGE}", (
            f"{path.name}: stages from {stages}"
        )
        assert "/opt/" not in text.replace("/opt/venv", ""), f"{path.name}: a host path baked in"
        final = text[text.rindex("\nFROM ") :]
        assert re.search(r"^COPY --from=\w+ /opt/venv /opt/venv", final, re.MULTILINE), f"{path.name}: venv not copied"
        user = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)
        assert user and user[-1] not in ("root", "0"), f"{path.name}: final stage runs as root"
        ignore = _dockerignore(info["context"])
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.MULTILINE):
            srcs = [a for a in line.split() if not a.startswith("--")][:-1]
            for src in srcs:
                assert (info["context"] / src).exists(), f"{path.name}: COPY {src}: not in the context"
                assert not _ignored(src, ignore), f"{path.name}: COPY {src}: excluded by .dockerignore"


def _installs_torch(text: str) -> bool:
    return bool(re.search(r"pip install[^\n]*(?:\\\n[^\n]*)*torch==", text))


def test_worker_image_installs_what_install_sh_pins_and_the_gateway_image_no_ml():
    files = {p: p.read_text() for p in _dockerfiles()}
    install = (ROOT / "infra/local/install.sh").read_text()
    pins = re.findall(r'"([A-Za-z][\w.-]*(?:==|<|>=)[\w.<>=,]+)"', install)
    assert {"torch==2.14.1", "basicsr==1.4.2", "opencv-python-headless<5"} <= set(pins)
    ml = [t for t in files.values() if _installs_torch(t)]
    assert len(ml) == 1, "exactly one image carries the ML stack"
    for pin in pins:
        assert f'"{pin}"' in ml[0], f"the worker image does not pin {pin} as install.sh does"
    assert "--no-deps --no-build-isolation" in ml[0]
    for path, info in _dockerfiles().items():
        if "gateway" in info["services"]:
            extras = re.findall(r'pip install[^\n]*"\.\[([\w,]+)\]"', files[path])
            assert extras and not set(extras[0].split(",")) & {"enhance", "segment", "camera"}, (
                "the gateway image must not install the ML extras"
            )
            assert not _installs_torch(files[path]), "the gateway image must not install torch"


@pytest.mark.parametrize("name", sorted(raw_compose()["services"]))
def test_bind_mounts_exist(name):
    for m in bind_mounts(services()[name]):
        src = (ROOT / m["source"]).resolve()
        # A missing short-syntax source becomes an empty directory: nginx.conf would too.
        if not (m["create_host_path"] and not m["short"]):
            assert src.exists(), f"{name}: bind mount source {m['source']} does not exist"


# ---- (d) environment ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, s in raw_compose()["services"].items() if "build" in s))
def test_kadr_env_names_are_settings_fields_and_values_parse(name, monkeypatch, tmp_path):
    svc = services()[name]
    cls = settings_class(svc)
    assert cls.model_config.get("env_prefix") == "KADR_"
    fields = {"KADR_" + f.upper() for f in cls.model_fields}
    e = env(svc)
    unknown = sorted(k for k in e if k.startswith("KADR_") and k not in fields)
    # pydantic-settings ignores unknown KADR_ variables: a typo would be silently dropped.
    assert not unknown, f"{name}: {cls.__name__} has no field for {unknown}"
    gunicorn_conf = (ROOT / "gateway/gunicorn.conf.py").read_text()
    for k in e:
        if k.startswith("KADR_") or k in NON_KADR_ENV_OK:
            continue
        assert k.startswith("GUNICORN_") and f'"{k}"' in gunicorn_conf, f"{name}: {k} is read by nothing in the service"
    for k in list(os.environ):
        if k.startswith("KADR_"):
            monkeypatch.delenv(k)
    for k, v in e.items():
        if k.startswith("KADR_"):
            monkeypatch.setenv(k, v)
    if "KADR_REDIS_PASSWORD_FILE" in e:
        # The secret compose mounts there: stood in for by a file of the same kind.
        assert e["KADR_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
        assert "redis_password" in (svc.get("secrets") or []), f"{name} reads a secret it does not mount"
        secret = tmp_path / "redis_password"
        secret.write_text("s3cret\n")
        monkeypatch.setenv("KADR_REDIS_PASSWORD_FILE", str(secret))
    parsed = cls()  # the values parse (JSON lists, ints, ...)
    if "KADR_REDIS_PASSWORD_FILE" in e:
        assert urlparse(parsed.redis_url).password == "s3cret"


def test_every_kadr_process_talks_to_the_compose_redis():
    redis_port = int(option(command(services()["redis"]), "--port") or 6379)
    for name, svc in kadr_services().items():
        e = env(svc)
        broker = urlparse(e.get("KADR_REDIS_URL", ""))
        assert (broker.hostname, broker.port or 6379) == ("redis", redis_port), f"{name}: {broker.geturl()!r}"
        if "cache_redis_url" not in settings_class(svc).model_fields:
            continue  # only pool processes (enhance, segment) hold the result cache
        cache_ = urlparse(e.get("KADR_CACHE_REDIS_URL", ""))
        assert (cache_.hostname, cache_.port or 6379) == ("redis", redis_port), f"{name}: {cache_.geturl()!r}"
        # The result cache expires keys; the broker runs noeviction: separate databases.
        assert broker.path != cache_.path, f"{name}: cache and broker share a Redis database"


def redis_argv(svc) -> list[str]:
    """redis-server's arguments: the command, or what its shell wrapper execs."""
    cmd = command(svc)
    if cmd[:2] == ["sh", "-c"]:
        return shlex.split(cmd[2].split("exec ", 1)[1])
    return cmd


def test_redis_is_a_durable_broker_inside_its_limit():
    svc = services()["redis"]
    cmd = redis_argv(svc)
    assert cmd[0] == "redis-server"
    conf_path = cmd[1]
    mounts = {m["target"]: m["source"] for m in bind_mounts(svc)}
    assert conf_path in mounts, f"redis config {conf_path} is not mounted"
    conf = {}
    for line in (ROOT / mounts[conf_path]).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            conf[key.lower()] = value.strip().strip('"')
    args = cmd[2:]
    for i, a in enumerate(args):
        if a.startswith("--"):
            conf[a[2:].lower()] = args[i + 1] if i + 1 < len(args) else ""
    assert conf.get("appendonly") == "yes" and conf.get("appendfsync") == "everysec"
    assert conf.get("maxmemory-policy") == "noeviction"
    maxmemory = mem_bytes(conf.get("maxmemory", "0"))
    limit = mem_bytes(resources(svc)["limits"]["memory"])
    # Room above the data set for the AOF rewrite's copy-on-write pages and client buffers.
    assert 0 < maxmemory and maxmemory * 1.5 <= limit, f"maxmemory {maxmemory} vs container limit {limit}"
    assert "/data" in volume_mounts(svc) and conf.get("dir") == "/data", "AOF must live on the volume"


def test_every_container_is_hardened():
    """No new privileges, no capabilities (nginx: the three its master needs), kadr's own
    images on a read-only root with a writable /tmp, Redis as its image's user."""
    for name, svc in services().items():
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert svc.get("cap_drop") == ["ALL"], name
        assert set(svc.get("cap_add", [])) <= ({"CHOWN", "SETUID", "SETGID"} if name == "nginx" else set()), name
    for name, svc in kadr_services().items():
        assert svc.get("read_only") is True, name
        assert any(t.startswith("/tmp:") for t in svc.get("tmpfs", [])), f"{name}: nowhere to write"
    assert services()["redis"]["user"] == "redis"


def test_redis_wants_the_secret_password_and_only_kadr_processes_get_it():
    svc = services()["redis"]
    script = command(svc)[2]
    assert "requirepass" in script and "/run/secrets/redis_password" in script
    argv = redis_argv(svc)
    assert argv[argv.index("--include") + 1] == "/tmp/auth.conf"
    assert argv[argv.index("--protected-mode") + 1] == "yes"
    assert "redis_password" in svc["secrets"] and "REDISCLI_AUTH" in " ".join(svc["healthcheck"]["test"])
    top = compose()["secrets"]["redis_password"]
    assert top["file"] == "./var/secrets/redis_password"
    for name, other in services().items():
        if name in ("nginx", "prometheus", "grafana"):
            assert "redis_password" not in (other.get("secrets") or []), name
        # the janitor signs the cameras' outbound webhooks with their secrets
        if name not in ("gateway", "camera", "janitor"):
            assert "KADR_CAMERAS" not in env(other), f"{name} holds the cameras' secrets without using them"


def test_shared_volumes_and_metrics_dirs():
    declared = set((compose().get("volumes") or {}).keys())
    uid_of = {
        n: re.search(r"--uid (\d+)", p.read_text()).group(1)
        for p, info in _dockerfiles().items()
        for n in info["services"]
    }
    for name, svc in kadr_services().items():
        e, vols, uid = env(svc), volume_mounts(svc), uid_of[name]
        assert set(vols.values()) <= declared, f"{name}: undeclared volume"
        for var, volume in (("KADR_STORAGE_DIR", "blobs"), ("KADR_MODELS_DIR", "models")):
            if var in e:
                assert vols.get(e[var]) == volume, f"{name}: {var}={e[var]} is not the shared {volume!r} volume"
        if "PROMETHEUS_MULTIPROC_DIR" in e:
            tmpfs = svc.get("tmpfs") or []
            tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
            mine = [t for t in tmpfs if t.split(":")[0] == e["PROMETHEUS_MULTIPROC_DIR"]]
            assert mine, f"{name}: PROMETHEUS_MULTIPROC_DIR must be a per-container tmpfs (empty at start)"
            opts = dict(o.partition("=")[::2] for o in mine[0].partition(":")[2].split(",") if o)
            assert opts.get("uid") == uid, f"{name}: the metrics tmpfs must belong to the image's user {uid}"
    for name in ("gateway", "enhance", "camera"):
        assert "KADR_STORAGE_DIR" in env(services()[name]), f"{name} needs the blob store"


def test_autoscaler_cannot_grow_a_pool_past_its_container_limit():
    from services.ops.settings import OpsSettings, QueueLimits

    autoscalers = [s for s in kadr_services().values() if command(s)[-1:] == ["services.ops.autoscaler"]]
    assert len(autoscalers) == 1
    raw = env(autoscalers[0]).get("KADR_AUTOSCALE")
    limits = (
        TypeAdapter(dict[str, QueueLimits]).validate_json(raw) if raw else OpsSettings.model_fields["autoscale"].default
    )
    by_queue = {celery_queue(s): (n, s) for n, s in services().items() if celery_queue(s)}
    for queue, ql in limits.items():
        assert queue in by_queue, f"autoscaler manages {queue}, which no service consumes"
        name, svc = by_queue[queue]
        mem = mem_bytes(resources(svc)["limits"]["memory"])
        assert ql.max * ql.footprint_bytes <= mem, (
            f"{name}: the autoscaler may grow to {ql.max} x {ql.footprint_bytes >> 20} MiB, "
            f"past the container limit of {mem >> 20} MiB (the kernel would kill pool processes)"
        )
        conc = int(option(command(svc), "-c", "--concurrency") or 1)
        assert ql.min <= conc <= ql.max, f"{name}: starts with {conc} processes, outside [{ql.min}, {ql.max}]"


# ---- (e) ports -----------------------------------------------------------------------------


def test_nginx_upstream_and_listen_port_match_compose():
    m = re.search(r"upstream\s+\w+\s*\{[^}]*?server\s+([\w.-]+):(\d+)", nginx_text())
    assert m, "no upstream server in nginx.conf"
    host, port = m.group(1), int(m.group(2))
    assert host in services(), f"nginx.conf proxies to {host}, which is not a compose service"
    gw = services()[host]
    assert command(gw)[:1] == ["gunicorn"], f"nginx.conf proxies to {host}, which does not run gunicorn"
    bind_host, bind_port = host_port(env(gw)["GUNICORN_BIND"])
    assert (bind_host, bind_port) == ("0.0.0.0", port), f"gunicorn binds {bind_host}:{bind_port}, nginx expects :{port}"
    ngx = services()["nginx"]
    assert nginx_listen_port() in published_targets(ngx), (
        f"nginx listens on {nginx_listen_port()}; compose publishes {published_targets(ngx)}"
    )
    mounts = {m["target"]: m["source"] for m in bind_mounts(ngx)}
    assert (ROOT / mounts.get("/etc/nginx/nginx.conf", "missing")).resolve() == NGINX_CONF
    root = re.search(r"^\s*root\s+(\S+);", nginx_text(), re.MULTILINE).group(1)
    assert root in mounts, f"nginx serves {root}, which is not mounted"


@pytest.mark.parametrize("name", sorted(raw_compose()["services"]))
def test_healthcheck_probes_a_port_the_service_listens_on(name):
    svc = services()[name]
    # A shell line: podman-compose 1.0 turns exec-form lists into a command that always fails.
    assert svc["healthcheck"]["test"][0] == "CMD-SHELL" and len(svc["healthcheck"]["test"]) == 2, name
    probe = " ".join(svc["healthcheck"]["test"])
    for port in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", probe):
        assert int(port) in listen_ports(name, svc), (
            f"{name}: healthcheck probes :{port}, the service listens on {listen_ports(name, svc)}"
        )
    if "KADR_METRICS_PORT" in probe:
        assert env(svc).get("KADR_METRICS_PORT", "0") != "0", f"{name}: probes KADR_METRICS_PORT, which is unset"


def _scrape_targets() -> dict[str, list[str]]:
    conf = yaml.safe_load(PROMETHEUS_YML.read_text())
    return {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in conf["scrape_configs"]
    }


def test_prometheus_scrapes_every_kadr_service_where_compose_puts_it():
    assert PROMETHEUS_YML.exists(), f"{PROMETHEUS_YML.relative_to(ROOT)} is missing"
    prom = next((n for n, s in services().items() if "prometheus" in str(s.get("image", ""))), None)
    assert prom, "no Prometheus service in compose"
    scraped = set()
    for job, targets in _scrape_targets().items():
        for target in targets:
            host, port = host_port(target)
            if host == "localhost":
                assert port in listen_ports(prom, services()[prom]), f"job {job}: {target}"
                continue
            assert host in services(), f"job {job}: {host} is not a compose service"
            svc = services()[host]
            assert port in listen_ports(host, svc), f"job {job}: {host} serves {listen_ports(host, svc)}, not {port}"
            assert metrics_bind_host(svc) == "0.0.0.0", f"job {job}: {host} binds its metrics to loopback"
            scraped.add(host)
    assert set(kadr_services()) <= scraped, f"not scraped: {set(kadr_services()) - scraped}"
    mounts = {m["target"]: m["source"] for m in bind_mounts(services()[prom])}
    conf_dir = str(Path(option(command(services()[prom]), "--config.file")).parent)
    assert (ROOT / mounts[conf_dir]).resolve() == PROMETHEUS_YML.parent
    for rule in yaml.safe_load(PROMETHEUS_YML.read_text()).get("rule_files", []):
        assert (PROMETHEUS_YML.parent / rule).is_file(), f"rule file {rule} is not in the mounted folder"


def test_grafana_reads_the_compose_prometheus_and_the_mounted_dashboards():
    sources = sorted((GRAFANA / "provisioning/datasources").glob("*.y*ml"))
    assert sources, "infra/grafana/provisioning/datasources holds no datasource"
    graf = next(s for s in services().values() if "grafana" in str(s.get("image", "")))
    prom_name = next(n for n, s in services().items() if "prometheus" in str(s.get("image", "")))
    mounts = {m["target"]: (ROOT / m["source"]).resolve() for m in bind_mounts(graf)}
    assert mounts.get("/etc/grafana/provisioning") == (GRAFANA / "provisioning").resolve()
    for f in sources:
        for ds in yaml.safe_load(f.read_text()).get("datasources", []):
            if ds.get("type") == "prometheus":
                u = urlparse(ds["url"])
                assert u.hostname == prom_name and u.port in listen_ports(prom_name, services()[prom_name]), ds["url"]
    for f in sorted((GRAFANA / "provisioning/dashboards").glob("*.y*ml")):
        for p in yaml.safe_load(f.read_text()).get("providers", []):
            path = p["options"]["path"]
            assert mounts.get(path) == (GRAFANA / "dashboards").resolve(), f"dashboards path {path} is not mounted"


# ---- the real parser, where one is installed ------------------------------------------------


def _compose_cli() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], check=False, capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return [shutil.which("docker-compose")] if shutil.which("docker-compose") else None


def test_docker_compose_config_accepts_every_profile():
    cli = _compose_cli()
    if not cli:
        pytest.skip("no docker compose CLI here; the schema test above still ran")
    res = subprocess.run(
        [*cli, "-f", str(COMPOSE), "--profile", "*", "config", "-q"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr


def test_the_gateway_runs_the_evented_worker_that_holds_streams_without_threads():
    """Open progress streams and ?wait= polls cost a greenlet each (issue: 8 watched batches
    stalled the threaded gateway). The image installs gevent with the gateway extra, the
    healthcheck asks the same server, and the process cap on held connections, at the
    memory each one measured (bench/results/crowd.json), fits the container's limit."""
    import tomllib

    gw = services()["gateway"]
    e = env(gw)
    assert command(gw)[:1] == ["gunicorn"] and e["GUNICORN_WORKER_CLASS"] == "gevent"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("gevent") for d in extras["gateway"])
    # The gateway image probes video uploads: without PyAV every upload there would be a 503.
    assert any(d.startswith("av>") for d in extras["gateway"])
    assert ".[gateway" in (ROOT / "infra/docker/gateway.Dockerfile").read_text()
    port = host_port(e["GUNICORN_BIND"])[1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(gw["healthcheck"]["test"])
    crowd = json.loads((ROOT / "bench/results/crowd.json").read_text())
    gevent = next(r for r in crowd["results"] if r["design"] == "gevent")
    per_held = gevent["gateway_kib_per_held_connection"] * 1024
    procs = gevent["gateway_processes_mib"]["before"][0]
    idle_one_worker = (procs["master"] + max(procs["workers"])) * 2**20  # compose runs one worker
    cap = int(e["KADR_MAX_OPEN_STREAMS"])
    limit = mem_bytes(resources(gw)["limits"]["memory"])
    assert idle_one_worker + cap * per_held <= 0.9 * limit
    assert int(e["GUNICORN_WORKER_CONNECTIONS"]) > cap  # the cap answers 503 before gunicorn stops accepting


# ---- (f) the GPU override --------------------------------------------------------------

GPU_OVERRIDE = ROOT / "docker-compose.gpu.yml"


def test_gpu_override_follows_the_specification_and_moves_only_the_ml_workers():
    """docker-compose.gpu.yml, merged over the main file as compose merges mappings, is a
    valid Compose file; it reserves an NVIDIA device for the enhance and segment workers,
    runs them with KADR_DEVICE=cuda on an image built with the CUDA torch, and touches no
    other service."""
    override = _interpolate(yaml.safe_load(GPU_OVERRIDE.read_text()))
    assert set(override["services"]) == {"enhance", "segment"}

    def merge(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            return {k: merge(a.get(k), b[k]) if k in b else a[k] for k in {*a, *b}}
        return copy.deepcopy(b)

    merged = merge(copy.deepcopy(compose()), override)
    assert not _schema_errors(merged), "\n".join(_schema_errors(merged))
    for name in override["services"]:
        full = merged["services"][name]
        assert env(full)["KADR_DEVICE"] == "cuda", name
        devices = full["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], name
        assert full["image"] != services()[name]["image"], f"{name}: the CUDA image must be tagged apart"
        assert full["build"]["args"]["TORCH_INDEX_URL"] != "https://download.pytorch.org/whl/cpu", name
        assert full["command"] == services()[name]["command"], f"{name}: same command as on the CPU"
        assert mem_bytes(full["deploy"]["resources"]["limits"]["memory"]) > mem_bytes(
            resources(services()[name])["limits"]["memory"]
        ), f"{name}: CUDA needs more host memory"
