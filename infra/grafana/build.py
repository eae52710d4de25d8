"""Writes kadr's Grafana dashboards (infra/grafana/dashboards/*.json) from the panel
lists below, so every dashboard shares one layout and one datasource, and a test can
run every panel's query against a real Prometheus.

``python infra/grafana/build.py`` (``--check`` fails when the committed JSON differs).
Panels marked ``gpu=True`` only have data on a machine with a GPU: the exporter and
workers export no GPU series at all elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "kadr-prometheus"}


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[str, ...]  # one query per series group; legend from the labels
    unit: str = "short"
    legend: str = ""
    gpu: bool = False
    kind: str = "timeseries"  # or "stat"
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: list[Panel] = field(default_factory=list)


def q95(metric: str, by: str, sel: str = "") -> str:
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}_bucket{sel}[5m])))"


OVERVIEW = Dashboard(
    "kadr-overview",
    "kadr / overview",
    [
        Panel(
            "Waiting messages per queue",
            ('sum by (queue) (kadr_queue_messages{state="waiting"})',),
            legend="{{queue}}",
            description="Work not yet taken by any worker",
        ),
        Panel(
            "Reserved (unacknowledged) per queue",
            ('sum by (queue) (kadr_queue_messages{state="reserved"})',),
            legend="{{queue}}",
            description="Taken by a worker; handed back if it dies",
        ),
        Panel(
            "Worker processes: live and busy",
            ("kadr_queue_worker_processes", "kadr_queue_busy_processes"),
            legend="{{__name__}} {{queue}}",
        ),
        Panel(
            "Host RAM used",
            ('1 - kadr_host_memory_bytes{kind="available"} / ignoring(kind) kadr_host_memory_bytes{kind="total"}',),
            unit="percentunit",
            legend="used",
        ),
        Panel(
            "Host CPU busy",
            ('1 - sum(rate(kadr_host_cpu_seconds_total{mode="idle"}[1m])) / sum(kadr_host_cpus)',),
            unit="percentunit",
            legend="busy",
        ),
        Panel(
            "Redis memory",
            ("kadr_redis_memory_used_bytes", "kadr_redis_memory_max_bytes"),
            unit="bytes",
            legend="{{__name__}}",
        ),
        Panel(
            "Gateway requests by status",
            ("sum by (status) (rate(kadr_gateway_requests_total[1m]))",),
            unit="reqps",
            legend="{{status}}",
        ),
        Panel(
            "Jobs ended by service and outcome",
            ("sum by (service, outcome) (rate(kadr_worker_jobs_total[5m]))",),
            unit="ops",
            legend="{{service}} {{outcome}}",
        ),
        Panel(
            "Worker memory (RSS, all processes)",
            ("kadr_worker_resident_memory_bytes",),
            unit="bytes",
            legend="{{service}}",
        ),
        Panel(
            "Autoscaler decisions (10 min)",
            ("sum by (queue, action, reason) (increase(kadr_autoscaler_decisions_total[10m]))",),
            legend="{{queue}} {{action}} {{reason}}",
        ),
        Panel(
            "Disk free for blobs vs its floor",
            ("kadr_storage_free_bytes", "kadr_storage_free_floor_bytes"),
            unit="bytes",
            legend="{{__name__}}",
            description="Below the floor uploads and camera events answer 507 storage_full "
            "(KADR_STORAGE_FREE_FLOOR_BYTES)",
        ),
        Panel(
            "Stored per kind",
            ("kadr_storage_bytes", "kadr_storage_budget_bytes"),
            unit="bytes",
            legend="{{__name__}} {{kind}}",
            description="The janitor's last survey; past the budget the oldest finished thing goes first",
        ),
        Panel(
            "Removed by retention (1 h)",
            ("sum by (kind, reason) (increase(kadr_retention_removed_total[1h]))",),
            legend="{{kind}} {{reason}}",
        ),
        Panel(
            "Callbacks and camera webhooks (1 h)",
            ("sum by (subject, outcome) (increase(kadr_callbacks_total[1h]))", "kadr_callbacks_pending"),
            legend="{{subject}} {{outcome}} {{__name__}}",
            description="Attempts by outcome; the outbox's waiting deliveries",
        ),
        Panel("GPU utilisation", ("kadr_gpu_utilization_ratio",), unit="percentunit", legend="gpu {{gpu}}", gpu=True),
        Panel("GPU memory used", ("kadr_gpu_memory_used_bytes",), unit="bytes", legend="gpu {{gpu}}", gpu=True),
        Panel("GPU temperature", ("kadr_gpu_temperature_celsius",), unit="celsius", legend="gpu {{gpu}}", gpu=True),
    ],
)

GATEWAY = Dashboard(
    "kadr-gateway",
    "kadr / gateway",
    [
        Panel(
            "Requests by route",
            ("sum by (route) (rate(kadr_gateway_requests_total[1m]))",),
            unit="reqps",
            legend="{{route}}",
        ),
        Panel(
            "Latency p95 by route",
            (q95("kadr_gateway_request_duration_seconds", "route"),),
            unit="s",
            legend="{{route}}",
        ),
        # No 5xx series exists until the first one: show 0, not "No data".
        Panel(
            "5xx answers",
            ('sum(rate(kadr_gateway_requests_total{status=~"5.."}[5m])) or vector(0)',),
            unit="reqps",
            legend="5xx",
        ),
        Panel(
            "Refusals by reason",
            ("sum by (reason) (rate(kadr_gateway_rejections_total[5m]))",),
            unit="reqps",
            legend="{{reason}}",
            description="Every limit answers 4xx/503 and counts here",
        ),
        Panel(
            "Open streams and long polls",
            ("sum(kadr_gateway_open_streams)",),
            legend="open",
            description="SSE streams and ?wait= polls held now; capped per key (429) and per process (503)",
        ),
        Panel("Upload bytes", ("rate(kadr_gateway_upload_bytes_total[5m])",), unit="Bps", legend="uploads"),
        Panel(
            "Jobs accepted by kind",
            ("sum by (kind) (rate(kadr_gateway_jobs_accepted_total[5m]))",),
            unit="ops",
            legend="{{kind}}",
        ),
    ],
)


def _load_mean(job: str) -> str:
    return f'kadr_worker_model_load_seconds_sum{{job="{job}"}} / kadr_worker_model_load_seconds_count{{job="{job}"}}'


def _worker(service: str, tasks: str, title: str, extra: list[Panel]) -> Dashboard:
    sel = f'{{task=~"{tasks}"}}'
    return Dashboard(
        f"kadr-{service}",
        f"kadr / {title}",
        [
            Panel(
                "Task duration p95",
                (q95("kadr_worker_task_duration_seconds", "task", sel),),
                unit="s",
                legend="{{task}}",
            ),
            Panel(
                "Queue wait p95",
                (q95("kadr_worker_queue_wait_seconds", "task", sel),),
                unit="s",
                legend="{{task}}",
                description="Accepted to first start in a worker",
            ),
            Panel(
                "Jobs by outcome",
                (f'sum by (outcome) (rate(kadr_worker_jobs_total{{service="{service}"}}[5m]))',),
                unit="ops",
                legend="{{outcome}}",
            ),
            Panel("Waiting / reserved", (f'kadr_queue_messages{{queue="{service}"}}',), legend="{{state}}"),
            Panel(
                "Memory (RSS): all processes and the biggest",
                (
                    f'kadr_worker_resident_memory_bytes{{service="{service}"}}',
                    f'kadr_worker_process_max_resident_memory_bytes{{service="{service}"}}',
                ),
                unit="bytes",
                legend="{{__name__}}",
            ),
            Panel("Processes", (f'kadr_worker_processes{{service="{service}"}}',), legend="processes"),
            *extra,
        ],
    )


ENHANCE = _worker(
    "enhance",
    "enhance.*",
    "enhance (GFPGAN + Real-ESRGAN)",
    [
        Panel("Model load time (mean)", (_load_mean("enhance"),), unit="s", legend="{{model}}"),
        Panel("Faces", ("sum by (outcome) (rate(kadr_enhance_faces_total[5m]))",), unit="ops", legend="{{outcome}}"),
        Panel("Result cache hits", ("rate(kadr_enhance_cache_hits_total[5m])",), unit="ops", legend="hits"),
        Panel(
            "Photo memory by phase p95",
            (q95("kadr_enhance_photo_peak_memory_bytes", "phase", ""),),
            unit="bytes",
            legend="{{phase}}",
            description="A photo's peak resident memory over its pool process's size at the "
            "start, per phase (detect, faces, background); KADR_ENHANCE_MEMORY_BUDGET_BYTES sizes the tiles and "
            "the detector's copy",
        ),
        Panel(
            "CUDA memory",
            ('kadr_worker_cuda_memory_reserved_bytes{service="enhance"}',),
            unit="bytes",
            legend="reserved",
            gpu=True,
        ),
    ],
)

SEGMENT = _worker(
    "segment",
    "segment.*",
    "segment (DeepLabv3 + stabilization)",
    [
        Panel("Model load time (mean)", (_load_mean("segment"),), unit="s", legend="{{model}}"),
        Panel(
            "CUDA memory",
            ('kadr_worker_cuda_memory_reserved_bytes{service="segment"}',),
            unit="bytes",
            legend="reserved",
            gpu=True,
        ),
    ],
)

CAMERA = _worker(
    "camera",
    "camera.*",
    "camera (pre-event buffer)",
    [
        Panel(
            "Buffer bytes vs budget",
            ("kadr_camera_buffer_bytes", "kadr_camera_buffer_max_bytes"),
            unit="bytes",
            legend="{{__name__}} {{camera}}",
        ),
        Panel("Seconds held", ("kadr_camera_buffer_seconds",), unit="s", legend="{{camera}}"),
        Panel("Source up / fps", ("kadr_camera_source_up", "kadr_camera_source_fps"), legend="{{__name__}} {{camera}}"),
        Panel("Last frame age", ("kadr_camera_last_frame_age_seconds",), unit="s", legend="{{camera}}"),
        Panel(
            "Dropped frames by reason",
            ("sum by (camera, reason) (rate(kadr_camera_buffer_dropped_frames_total[5m]))",),
            unit="ops",
            legend="{{camera}} {{reason}}",
        ),
        Panel(
            "Event clips by outcome (1 h)",
            ("sum by (camera, outcome) (increase(kadr_camera_clips_total[1h]))",),
            legend="{{camera}} {{outcome}}",
        ),
    ],
)

DASHBOARDS = [OVERVIEW, GATEWAY, ENHANCE, SEGMENT, CAMERA]


def render(d: Dashboard) -> dict:
    panels = []
    for i, p in enumerate(d.panels):
        w = 8
        targets = [
            {"datasource": DATASOURCE, "expr": e, "legendFormat": p.legend, "refId": chr(65 + j)}
            for j, e in enumerate(p.exprs)
        ]
        panels.append(
            {
                "id": i + 1,
                "type": p.kind,
                "title": p.title,
                "description": p.description,
                "datasource": DATASOURCE,
                "targets": targets,
                "gridPos": {"x": (i % 3) * w, "y": (i // 3) * 8, "w": w, "h": 8},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                **({"kadr": {"gpu_only": True}} if p.gpu else {}),
            }
        )
    return {
        "uid": d.uid,
        "title": d.title,
        "tags": ["kadr"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
        "templating": {"list": []},
        "annotations": {"list": []},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is out of date")
    args = ap.parse_args()
    stale = []
    for d in DASHBOARDS:
        path = OUT / f"{d.uid.removeprefix('kadr-')}.json"
        text = json.dumps(render(d), indent=2) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run python infra/grafana/build.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
