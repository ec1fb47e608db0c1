"""The Explorer's design search: the Pareto front under a compute budget, previewed live, then built.

A part of the *Strategies* tab. *Search* runs :func:`~rf_widgets.strategies.search` for the shown stack
at the shown input size under the budget typed beside it; the front is drawn (compute against waste,
:func:`~rf_widgets.strategies.views.plot_front`) and listed in a dropdown: the picks first, then the
original, then the other candidates of the front. Choosing one previews it in every view of the
Explorer through the state (:meth:`ExplorerState.show_design`: analysed first, committed only if that
succeeds, one Undo step back to the searched stack). *Build module* builds the shown candidate from the
torch model (torch.fx surgery on a copy; the model is not touched) and keeps it in :attr:`FrontView.built`.
With ``Explorer(..., interactive=True)`` (ipympl) the front is a canvas, and a click on a mark previews
that candidate.

Every refusal (a bad budget, a model no edit applies to, a stale search, no torch model to build from)
is reported in the Explorer's message line and leaves its state as it was.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from rf_widgets import _format
from rf_widgets.errors import RFError

if TYPE_CHECKING:
    from rf_widgets.core.graph import Stack
    from rf_widgets.strategies.budget import Candidate, Front
    from rf_widgets.strategies.views import FrontPlot
    from rf_widgets.widgets.state import ExplorerState

__all__ = ["FrontView", "front_panel"]

DEFAULT_BUDGET = 1.0
PICKED_FIRST = ("efficiency", "performance", "hybrid")


def front_panel(controls: dict[str, widgets.Widget]) -> widgets.Widget:
    """The budget, Search, the candidate choice, Build module, the front's picture and the details."""
    budget = widgets.BoundedFloatText(
        value=DEFAULT_BUDGET,
        min=0.0,
        max=1e6,
        step=0.5,
        description="Budget",
        tooltip="compute ceiling as a ratio of the shown network's multiply-adds",
        layout=widgets.Layout(width="170px"),
    ).add_class("rfw-front-budget")
    search = widgets.Button(
        description="Search front",
        tooltip="combine the edits (strides, pools, stem, trim, input size) and keep the Pareto front",
    ).add_class("rfw-front-search")
    choice = widgets.Dropdown(
        options=[], value=None, description="Candidate", layout=widgets.Layout(width="480px")
    ).add_class("rfw-front-choice")
    build = widgets.Button(
        description="Build module",
        tooltip="build the shown candidate from the torch model (a copy; the model is not changed)",
        disabled=True,
    ).add_class("rfw-front-build")
    # Hidden until a search draws the front: an Image without bytes shows a broken-image icon.
    picture = widgets.Image(format="png", layout=widgets.Layout(max_width="760px", display="none")).add_class(
        "rfw-front-plot"
    )
    details = widgets.HTML().add_class("rfw-front-details")
    controls.update(
        front_budget=budget, front_search=search, front_choice=choice, front_build=build,
        front_plot=picture, front_details=details,
    )  # fmt: skip
    title = widgets.HTML("<b>Pareto front under a compute budget</b>")
    box = widgets.VBox([title, widgets.HBox([budget, search, choice, build]), picture, details])
    controls["front_box"] = box
    return box


