"""``kadr enhance``: a folder of photos in, enhanced photos out, resumable."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from client import entries
from client import state as st
from client.batch_run import BatchRun, Fatal
from client.connect import connection_options, fail, message_for
from client.http import ApiError, Client, Unreachable
from client.inputs import InputError, collect
from client.progress import Progress
from client.shapes import Params, ParamValue, Variant

EXIT_INTERRUPTED = 130


@click.command("enhance")
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="where the results go (same relative paths as the inputs)",
)
@click.option("--quality", help="fast, medium or high (default: the server's)")
@click.option(
    "--upscale",
    type=click.IntRange(1, 4),
    help="1-4 (default: 2 where the result fits the server's limit, else the largest that does)",
)
@click.option("--max-faces", type=int, help="faces restored per photo")
@click.option(
    "--prescale",
    is_flag=True,
    default=None,
    help="medium/high: the background model works on a shrunk copy (about 4x faster, less fine detail)",
)
@click.option(
    "--variant",
    "variant_specs",
    multiple=True,
    metavar="NAME:KEY=VALUE[,KEY=VALUE...]",
    help="one output per photo and variant, each in its own folder under --out, the "
    "options above overridden by the variant's, e.g. --variant x2:upscale=2 "
    "--variant x4:upscale=4,quality=high (repeat for more)",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 32), default=3, show_default=True, help="parallel uploads (and downloads)"
)
@click.option("--batch-name", help="a label for the batch")
@click.option("--new-batch", is_flag=True, help="start over in a new batch, even if the state file has other settings")
@connection_options
def enhance(
    photos: tuple[Path, ...],
    out_dir: Path,
    quality: str | None,
    upscale: int | None,
    max_faces: int | None,
    prescale: bool | None,
    variant_specs: tuple[str, ...],
    concurrency: int,
    batch_name: str | None,
    new_batch: bool,
    client: Client,
) -> None:
    """Enhance PHOTOS (files and directories, searched recursively) into --out.

    Results are downloaded as they finish (with --variant: into one folder per variant).
    Running the same command again resumes: photos already downloaded are skipped. Exit code
    0 when every photo succeeded, 1 when some failed, 2 on usage or connection errors, 130 when interrupted."""
    options: dict[str, ParamValue | None] = {
        "quality": quality,
        "upscale": upscale,
        "max_faces": max_faces,
        "prescale": prescale,
    }
    params = {k: v for k, v in options.items() if v is not None}
    try:
        variants = parse_variants(variant_specs)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--variant")
    try:
        files = collect(photos, exclude=out_dir)
    except InputError as e:
        raise click.UsageError(str(e))
    if not files:
        raise click.UsageError("no photos found (jpg, jpeg, png, webp, bmp, tif, tiff, heic, heif, avif)")
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / st.STATE_FILE
    state = _load_state(state_path, client.base_url, params, variants, new_batch)
    names: list[str | None] = [v["name"] for v in variants] or [None]
    outputs = {st.slot(rel, n): p for rel, p in files.items() for n in names}
    try:
        current: dict[str, st.Entry] = {}
        for rel, p in files.items():
            fp = st.fingerprint(p, state.inputs.get(st.slot(rel, names[0])))
            current.update({st.slot(rel, n): dataclasses.replace(fp, variant=n, rel=n and rel) for n in names})
    except KeyboardInterrupt:
        click.echo("interrupted before anything was sent", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as e:
        fail(f"cannot read {e.filename}: {e.strerror}")
    st.sync_inputs(state, current)
    progress = Progress(len(outputs))
    run = BatchRun(
        client,
        state,
        state_path,
        outputs,
        out_dir,
        concurrency=concurrency,
        progress=progress,
        batch_name=batch_name,
        log=lambda m: click.echo(m, err=True),
    )
    try:
        summary = run.run()
    except KeyboardInterrupt:
        progress.close()
        run.save()
        run.cleanup()
        s = entries.summarize(state, list(outputs))
        click.echo(
            f"interrupted: {s.done} of {s.total} {_unit(variants)} in {out_dir}; run the same command again to resume",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except (Fatal, ApiError, Unreachable) as e:
        progress.close()
        fail(message_for(e))
    progress.close()
    sys.exit(_report(summary, out_dir, state.batch_id, _unit(variants)))


def _unit(variants: list[Variant]) -> str:
    return f"outputs ({len(variants)} variants per photo)" if variants else "photos"


def _value(raw: str) -> ParamValue:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(raw)
    except ValueError:
        return raw


def parse_variants(specs: Iterable[str]) -> list[Variant]:
    """``NAME:KEY=VALUE,...`` → the API's ``[{"name", "params"}]``; the server checks the
    names and values (a bad one is refused before any upload)."""
    out: list[Variant] = []
    seen: set[str] = set()
    for spec in specs:
        name, sep, rest = spec.partition(":")
        name = name.strip()
        if not name or not sep and "=" in name:
            raise ValueError(f"{spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE...]")
        params: Params = {}
        for pair in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, val = pair.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"{spec!r}: {pair!r} is not KEY=VALUE")
            params[key.strip().replace("-", "_")] = _value(val.strip())
        if name.lower() in seen:
            raise ValueError(f"variant {name!r} is given twice")
        seen.add(name.lower())
        out.append({"name": name, "params": params})
    return out


def _load_state(path: Path, server: str, params: Params, variants: list[Variant], new_batch: bool) -> st.State:
    try:
        state = None if new_batch else st.load(path)
    except st.StateError as e:
        fail(str(e))
    if state is not None:
        why = st.mismatch(state, server, params, variants)
        if why:
            fail(
                f"{path} is from another run: {why}. Re-run with --new-batch to start over "
                "with these settings (outputs are overwritten), or use another --out."
            )
        return state
    return st.State(server=server, params=params, variants=variants or None)


def _report(s: entries.Summary, out_dir: Path, batch_id: str | None, unit: str = "photos") -> int:
    click.echo(f"{s.done} of {s.total} {unit} enhanced into {out_dir}" + (f" (batch {batch_id})" if batch_id else ""))
    if s.duplicates:
        click.echo(f"{len(s.duplicates)} duplicate(s) skipped (same content, result copied):")
        for rel, orig in s.duplicates:
            click.echo(f"  {rel} = {orig}")
    if s.failed:
        click.echo(f"{len(s.failed)} failed:")
        for rel, err in s.failed:
            click.echo(f"  {rel}: {err}")
    if s.pending:
        click.echo(f"{len(s.pending)} not finished; run the same command again to resume:")
        for rel in s.pending[:20]:
            click.echo(f"  {rel}")
    return 0 if s.done == s.total else 1
