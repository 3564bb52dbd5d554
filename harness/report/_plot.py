"""What every figure of the report shares: safe labels, one layout, one colour per variant.

plotly renders text with a subset of HTML (``<b>``, ``<br>``, entities) and
typesets ``$…$`` as LaTeX, so every string from the data goes through
``label`` before it reaches a figure: markup is escaped (plotly turns
``&lt;`` back into a visible ``<``) and ``$`` becomes ``&#36;``.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative

__all__ = ["CRITICAL", "OFF_PATH", "QUEUED", "colors", "label", "layout"]

CRITICAL = "#d62728"
OFF_PATH = "#7f9fbf"
QUEUED = "#d9d9d9"


def label(value: Any) -> str:
    """Text from the data, safe for plotly: markup escaped, no LaTeX."""
    return html.escape(str(value), quote=False).replace("$", "&#36;")


def colors(keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """One colour per (scenario, variant), the same in every figure."""
    palette = qualitative.Plotly
    return {key: palette[i % len(palette)] for i, key in enumerate(dict.fromkeys(keys))}


def layout(fig: go.Figure, x_title: str, y_title: str, **extra: Any) -> go.Figure:
    """The report's look, and a title with its unit on both axes."""
    fig.update_layout(
        template="plotly_white",
        height=extra.pop("height", 380),
        margin={"l": 60, "r": 50, "t": 40, "b": 50},
        font={"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12},
        # Above the plot (below it, a long legend runs into the x-axis title), with the
        # tool bar standing on the right so that the two never overlap.
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        modebar={"orientation": "v"},
        **extra,
    )
    fig.update_xaxes(title_text=x_title, automargin=True)
    fig.update_yaxes(title_text=y_title, automargin=True)
    return fig
