"""Links that reopen a view: the page's query string describes what it shows, and opening it reopens that view.

``?model=demo&image=gallery:shapes 1 (cross, square, triangle)&block=stages.1.blocks.0&tab=slot&slot=3&pixel=40,52``

* :class:`ViewState` - the fields of a link, one per query parameter. A view with more to say (a run browser:
  ``run``, ``image_id``; an atlas: ``atlas``, ``concept``) adds fields here; each field is read and written by its
  type (text, a whole number, a pair ``y,x``) with no code of its own.
* :func:`read_query` / :meth:`ViewState.to_query` - query string to state and back. Every value is checked: text of
  letters, digits and ``space _ . , ( ) + - / :`` only (at most 300 characters), numbers of at most 7 digits;
  anything else is dropped with a one-line reason. Nothing in a link is ever executed.
* :func:`resolve_file` - ``"<folder>:<relative path>"`` to a file, only inside the folders the app was started with
  (:func:`glmix_viz.app.options.folders`): no absolute paths, no ``..``, no link that leads out of the folder.
* :func:`opened`, :func:`note`, :func:`publish` - the session's side: the link the page was opened with (read once),
  what the page shows now (the page and its views note it as they draw), and the query string kept up to date;
  :func:`reopen` opens another view in the same session as if its link had been opened.
* :func:`refuse` - what the page says about a value it could not use: one line per parameter, naming the parameter,
  its value (as literal text, never markup) and what opened instead (:func:`problems`, shown once at the top).
* :func:`share_url` - the address a "Copy link" button gives (:func:`glmix_viz.app.main.copy_link`).

References to files: a model is ``demo``, ``random:<variant>``, ``checkpoints:<file>`` or ``upload:<sha1>``; an
image is ``gallery:<name>`` or ``upload:<sha1>`` (uploads are kept in the upload store under their content digest,
:mod:`glmix_viz.app.store`; one no longer there is said plainly).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlencode, urlsplit

import streamlit as st

from glmix_viz.errors import GlmixVizError

SAFE_TEXT = re.compile(r"[A-Za-z0-9 _.,()+\-/:]{1,300}")
NUMBER = re.compile(r"[0-9]{1,7}")
PAIR = re.compile(r"([0-9]{1,7}),([0-9]{1,7})")
SAFE_PART = re.compile(r"[A-Za-z0-9 _.,()+\-]{1,120}")
OPENED, PROBLEMS, CURRENT, ROUTED = "link::opened", "link::problems", "link::current", "link::routed"
PAGES = ("runs", "atlas")
"""Values of ``page=``: the pages besides the explorer (which a link names by leaving ``page`` out)."""


class LinkError(GlmixVizError):
    """A link's value that cannot be used (one line saying which and why); ``parameter``: the link's parameter it
    is about, when known."""

    def __init__(self, message: str, parameter: Optional[str] = None) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class ViewState:
    """What a view shows, as its link says it; every field optional (None: not said).

    Attributes:
        model: the model: ``demo``, ``random:<variant>``, ``checkpoints:<file>``, ``upload:<sha1>``.
        image: the image: ``gallery:<name>``, ``upload:<sha1>``.
        block: the GLMix block (its path, e.g. ``stages.1.blocks.0``).
        slot: the slot of the Slot & pixel tab.
        pixel: ``(y, x)`` of the Slot & pixel tab.
        tab: the open tab (a view's slug, :data:`glmix_viz.app.views.VIEWS`).
        method: the pseudo-mask's method.
        resolution: the network input's longer side.
        page: ``runs`` for the run browser (:mod:`glmix_viz.app.runs`), ``atlas`` for the atlas page; the explorer
            otherwise.
        run: a run folder, by its path relative to ``--runs`` (one the run browser lists).
        image_id: an image of that run's split (in the run browser, or opened from it in the explorer's tabs).
    """

    model: Optional[str] = None
    image: Optional[str] = None
    block: Optional[str] = None
    slot: Optional[int] = None
    pixel: Optional[Tuple[int, int]] = None
    tab: Optional[str] = None
    method: Optional[str] = None
    resolution: Optional[int] = None
    page: Optional[str] = None
    run: Optional[str] = None
    image_id: Optional[str] = None

    def to_query(self) -> Dict[str, str]:
        """The query parameters of the fields that are set, in field order."""
        query = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is not None:
                query[item.name] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        return query

    def replace(self, **changes: Any) -> "ViewState":
        return dataclasses.replace(self, **changes)


def _kinds(cls: type) -> Dict[str, Any]:
    """Field name -> the type inside its ``Optional[...]``."""
    hints = typing.get_type_hints(cls)
    return {item.name: next(arg for arg in typing.get_args(hints[item.name]) if arg is not type(None))
            for item in dataclasses.fields(cls)}


def parse_value(name: str, kind: Any, text: str) -> Any:
    """One query value by its field's kind: text, a whole number or a pair ``y,x``.

    Raises:
        LinkError: a value of another shape or with characters a link never needs.
    """
    if kind is int:
        if not NUMBER.fullmatch(text):
            raise LinkError(f"link: {name}={literal(text)} is not a whole number; ignored")
        return int(text)
    if typing.get_origin(kind) is tuple:
        match = PAIR.fullmatch(text)
        if not match:
            raise LinkError(f"link: {name}={literal(text)} is not a pair of whole numbers 'y,x'; ignored")
        return int(match.group(1)), int(match.group(2))
    if not SAFE_TEXT.fullmatch(text):
        raise LinkError(f"link: {name}={literal(text)} has characters a link never holds (or is empty or too long); "
                        "ignored")
    return text


def literal(value: Any, limit: int = 60) -> str:
    """A link's value as the page shows it: one line of at most ``limit`` characters in a code span, so that nothing
    in it is read as markup (backticks and control characters become ``?``)."""
    text = "".join(ch if ch.isprintable() and ch != "`" else "?" for ch in str(value))
    return f"`{text[:limit]}{'...' if len(text) > limit else ''}`"


def read_query(query: Mapping[str, Any], cls: type = ViewState) -> Tuple[Any, List[str]]:
    """A :class:`ViewState` (or a subclass) from query parameters, and one line per value left out.

    Unknown parameters are ignored; a parameter given several times counts by its last value; ``page`` is one of
    :data:`PAGES`.
    """
    values, problems = {}, []
    for name, kind in _kinds(cls).items():
        raw = query.get(name)
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else None
        if raw is None:
            continue
        try:
            values[name] = parse_value(name, kind, str(raw))
        except LinkError as error:
            problems.append(str(error))
    if values.get("page") is not None and values["page"] not in PAGES:
        problems.append(f"link: page={literal(values.pop('page'))} is no page of this app (runs, atlas); "
                        "opened the explorer instead")
    return cls(**values), problems


def resolve_file(ref: str, roots: Mapping[str, Path]) -> Path:
    """The file a reference ``"<folder>:<relative path>"`` names, inside one of ``roots`` (name -> folder).

    Raises:
        LinkError: an unknown folder, an absolute path, ``..`` or odd characters in the path, a path that leads out
            of its folder (through a symbolic link, say), or no such file.
    """
    root_name, separator, relative = ref.partition(":")
    if not separator or root_name not in roots:
        raise LinkError(f"names no folder this app was started with ({', '.join(sorted(roots)) or 'none'})")
    parts = relative.split("/")  # not normalised: "a//b", "./a" and "a/../b" are refused, not tidied up
    if any(part in ("..", ".") or not SAFE_PART.fullmatch(part) for part in parts):
        raise LinkError(f"is not a plain relative path inside the folder {root_name} (no '..', '.', '//')")
    root = Path(roots[root_name]).resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root):
        raise LinkError(f"leads outside the folder {root_name}")
    if not path.is_file():
        raise LinkError(f"is no file in the folder {root_name}")
    return path


# ----------------------------------------------------------------------------------------------------------------------
# The session's side
# ----------------------------------------------------------------------------------------------------------------------


def opened() -> ViewState:
    """The state the page's link asked for, read from the query string once per session."""
    if OPENED not in st.session_state:
        state, problems = read_query(st.query_params.to_dict())
        st.session_state[OPENED] = state
        st.session_state[PROBLEMS] = {problem.partition("=")[0]: problem for problem in problems}
        st.session_state[CURRENT] = state
    return st.session_state[OPENED]


