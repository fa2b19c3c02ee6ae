"""A plan for people: text for the terminal, Markdown for a pull-request comment."""

from __future__ import annotations

from typing import Any

from ftrecipe.plan.memory import duration, human

COMPONENTS = {
    "weights": "weights",
    "lora_adapters": "LoRA adapters",
    "gradients": "gradients",
    "optimizer": "optimizer states",
    "ddp_buckets": "DDP gradient buckets",
    "fsdp_gather": "FSDP gathered layers",
    "activations": "activations",
    "logits_and_loss": "logits and loss",
    "autocast_copies": "autocast 16-bit weight copies",
    "overhead": "framework overhead",
}


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _flops(value: float | None) -> str:
    return "-" if not value else f"{value:.2e}"


def _quantity(unit: str, value: float) -> str:
    if unit == "audio_hours":
        return f"{duration(value)} of audio"
    return f"{value:,.0f} {unit.replace('_', ' ')}" if value == int(value) or value >= 100 else f"{value:,.2f} {unit.replace('_', ' ')}"


def _amount(data: dict[str, Any]) -> str:
    parts = [f"{_count(data['train_examples'])} train / {_count(data['eval_examples'])} eval examples"]
    for unit, value in data["amount"].items():
        parts.append(_quantity(unit, value))
    return "; ".join(parts) if data["train_examples"] is not None else f"not read here ({data['unavailable']})"


def _time(compute: dict[str, Any]) -> str:
    if compute["hours"] is None:
        return "no hardware.gpu declared: time not estimated" if compute["train_flops"] else "unknown (no data size)"
    return (f"about {duration(compute['hours'])} on {compute['devices']} x {compute['gpu']} "
            f"at {compute['utilisation']:.0%} utilisation")


def _verdict(memory: dict[str, Any]) -> str:
    budget = memory["budget_bytes"]
    if budget is None:
        return "no budget (set hardware.memory or hardware.gpu)"
    return f"{memory['verdict']} in {human(budget)}"


def _checkpoints(checkpoints: dict[str, Any]) -> str:
    each, kept = checkpoints["bytes_each"], checkpoints["kept"]
    return (f"{human(each)} each (trainable weights and optimizer state; frozen ones are not copied), "
            f"{kept} kept: {human(each * kept)}")


def text(plan: dict[str, Any]) -> str:
    params, memory, data, compute = plan["params"], plan["memory"], plan["data"], plan["compute"]
    share = params["trainable"] / params["total"] if params["total"] else 0
    assumptions = memory["assumptions"]
    lines = [
        f"{plan['recipe']}: {plan['plugin']['modality']} (plugin {plan['plugin']['plugin']})",
        f"parameters  {params['trainable']:,} of {params['total']:,} train ({share:.2%}, {params['strategy']})",
    ]
    for name, entry in params["by_module"].items():
        lines.append(f"  {name:<28} {entry['total']:>16,} total {entry['trainable']:>16,} trainable")
    lines.append(f"memory per device  ({assumptions['precision']}, micro-batch {assumptions['micro_batch']}, "
                 f"{assumptions['strategy']})")
    for key, value in memory["breakdown"].items():
        if value:
            lines.append(f"  {COMPONENTS.get(key, key):<30} {human(value):>12}")
    span = memory["range"]
    lines.append(f"  {'total':<30} {human(span['expected']):>12}  (range {human(span['low'])} to {human(span['high'])}): "
                 f"{_verdict(memory)}")
    lines += [f"  {note}" for note in assumptions["notes"]]
    for suggestion in memory["suggestions"]:
        sets = " ".join(f"--set {s}" for s in suggestion["set"])
        lines.append(f"  try: {suggestion['change']}: saves {human(suggestion['saves_bytes'])} -> "
                     f"{human(suggestion['per_device_bytes'])} ({suggestion['verdict']})  {sets}")
    lines.append(f"  host memory for loading: up to {human(memory['host_bytes'])}")
    if "host_save_bytes" in memory:
        lines.append(f"  host memory of the first process at the save (the sharded model gathered whole): "
                     f"up to {human(memory['host_save_bytes'])}")
    if plan.get("checkpoints"):
        lines.append(f"checkpoints  {_checkpoints(plan['checkpoints'])}")
    lines.append(f"data  {_amount(data)}")
    if data["balance"]:
        lines.append("  balance: " + ", ".join(f"{k} {v:,}" for k, v in data["balance"].items()))
    lines.append(f"compute  {_flops(compute['train_flops'])} FLOPs over {_count(compute['steps'])} steps; {_time(compute)}")
    if plan.get("speed"):
        lines.append(f"switches  {speed_text(plan['speed'])}")
    if "probe" in memory:
        lines += probe_lines(memory["probe"])
    if plan["warnings"]:
        lines.append("warnings")
        lines += [f"  - {warning}" for warning in plan["warnings"]]
    if plan["defaults_used"]:
        shown = ", ".join(f"{k}={v}" for k, v in list(plan["defaults_used"].items())[:12])
        more = len(plan["defaults_used"]) - 12
        lines.append(f"defaults used  {shown}" + (f" (and {more} more)" if more > 0 else ""))
    return "\n".join(lines)


def speed_text(speed: dict[str, Any]) -> str:
    """``{"speed": "auto (loss fused)", "loss": "fused", "compile": False}`` -> ``speed auto (loss fused), loss fused, compile off``."""
    word = {True: "on", False: "off"}
    return ", ".join(f"{name} {word.get(value, value) if isinstance(value, bool) else value}" for name, value in speed.items())


def probe_lines(probe: dict[str, Any]) -> list[str]:
    lines = [f"probe  {probe['steps']} real steps on {probe['device']}: estimated vs measured"]
    for key, measured in probe["measured"].items():
        estimated = probe["estimated"].get(key)
        show = _count if key == "trainable_parameters" else human
        lines.append(f"  {key:<30} {show(estimated):>14} {show(measured):>14}")
    return lines


def markdown(plan: dict[str, Any]) -> str:
    params, memory, data, compute = plan["params"], plan["memory"], plan["data"], plan["compute"]
    span = memory["range"]
    rows = [
        ("trainable parameters", f"{params['trainable']:,} of {params['total']:,} ({params['strategy']})"),
        ("memory per device", f"{human(span['expected'])} ({human(span['low'])} to {human(span['high'])}): {_verdict(memory)}"),
    ]
    rows += [(f"&nbsp;&nbsp;{COMPONENTS.get(k, k)}", human(v)) for k, v in memory["breakdown"].items() if v]
    if plan.get("checkpoints"):
        rows.append(("checkpoints", _checkpoints(plan["checkpoints"])))
    rows += [("data", _amount(data)), ("compute", f"{_flops(compute['train_flops'])} FLOPs, {_time(compute)}")]
    if plan.get("speed"):
        rows.append(("speed switches", speed_text(plan["speed"])))
    lines = [f"#### `ftrecipe plan {plan['recipe']}`", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    for suggestion in memory["suggestions"]:
        sets = " ".join(f"`--set {s}`" for s in suggestion["set"])
        lines.append(f"| try: {suggestion['change']} | saves {human(suggestion['saves_bytes'])} ({suggestion['verdict']}) {sets} |")
    if plan["warnings"]:
        lines += ["", *[f"- :warning: {warning}" for warning in plan["warnings"]]]
    return "\n".join(lines)
