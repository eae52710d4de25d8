"""Prometheus config for a non-compose run (``make up``, the test suite): the compose
file infra/prometheus/prometheus.yml with each job's target replaced.

    python infra/prometheus/render.py --out var/run/prometheus.yml \
        --target gateway=127.0.0.1:8000 --target exporter=127.0.0.1:9100 ... [--interval 15s]

Every job of the compose file needs a target (``prometheus`` defaults to the
``--listen`` address), so a new job cannot be forgotten here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def render(targets: dict[str, str], *, listen: str, interval: str | None = None) -> str:
    conf = yaml.safe_load((HERE / "prometheus.yml").read_text())
    if interval:
        conf["global"].update(scrape_interval=interval, evaluation_interval=interval)
    conf["rule_files"] = [str(HERE / f) for f in conf["rule_files"]]
    targets = {"prometheus": listen, **targets}
    jobs = [job["job_name"] for job in conf["scrape_configs"]]
    missing = [j for j in jobs if j not in targets]
    if missing:
        raise SystemExit(f"no target given for job(s): {', '.join(missing)}")
    for job in conf["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return yaml.safe_dump(conf, sort_keys=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--target", action="append", default=[], metavar="JOB=HOST:PORT")
    ap.add_argument("--listen", default="127.0.0.1:9090", help="where this Prometheus listens")
    ap.add_argument("--interval", help="scrape and rule evaluation interval (default: the file's)")
    args = ap.parse_args()
    targets = dict(t.split("=", 1) for t in args.target)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(targets, listen=args.listen, interval=args.interval))


if __name__ == "__main__":
    main()
