"""``--plot``: grid load per phase against the limit, and each vehicle's energy against its need."""

from __future__ import annotations

from pathlib import Path

from controller.model.site import PHASES
from controller.simulate.result import SimResult
from controller.simulate.scenario import Scenario


def plot_result(scenario: Scenario, result: SimResult, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tz = scenario.tz
    times = [t.astimezone(tz) for t in result.series["t"]]
    fig, (ax_load, ax_energy) = plt.subplots(2, 1, figsize=(12, 8), sharex=True, constrained_layout=True)
    fig.suptitle(f"{scenario.site.site.name} — {scenario.name} — policy {result.policy}")
    for p, name in enumerate(PHASES):
        ax_load.plot(times, [load[p] for load in result.series["grid_a"]], label=f"grid {name}", linewidth=1)
    site = scenario.site
    ax_load.axhline(site.grid.limit_a, color="red", linestyle="--", label="limit")
    ax_load.axhline(site.grid.limit_a - site.grid.margin_a, color="orange", linestyle=":", label="limit − margin")
    ax_load.set_ylabel("grid current [A]")
    ax_load.legend(loc="upper left", ncol=5, fontsize="small")
    energy_by_key: dict[str, list[tuple[object, float]]] = {}
    for t, snapshot in zip(times, result.series["energy"], strict=True):
        for key, kwh in snapshot.items():
            energy_by_key.setdefault(key, []).append((t, kwh))
    for outcome in result.sessions:
        points = energy_by_key.get(outcome.key, [])
        if not points:
            continue
        line = ax_energy.plot([p[0] for p in points], [p[1] for p in points], linewidth=1)[0]
        color = line.get_color()
        if outcome.past_end:  # departs after the window: neither met nor missed, the need drawn to the end
            ax_energy.hlines(outcome.requested_kwh, outcome.arrive, times[-1], colors=color, linestyles=":")
            continue
        ax_energy.hlines(outcome.requested_kwh, outcome.arrive, outcome.depart, colors=color, linestyles=":")
        ax_energy.plot([outcome.depart], [outcome.requested_kwh], marker="o" if outcome.met else "x", color=color)
    ax_energy.set_ylabel("energy delivered [kWh]")
    ax_energy.set_xlabel(f"site time ({scenario.site.site.timezone}); dotted: need, o met / x missed at departure")
    fig.savefig(out, dpi=100)
    plt.close(fig)