def complain(problem: str, parameter: Optional[str] = None) -> None:
    """Add one line to what the page says about its link; one line per ``parameter`` (the first said stays)."""
    problems = st.session_state.setdefault(PROBLEMS, {})
    problems.setdefault(parameter or problem, problem)


def refuse(name: str, value: Any, why: str, instead: str) -> None:
    """Say once that the link's ``name=value`` could not be used, why, and what the page opened instead:
    ``link: block=`x` is not a GLMix block of this model; opened stages.0.blocks.0 instead``."""
    complain(f"link: {name}={literal(value)} {why}; {instead}", parameter=f"link: {name}")


def problems() -> List[str]:
    """What could not be reopened from the link, one line each (at most one per parameter)."""
    return list(st.session_state.get(PROBLEMS, {}).values())


def share_url(query: Mapping[str, str], base: Optional[str] = None) -> str:
    """The address that reopens ``query``: ``base`` (the page's address as the browser has it, without its query;
    default ``st.context.url``, absent outside a browser) followed by the query string."""
    base = (base if base is not None else (getattr(st.context, "url", None) or "")).split("?")[0]
    parts = urlsplit(base)
    if parts.netloc and not parts.path:  # "http://host:8501" -> "http://host:8501/"
        base += "/"
    text = urlencode(dict(query), quote_via=lambda value, *_: quote(value, safe=",:"))
    return f"{base}?{text}" if text else base or "?"


