"""The log-log scaling plot (time against object size per backend), shared by the notebook and the docs generator."""

from __future__ import annotations

from typing import Any

BACKEND_STYLE = {"pickle": ("tab:blue", "o"), "cloudpickle": ("tab:green", "s"), "dill": ("tab:red", "^"),
                 "anypickle": ("black", "D")}
FAMILY_LABELS = {"ints": "list of n ints", "strings": "dict of n short strings",
                 "main instances": "n instances of a __main__ class", "functions": "n distinct __main__ functions",
                 "deep": "n nested lists (depth n)", "wide graph": "n dicts sharing 16 records"}


def scaling_from(docs: list[dict]) -> dict[str, dict[str, Any]]:
    """{family: {"sizes": [...], "curves": {backend: {n: {"dumps", "loads", "size"}}}}}, best time over runs."""
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for bench in doc["benchmarks"]:
            scaling = bench.get("extra_info", {}).get("scaling")
            if not scaling:
                continue
            family = out.setdefault(scaling["family"], {"sizes": scaling["sizes"], "curves": {}})
            for backend, points in scaling["curves"].items():
                mine = family["curves"].setdefault(backend, {})
                for n, point in points.items():
                    if "dumps" not in point:  # the backend failed at this size (its own limit)
                        mine.setdefault(n, point)
                        continue
                    old = mine.get(n)
                    if old is None or "dumps" not in old:
                        mine[n] = dict(point)
                    else:
                        old["dumps"], old["loads"] = min(old["dumps"], point["dumps"]), min(old["loads"], point["loads"])
    return out


def plot_scaling(scaling: dict[str, dict[str, Any]], path: "str | None" = None, title: str = ""):
    """One column per family, rows dumps time, loads time and size; log-log; returns the figure."""
    import matplotlib.pyplot as plt

    families = list(scaling)
    fig, axes = plt.subplots(3, len(families), figsize=(3.2 * len(families), 8.5), squeeze=False)
    for col, family in enumerate(families):
        data = scaling[family]
        for row, (field, label) in enumerate((("dumps", "dumps time (s)"), ("loads", "loads time (s)"),
                                              ("size", "payload size (bytes)"))):
            ax = axes[row][col]
            for backend, points in data["curves"].items():
                xs = [int(n) for n in points if field in points[n]]
                ys = [points[str(n)][field] for n in xs]
                if not xs:
                    continue
                color, marker = BACKEND_STYLE.get(backend, ("grey", "."))
                ax.plot(xs, ys, marker=marker, color=color, label="anypickle auto" if backend == "anypickle" else backend,
                        lw=1.6 if backend == "anypickle" else 1.0, ms=4, alpha=0.9, zorder=3 if backend == "anypickle" else 2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both", lw=0.4)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                failed = [f"{b} fails from n={min(int(n) for n, p in points.items() if 'error' in p)}"
                          for b, points in data["curves"].items() if any("error" in p for p in points.values())]
                ax.set_title(FAMILY_LABELS.get(family, family) + "".join(f"\n({f})" for f in failed), fontsize=9)
            if row == 2:
                ax.set_xlabel("n")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0]:  # the code families have no pickle line: gather every backend once
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(title or "Time and size against object size (log-log)", y=1.04)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=90, bbox_inches="tight")
    return fig
