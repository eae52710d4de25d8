"""Prometheus config, alert rules and Grafana dashboards are valid and name real metrics.
(tests/e2e/test_monitoring.py runs them against the live stack.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from testbed.stack import ROOT, binary

PROM = ROOT / "infra" / "prometheus"
GRAFANA = ROOT / "infra" / "grafana"
SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, cwd=PROM)


def test_alert_rules_pass_promtool():
    out = _promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"SUCCESS: (\d+) rules found", out.stdout).group(1) == "13"


def test_compose_and_rendered_configs_pass_promtool(tmp_path):
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    local = tmp_path / "local.yml"
    jobs = ["gateway", "exporter", "enhance", "segment", "camera", "autoscaler", "janitor"]
    subprocess.run(
        [
            sys.executable,
            str(PROM / "render.py"),
            "--out",
            str(local),
            *[f"--target={j}=127.0.0.1:{9200 + i}" for i, j in enumerate(jobs)],
        ],
        check=True,
    )
    out = _promtool("check", "config", str(local))
    assert out.returncode == 0, out.stdout + out.stderr
    # A job left without a target is refused, not silently scraped at a compose host name.
    miss = subprocess.run(
        [sys.executable, str(PROM / "render.py"), "--out", str(tmp_path / "x.yml"), "--target=gateway=127.0.0.1:1"],
        capture_output=True,
        text=True,
    )
    assert miss.returncode != 0 and "exporter" in miss.stderr


def test_dashboards_are_generated_from_build_py():
    out = subprocess.run([sys.executable, str(GRAFANA / "build.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for path in (GRAFANA / "dashboards").glob("*.json"):
        d = json.loads(path.read_text())
        assert d["panels"] and all(p["targets"] for p in d["panels"]), path.name
        assert {t["datasource"]["uid"] for p in d["panels"] for t in p["targets"]} == {"kadr-prometheus"}
    prov = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: kadr-prometheus" in prov


def _source_text() -> str:
    return "\n".join(p.read_text() for d in ("services", "gateway") for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("where", ["dashboards", "alerts"])
def test_every_queried_metric_is_defined_in_code(where):
    if where == "dashboards":
        text = "\n".join(
            t["expr"]
            for p in (GRAFANA / "dashboards").glob("*.json")
            for panel in json.loads(p.read_text())["panels"]
            for t in panel["targets"]
        )
    else:
        text = (PROM / "alerts.yml").read_text()
    names = set(re.findall(r"\bkadr_[a-z0-9_]+", text))
    assert names
    code = _source_text()
    undefined = []
    for name in sorted(names):
        base = name
        for suffix in SUFFIXES:
            if base.endswith(suffix) and f'"{base}"' not in code:
                base = base[: -len(suffix)]
        if f'"{base}"' not in code:
            undefined.append(name)
    assert not undefined, undefined
