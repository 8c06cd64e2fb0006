"""Issue 15's figures: the CPU's limit, the model alone, end to end against the peer runtime and
the prototype, and one-shot queries without a daemon. `python -m bench --only speed` runs only
this and prints it; the full `make bench` adds it to BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from bench import endtoend, images, machine, startup
from bench import web as served_bench
from bench.report import _ok, _table
from bench.run import run, say

TARGET_MODEL_VS_PEER = 1.0
TARGET_E2E_VS_PEER = 1.25
TARGET_E2E_VS_TORCH = 8.0
TARGET_ONE_SHOT_S = 0.3
TARGET_SERVED_S, ACCEPT_SERVED_S = served_bench.TARGET_DAEMON_S, served_bench.ACCEPT_DAEMON_S
TARGET_BATCH_COSINE = 0.9995


def peer_model(cache: Path, model: Path, web: Path) -> Path:
    """The peer's NNCF int8 image tower, built once per exported model."""
    out = cache / "peer" / "vision.nncf.xml"
    stamp = out.with_suffix(".of")
    fingerprint = hashlib.sha256((model / "manifest.json").read_bytes()).hexdigest()
    if not out.exists() or not stamp.exists() or stamp.read_text() != fingerprint:
        say("quantising the peer's image tower with NNCF (a few minutes, once)")
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "bench.peer", "--quantise", str(model / "vision.onnx")]
        run([*cmd, "--images", str(web), "--out", str(out)])
        stamp.write_text(fingerprint)
    return out


def dynamic_model(cache: Path, model: Path) -> Path:
    """The previous default (dynamic int8 image tower), for comparison."""
    out = cache / "dynamic" / "vision.int8.onnx"
    if not out.exists() or out.stat().st_mtime < (model / "manifest.json").stat().st_mtime:
        say("quantising the previous default (dynamic int8) for comparison")
        out.parent.mkdir(parents=True, exist_ok=True)
        code = (
            "import sys; from pathlib import Path; from export import quantize; "
            "quantize.quantize(Path(sys.argv[1]), Path(sys.argv[2]), quantize.DEFAULT)"
        )
        run([sys.executable, "-c", code, str(model / "vision.onnx"), str(out)])
    return out


def measure(
    cache: Path,
    checkpoint: Path,
    model: Path,
    index128: Path,
    *,
    quick: bool,
    rounds: int,
    served: dict | None = None,
) -> dict:
    """`served`: the web part's one-shot figures (`web.one_shot`), measured here when absent."""
    load_start = machine.load_average()
    n = 32 if quick else 96
    photos = images.make_photos(cache / "photos", n)
    web = images.make_photos(cache / "web", max(n, 128), images.WEB_SIZES, seed=1)
    # both folders name their files photo_NNNN.jpg: link each under a name of its own
    mixed = images.linked(photos[:n], cache / f"mixed-{2 * n}", prefix="photo-")
    images.linked(web[:n], mixed, prefix="web-")
    peer = peer_model(cache, model, cache / "web")
    say("the limit: GEMM microbenchmark")
    gemm = json.loads(
        run([sys.executable, "-m", "bench.gemm", "--reps", "5" if quick else "15"]).stdout
    )
    say("the model alone")
    cmd = [sys.executable, "-m", "bench.model_speed", "--model", str(model), "--peer", str(peer)]
    cmd += ["--dynamic", str(dynamic_model(cache, model)), "--images", str(cache / "web")]
    alone = json.loads(run([*cmd, "--rounds", str(3 if quick else 7)]).stdout)
    e2e = endtoend.measure(checkpoint, model, peer, mixed, rounds)
    say("one-shot queries")
    one_shot = {
        "whole": startup.whole_process(index128, 5 if quick else 15),
        "quick": startup.breakdown(index128, 3 if quick else 5),
        "usual": startup.breakdown(index128, 3 if quick else 5, usual=True),
        "served": served or served_bench.served_one_shot(index128, 7 if quick else 15),
    }
    manifest = json.loads((model / "manifest.json").read_text())
    return {
        "machine": machine.describe(),
        "load": [load_start, machine.load_average()],
        "gemm": gemm,
        "model_alone": alone,
        "end_to_end": e2e,
        "one_shot": one_shot,
        "fidelity": manifest.get("fidelity", {}),
    }


