"""ipywidgets helpers: live controls in JupyterLab, nothing in report runs.

In a report (``WORKBENCH_REPORT=1``) a widget cannot work — there is no
kernel — so :func:`panel` displays nothing and the static chart shown just
above it stands in its place. Controls update charts from pre-aggregated
frames (no engine query per change) so a change answers in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench import viz


def panel(controls: dict[str, Any], update: Callable[..., Any], title: str = "") -> Any:
    """Show ``controls`` (name → ipywidget) and a plotly FigureWidget-free output area.

    ``update(**values)`` returns a plotly figure for the current control values; it is
    called once now and again on every change. Returns the container widget, or
    ``None`` in report mode.
    """
    if viz.report_mode():
        return None
    import ipywidgets as w
    from IPython.display import display

    out = w.Output()

    def redraw(_: Any = None) -> None:
        fig = update(**{k: c.value for k, c in controls.items()})
        with out:
            out.clear_output(wait=True)
            if fig is not None:
                fig.show()

    for control in controls.values():
        control.observe(redraw, names="value")
        if hasattr(control, "style") and hasattr(control.style, "description_width"):
            control.style.description_width = "initial"  # translated labels are not cut off
    header = [w.HTML(f"<b>{viz.html.escape(title)}</b>")] if title else []
    row = w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap", gap="4px 24px"))
    box = w.VBox(header + [row, out])
    display(box)
    redraw()
    return box
