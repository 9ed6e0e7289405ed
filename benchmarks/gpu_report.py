"""The ratios and the markdown table of :mod:`benchmarks.gpu` (pure functions of its results)."""

from __future__ import annotations

from typing import Any


def ratios(results: dict, unit_batch: int) -> dict:
    """Work unit and decode against the model alone (bf16 at the unit batch size)."""
    try:
        model = results["model_alone"]["bf16"]["fps"][str(unit_batch)]
    except (KeyError, TypeError):
        return {"note": "no bf16 model-alone rate at the unit batch size"}
    out: dict[str, Any] = {"model_alone_bf16_fps": model}
    units = results.get("work_unit", {})
    for label in ("gpu_decode", "cpu_decode"):
        for key, fps in (units.get(label) or {}).items():
            if key.startswith("fps_"):
                out[f"unit_{label}_{key[4:]}_over_model"] = round(fps / model, 3)
    nvjpeg = results.get("decode", {}).get("nvjpeg_fps")
    if isinstance(nvjpeg, float):
        out["nvjpeg_over_model"] = round(nvjpeg / model, 2)
    if isinstance(results.get("dask", {}).get("fps"), float):
        out["dask_over_model"] = round(results["dask"]["fps"] / model, 3)
    return out


def markdown(results: dict) -> str:
    lines = [
        f"# GPU benchmark — {results['machine']}",
        "",
        f"{results['date']}, command: `{results['command']}`",
        "",
        "| section | measure | value |",
        "|---|---|---|",
    ]

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
            return
        section, _, measure = prefix.partition(".")
        lines.append(f"| {section} | {measure} | {value} |")

    names = ("model_alone", "model_compile", "predictor", "decode", "work_unit", "dask",
             "agreement", "ratios")  # fmt: skip
    for name in names:
        walk(name, results.get(name, "not run"))
    return "\n".join(lines) + "\n"