def _fraction(row: dict, gemm: dict) -> str:
    limit = gemm["limits"].get(row["precision"])
    if not limit:
        return "-"
    return (
        f"{limit['cpu_ms_per_img'] / row['cpu_ms_per_img']:.0%} / "
        f"{row['img_per_s_best'] / limit['img_per_s']:.0%}"
    )


def targets(s: dict) -> list[list[str]]:
    rows = s["model_alone"]["rows"]
    default = rows[0]
    peer = next((r for r in rows if r["name"].startswith("peer")), None)
    e2e, whole = s["end_to_end"], s["one_shot"]["whole"]["search"]
    batch = s["fidelity"].get("vision", {}).get("int8", {}).get("batch_min_cosine")
    out = []
    if peer:
        ratio = default["img_per_s"] / peer["img_per_s"]
        out.append(
            [
                "default model alone vs peer (NNCF int8, OpenVINO)",
                f">= {TARGET_MODEL_VS_PEER}x",
                f"{ratio:.2f}x",
                _ok(ratio >= TARGET_MODEL_VS_PEER),
            ]
        )
    out.append(
        [
            "`clipsearch index` vs peer, whole processes",
            f">= {TARGET_E2E_VS_PEER}x",
            f"{e2e['vs_peer']:.2f}x",
            _ok(e2e["vs_peer"] >= TARGET_E2E_VS_PEER),
        ]
    )
    out.append(
        [
            "`clipsearch index` vs PyTorch prototype",
            f">= {TARGET_E2E_VS_TORCH}x",
            f"{e2e['vs_torch']:.2f}x",
            _ok(e2e["vs_torch"] >= TARGET_E2E_VS_TORCH),
        ]
    )
    out.append(
        [
            "one-shot `clipsearch search`, no daemon, median",
            f"<= {TARGET_ONE_SHOT_S} s",
            f"{whole['wall_s']:.3f} s",
            _ok(whole["wall_s"] <= TARGET_ONE_SHOT_S),
        ]
    )
    served = s["one_shot"].get("served", {}).get("search via serve")
    if served:
        via = served["median_s"]
        met = (
            "yes" if via <= TARGET_SERVED_S else "accepted" if via <= ACCEPT_SERVED_S else "**no**"
        )
        out.append(
            [
                "one-shot `clipsearch search` with `clipsearch serve` running, median",
                f"<= {TARGET_SERVED_S} s (accept {ACCEPT_SERVED_S} s)",
                f"{via:.3f} s",
                met,
            ]
        )
    if batch is not None:
        out.append(
            [
                "int8 vector alone vs in a batch of 4 (min cosine)",
                f">= {TARGET_BATCH_COSINE}",
                f"{batch:.6f}",
                _ok(batch >= TARGET_BATCH_COSINE),
            ]
        )
    return out


