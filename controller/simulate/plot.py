"""``--plot``: grid load per phase against the limit; grid import with its peak line and the energy
price; each vehicle's energy against its need."""

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
    fig, (ax_load, ax_import, ax_energy) = plt.subplots(
        3, 1, figsize=(12, 11), sharex=True, constrained_layout=True, height_ratios=(3, 2, 3)
    )
    fig.suptitle(f"{scenario.site.site.name} — {scenario.name} — policy {result.policy}")
    for p, name in enumerate(PHASES):
        ax_load.plot(times, [load[p] for load in result.series["grid_a"]], label=f"grid {name}", linewidth=1)
    site = scenario.site
    ax_load.axhline(site.grid.limit_a, color="red", linestyle="--", label="limit")
    ax_load.axhline(site.grid.limit_a - site.grid.margin_a, color="orange", linestyle=":", label="limit − margin")
    ax_load.set_ylabel("grid current [A]")
    ax_load.legend(loc="upper left", ncol=5, fontsize="small")
    bill = result.bill
    ax_import.step(times, result.series["import_kw"], where="post", color="black", linewidth=1, label="grid import")
    if bill is not None:
        ax_import.axhline(
            bill.peak_kw, color="purple", linestyle="--", label=f"peak ({bill.peak_window_min} min average)"
        )
        if result.priced:
            ax_import.set_title(
                f"cost {bill.cost_total:.2f} {bill.currency}: energy {bill.cost_energy:.2f}, demand "
                f"{bill.cost_demand:.2f}",
                fontsize="small",
            )
    ax_import.set_ylabel("grid import [kW]")
    ax_import.legend(loc="upper left", fontsize="small")
    if result.priced:
        ax_price = ax_import.twinx()
        currency = bill.currency if bill is not None else ""
        ax_price.step(times, result.series["price"], where="post", color="green", linewidth=1, alpha=0.7)
        ax_price.set_ylabel(f"price [{currency}/kWh]", color="green")
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