def for_subject(model_ref: str, image_ref: str) -> ViewState:
    """The opened link's state when this is its model and image (or it names neither), else an empty one: a link's
    block, slot, pixel ... belong to its model and image."""
    state = opened()
    same_model = state.model is None or state.model == model_ref
    same_image = state.image is None or state.image == image_ref
    return state if same_model and same_image else type(state)()


def note(**fields: Any) -> ViewState:
    """Record what the page shows now (``note(block=..., tab=...)``); a new model forgets the block, slot and pixel
    of the last one, a new image its pixel, a new block its slot. Returns the state now."""
    current: ViewState = st.session_state.get(CURRENT) or ViewState()
    if "model" in fields and fields["model"] != current.model:
        current = current.replace(block=None, slot=None, pixel=None, resolution=None)
    if "image" in fields and fields["image"] != current.image:
        current = current.replace(pixel=None)
    if "block" in fields and fields["block"] != current.block:
        current = current.replace(slot=None)
    current = current.replace(**{name: value if value != "" else None for name, value in fields.items()})
    st.session_state[CURRENT] = current
    return current


def publish() -> Dict[str, str]:
    """Write what the page shows into the query string (when it changed); returns the query."""
    query = (st.session_state.get(CURRENT) or ViewState()).to_query()
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    return query


def reopen(state: ViewState) -> None:
    """Open another view in this session as if its link had been opened (a run browser's "open this image in the
    grouping tabs"): the query string becomes ``state`` and the next run puts its model, image, tab ... into the
    widgets. Does not return (reruns the page)."""
    forget(state)
    st.rerun()


def forget(state: ViewState) -> None:
    """Make ``state`` the link of the session's next run (the query string, read again; its page chosen again)."""
    st.query_params.from_dict(state.to_query())
    for key in (OPENED, PROBLEMS, CURRENT, ROUTED):
        st.session_state.pop(key, None)