class FrontView:
    """Wires the front panel of an :class:`~rf_widgets.widgets.explorer.Explorer` to its state.

    Attributes
    ----------
    front : Front or None
        The last search (None before Search is pressed).
    plot : FrontPlot or None
        The picture of :attr:`front`.
    built : torch.nn.Module or None
        The module *Build module* made last.
    """

    def __init__(
        self,
        state: ExplorerState,
        controls: dict[str, Any],
        *,
        interactive: bool,
        act: Callable[[Callable[[], str]], None],
        report: Callable[[str, bool], None],
        export_json: Callable[[], str],
    ) -> None:
        # what the panel needs of the Explorer it sits in, handed over (this module does not import it)
        self.state = state
        self.controls = controls
        self.interactive = interactive
        self._run = act
        self._report = report
        self._export_json = export_json
        self.front: Front | None = None
        self.plot: FrontPlot | None = None
        self.built: Any = None
        # What the search ran on: the stack, its history position, the input size, and whether the
        # candidates can be built as torch modules.
        self._base: tuple[Stack, int, tuple[int, ...], bool] | None = None
        self._syncing = False
        self._ringed: Candidate | None = None
        c = self.controls
        c["front_search"].on_click(lambda _: self._act(self.search))
        c["front_build"].on_click(lambda _: self._act(self.build))
        c["front_choice"].observe(self._on_choice, names="value")
        self.state.observe(lambda _: self.show(), names="revision")

    # -- actions ----------------------------------------------------------------------------------------

    def search(self) -> str:
        """Search the shown stack at the shown size under the typed budget (a refusal changes nothing)."""
        from rf_widgets.strategies import search
        from rf_widgets.strategies.views import plot_front

        state, budget = self.state, self.controls["front_budget"].value
        if not budget > 0:
            raise RFError(f"the budget must be a positive ratio of the multiply-adds, got {budget:g}")
        # The torch model gives the exact prediction and a module to build; once the stack was edited
        # here, the search works on the edited stack.
        torch_model = state.model is not None and state.stack is state.original
        source = state.model if torch_model else state.stack
        with self._busy(f"{_format.size(state.resolution)} px under {budget:g}x"):
            try:
                front = search(source, state.resolution, budget=budget, name=state.stack.name)
            except RFError:
                raise
            except Exception as err:  # the search may run the user's model
                raise RFError(f"the search failed ({type(err).__name__}: {err})") from None
        self.front = front
        self._base = (state.stack, state.position, tuple(state.resolution), torch_model)
        self.plot = plot_front(front)
        if self.interactive:
            self._clickable(self.plot)
        self._ringed = None
        self.show(redraw=True)
        counts = f"{len(front)} candidates, {len(front.pareto)} on the front within {budget:g}x"
        picks = [p for p in front.picks.values() if p is not None]
        if not picks:
            return f"{counts}; no pick (see below why)"
        if all(not p.edits for p in picks):
            return f"{counts}; no edit improves {front.model_name}: every pick is the original"
        found = ", ".join(name for name in PICKED_FIRST if front.picks.get(name) is not None)
        return f"{counts}; picks: {found}"

    def preview(self, index: int) -> str:
        """Show candidate ``index`` of the front in every view (-1: the stack the search ran on)."""
        if self.front is None or self._base is None:
            raise RFError("press Search front first")
        stack, position, size, _ = self._base
        if index < 0:
            return self.state.show_design((stack, position), None, size, "showing the searched stack")
        candidate = self.front[index]
        if candidate.refused:
            raise RFError(f"'{candidate.label}' is over the budget: {candidate.refused}")
        shown = None if candidate is self.front.original else candidate.stack
        what = f"previewing: {candidate.label} (Undo goes back)"
        return self.state.show_design((stack, position), shown, candidate.input_size, what)

    def build(self) -> str:
        """Build the shown candidate as a torch module (kept in :attr:`built`)."""
        candidate = self.shown()
        if self.front is None or self._base is None:
            raise RFError("press Search front first")
        if candidate is None:
            raise RFError("the shown stack is none of the front's candidates: choose one first")
        if self.state.model is None:
            raise RFError(
                "building a module needs a torch model; this Explorer shows a declared stack "
                "(the previewed stack is in the Export tab as JSON or Python)"
            )
        if not self._base[3]:
            raise RFError(
                "the search ran on the edited stack, not on the torch model: Reset, then Search front again"
            )
        if not candidate.edits:
            raise RFError("the original is shown: nothing to build")
        try:
            module = candidate.apply(self.state.model)
        except RFError:
            raise
        except Exception as err:  # surgery runs the user's model once
            raise RFError(f"building '{candidate.label}' failed ({type(err).__name__}: {err})") from None
        self.built = module
        self._export_json()  # the built candidate's layer graph, readable in any front end
        params = sum(p.numel() for p in module.parameters())
        size = _format.size(candidate.input_size)
        return (
            f"built {type(module).__name__} ({_format.count(params)} parameters, feed it {size}); the "
            "model you passed is unchanged. Its layer graph is in the Export tab; in a notebook the module "
            "is this Explorer's front_view.built"
        )

    # -- reading ----------------------------------------------------------------------------------------

    def shown(self) -> Candidate | None:
        """The candidate the Explorer shows now, if it shows one of the last search's."""
        if self.front is None or self._base is None:
            return None
        state = self.state
        stack, _, size, _ = self._base
        if state.stack is stack and tuple(state.resolution) == size:
            return self.front.original
        for candidate in self.front:
            if candidate.stack is state.stack and tuple(state.resolution) == tuple(candidate.input_size):
                return candidate
        return None

    # -- showing ----------------------------------------------------------------------------------------

    def _options(self) -> list[tuple[str, int]]:
        front = self.front
        if front is None:
            return []
        position = {id(c): i for i, c in enumerate(front)}
        options = [("(the searched stack)", -1)]
        listed: set[int] = set()
        picks = [front.picks.get(name) for name in PICKED_FIRST]
        for pick in picks:
            if pick is not None and id(pick) not in listed:
                # one line per candidate: picks that coincide share it
                names = ", ".join(n for n, p in zip(PICKED_FIRST, picks, strict=True) if p is pick)
                options.append((f"{names}: {_short(pick)}", position[id(pick)]))
                listed.add(id(pick))
        for candidate in sorted(front.pareto, key=lambda c: c.macs):
            if id(candidate) not in listed:
                options.append((f"front: {_short(candidate)}", position[id(candidate)]))
                listed.add(id(candidate))
        return options

    def show(self, redraw: bool = False) -> None:
        """Bring the choice, the ring on the picture, the details and Build up to date with the state."""
        c = self.controls
        candidate = self.shown()
        options = self._options()
        value: int | None = None
        if candidate is not None and self.front is not None:
            value = next(i for i, x in enumerate(self.front) if x is candidate)
            if candidate is self.front.original:
                value = -1 if not any(v == value for _, v in options) else value
            if not any(v == value for _, v in options):  # shown, but not listed (off the front)
                options.append((f"other: {_short(candidate)}", value))
        self._syncing = True
        try:
            if list(c["front_choice"].options) != options:
                c["front_choice"].options = options
            c["front_choice"].value = value
        finally:
            self._syncing = False
        c["front_build"].disabled = candidate is None or not candidate.edits
        if self.plot is not None and (redraw or candidate is not self._ringed):
            self.plot.select(candidate)
            self._ringed = candidate
            if self.interactive:
                self.plot.figure.canvas.draw_idle()  # ipympl sends the frame itself
            else:
                c["front_plot"].value = _png(self.plot)
                c["front_plot"].layout.display = None
        c["front_details"].value = self._details(candidate)

    def _details(self, candidate: Candidate | None) -> str:
        front = self.front
        if front is None:
            return ""
        lines = []
        for name in PICKED_FIRST:
            pick = front.picks.get(name)
            text = pick.label if pick is not None else f"none: {front.reasons.get(name, '')}"
            lines.append(f"{name}: {text}")
        if candidate is not None:
            lines += ["", "shown: " + candidate.describe()]
        elif self.state.stack is not self._base_stack():
            lines += ["", "shown: none of the front's candidates (Undo goes back to the searched stack)"]
        return f"<pre style='white-space:pre-wrap;margin:2px 0'>{html.escape(chr(10).join(lines))}</pre>"

    def _base_stack(self) -> Stack | None:
        return None if self._base is None else self._base[0]

    def _clickable(self, plot: FrontPlot) -> None:
        """Show ``plot`` as an ipympl canvas in place of the picture; a click previews the nearest mark."""
        from rf_widgets.widgets.renderer import _interactive_canvas

        canvas = _interactive_canvas(plot.figure)
        canvas.mpl_connect("button_press_event", self._on_click)
        box = self.controls["front_box"]
        old = self.controls.get("front_canvas", self.controls["front_plot"])  # an earlier search's canvas
        box.children = tuple(canvas if child is old else child for child in box.children)
        self.controls["front_canvas"] = canvas

    def _on_click(self, event: Any) -> None:
        """A click on the front previews the candidate drawn nearest to it (within a few pixels)."""
        if self.plot is None or self.front is None or event.inaxes is not self.plot.ax:
            return
        if event.xdata is None or event.ydata is None:
            return
        candidate = self.plot.nearest(event.xdata, event.ydata)
        if candidate is None:
            return
        index = next(i for i, c in enumerate(self.front) if c is candidate)
        self._act(lambda: self.preview(index))

    def _on_choice(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] is None:
            return
        index = int(change["new"])
        self._act(lambda: self.preview(index))

    @contextmanager
    def _busy(self, what: str) -> Iterator[None]:
        """Say that a search runs while it runs (it takes seconds): the button is off, the line says so.

        Widget changes made inside a click handler reach the browser at once, so the user sees this
        before the search starts; the button comes back however the search ends.
        """
        button = self.controls["front_search"]
        label = button.description
        self._report(f"Searching the front of {self.state.stack.name} at {what}...", False)
        button.description, button.disabled = "Searching...", True
        try:
            yield
        finally:
            button.description, button.disabled = label, False

    def _act(self, action: Callable[[], str]) -> None:
        """Run an action the Explorer's way (a refusal is reported), then put this panel back in step."""
        try:
            self._run(action)
        finally:
            self.show()


def _short(candidate: Candidate) -> str:
    """A candidate in a dropdown line: its edits, compute ratio and unproductive count."""
    return (
        f"{candidate.label} ({candidate.macs_ratio:.2f}x, {candidate.unproductive_count} unproductive, "
        f"depth {candidate.productive_depth})"
    )


def _png(plot: FrontPlot) -> bytes:
    buffer = io.BytesIO()
    plot.figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()