def render(s: dict, conditions: str = "") -> list[str]:
    m, gemm, alone = s["machine"], s["gemm"], s["model_alone"]
    out = [
        "## Speed: the limit, the model, end to end, one-shot queries",
        "",
        f"{m['cpu']} ({', '.join(m['isa'])}), {m['physical_cores']} cores; load average "
        f"{s['load'][0]:.1f} at the start, {s['load'][1]:.1f} at the end. {conditions}".rstrip(),
        "",
    ]
    out += _table(["target", "goal", "measured", "met"], targets(s))
    out += [
        "### The limit: GEMM throughput of the runtimes' kernels",
        "",
        f"The four GEMM shapes of a ViT-B/32 layer over 1600 token rows, {gemm['threads']} threads, "
        f"best round (bench/gemm.py). bf16: {gemm['bf16']}. One image is ~4.4 GMAC.",
        "",
    ]
    out += _table(
        ["precision", "kernel", "GMAC/s", "img/s it implies", "GMAC per CPU-s", "CPU ms/img"],
        [
            [
                k["precision"],
                k["kernel"],
                f"{k['gmac_per_s']:.1f}",
                f"{k['gmac_per_s'] / 4.4:.1f}",
                f"{k['gmac_per_cpu_s']:.1f}",
                f"{4400 / k['gmac_per_cpu_s']:.0f}",
            ]
            for k in gemm["kernels"]
        ],
    )
    out += [
        "### The model alone",
        "",
        f"Image tower, batch {alone['batch']} of web-sized photos, {alone['threads']} threads, "
        f"{alone['rounds']} alternating rounds (bench/model_speed.py). *of limit*: the CPU time "
        "per image the precision's fastest GEMM kernel implies over the CPU time the tower takes "
        "(steady on a shared machine), and the same with the best round's wall time.",
        "",
    ]
    peer = next((r for r in alone["rows"] if r["name"].startswith("peer")), None)
    out += _table(
        [
            "image tower",
            "img/s (median)",
            "best",
            "vs peer",
            "CPU ms/img",
            "of limit: CPU / best wall",
            "cosine to ORT fp32 (mean / min)",
        ],
        [
            [
                r["name"],
                f"{r['img_per_s']:.1f}",
                f"{r['img_per_s_best']:.1f}",
                f"{r['img_per_s'] / peer['img_per_s']:.2f}x" if peer else "-",
                f"{r['cpu_ms_per_img']:.0f}",
                _fraction(r, gemm),
                f"{r['cos_mean']:.5f} / {r['cos_min']:.5f}",
            ]
            for r in alone["rows"]
        ],
    )
    e2e = s["end_to_end"]
    out += [
        "### End to end",
        "",
        f"{e2e['images']} JPEGs (half 1-12 MP photos, half 0.2-0.5 MP web pictures), whole "
        f"processes, {e2e['rounds']} interleaved rounds (bench/endtoend.py). `clipsearch index` is "
        f"{e2e['vs_peer']:.2f}x the peer and {e2e['vs_torch']:.2f}x PyTorch (per round: "
        f"{', '.join(f'{x:.2f}' for x in e2e['vs_peer_rounds'])} and "
        f"{', '.join(f'{x:.2f}' for x in e2e['vs_torch_rounds'])}).",
        "",
    ]
    out += _table(
        [
            "pipeline",
            "img/s",
            "CPU ms/img",
            "peak RSS MB",
            "cosine to PyTorch (mean / min)",
            "walls (s)",
        ],
        endtoend.render_rows(e2e),
    )
    one = s["one_shot"]
    whole = one["whole"]
    out += [
        "### One-shot queries without a daemon",
        "",
        f"`clipsearch search TEXT` on a 128-image index, full-size int8 model, warm page cache: "
        f"median {whole['search']['wall_s']:.3f} s wall, {whole['search']['cpu_s']:.3f} s CPU "
        f"(bare `python -c pass`: {whole['bare']['wall_s']:.3f} s, {whole['bare']['cpu_s']:.3f} s). "
        "Where the time goes, median of separate processes (bench/startup.py), CPU / wall ms; "
        "*quick* is how a one-shot search loads the text tower, *usual* how a server does:",
        "",
    ]
    steps = [k[: -len(" cpu_ms")] for k in one["quick"] if k.endswith(" cpu_ms")]
    out += _table(
        ["step", "quick", "usual"],
        [
            [step]
            + [
                f"{one[v][f'{step} cpu_ms']:.0f} / {one[v][f'{step} wall_ms']:.0f}"
                for v in ("quick", "usual")
            ]
            for step in steps
        ],
    )
    return out
