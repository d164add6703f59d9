"""Every constructor parameter of the configuration classes and of the video predictor / tracker is documented.

In the style of transformers' configuration classes, the class docstring has an `Args:` section with one entry
per `__init__` parameter (`self` and `**kwargs` aside): `name (type, ...):` followed by an indented, non-empty
description. A class whose `__init__` only forwards `**kwargs` to its parent's (the video prompt encoder and mask
decoder configs) documents its parent's parameters. The predictor's and tracker's `from_pretrained` parameters
are documented in the same section (entries marked "from_pretrained only"), their `**kwargs` as `kwargs`.
"""

from __future__ import annotations

import inspect
import re

import pytest
from transformers import PreTrainedConfig

from sam2_hf.models import configuration as configuration_sam2
from sam2_hf.predictors.video_predictor import Sam2VideoPredictor
from sam2_hf.tasks.tracker import Sam2Tracker, TrackingStream

ENTRY = re.compile(r"^(?P<name>\w+) \((?P<type>.*)\):(?P<rest>.*)$")
SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

CONFIG_CLASSES = [
    cls
    for name, cls in vars(configuration_sam2).items()
    if inspect.isclass(cls)
    and issubclass(cls, PreTrainedConfig)
    and cls.__module__ == configuration_sam2.__name__
    and not name.startswith("_")
]
# class -> the constructors whose parameters its docstring documents
VIDEO_CLASSES = {
    Sam2VideoPredictor: ("__init__", "from_pretrained"),
    Sam2Tracker: ("__init__", "from_pretrained"),
    TrackingStream: ("__init__",),
}


def args_section(doc: str | None) -> dict[str, tuple[str, str]]:
    """The `Args:` section of a docstring: {name: (type text, description)}; {} when there is none.

    Entries are the lines at the section's first indentation that read `name (type):`; a description is the
    text after the colon plus the more deeply indented lines below it. The section ends at the first non-blank
    line indented no deeper than `Args:` itself.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    header = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if header is None:
        return {}
    header_indent = len(lines[header]) - len(lines[header].lstrip())
    entries: dict[str, tuple[str, list[str]]] = {}
    entry_indent, current = None, None
    for line in lines[header + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= header_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        match = ENTRY.match(line.strip()) if indent == entry_indent else None
        if match is not None:
            current = match["name"]
            entries[current] = (match["type"], [match["rest"].strip()])
        elif current is not None and indent > entry_indent:
            entries[current][1].append(line.strip())
    return {name: (kind, " ".join(part for part in text if part)) for name, (kind, text) in entries.items()}


def own_parameters(function) -> list[inspect.Parameter]:
    """The named parameters of a function or bound classmethod (`self` and *args / **kwargs left out)."""
    params = list(inspect.signature(function).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [p for p in params if p.kind not in SKIPPED_KINDS]


def config_parameters(cls) -> list[inspect.Parameter]:
    """The parameters `cls(...)` takes by name: those of the nearest `__init__` in this module that names any
    (a subclass whose `__init__` only forwards **kwargs takes its parent's)."""
    for klass in cls.__mro__:
        if klass.__module__ != configuration_sam2.__name__:
            break
        if "__init__" in vars(klass):
            params = own_parameters(vars(klass)["__init__"])
            if params:
                return params
    return []


def problems(cls, params: list[inspect.Parameter], allowed_extra=()) -> list[str]:
    """What is wrong with the documentation of `params` in `cls`'s docstring (an empty list: nothing)."""
    documented = args_section(cls.__doc__)
    if not documented:
        return [f"{cls.__name__}'s docstring has no `Args:` section"]
    found = []
    missing = [p.name for p in params if p.name not in documented]
    if missing:
        found.append(f"not documented in {cls.__name__}'s Args: {missing}")
    empty = [name for name, (_, text) in documented.items() if not text]
    if empty:
        found.append(f"documented with an empty description in {cls.__name__}'s Args: {empty}")
    no_type = [name for name, (kind, _) in documented.items() if not kind.strip()]
    if no_type:
        found.append(f"documented without a type in {cls.__name__}'s Args: {no_type}")
    no_default = [
        p.name
        for p in params
        if p.default is not inspect.Parameter.empty
        and p.name in documented
        and "defaults to" not in documented[p.name][0]
    ]
    if no_default:
        found.append(f"optional but without 'defaults to ...' in {cls.__name__}'s Args: {no_default}")
    known = {p.name for p in params} | set(allowed_extra)
    stale = [name for name in documented if name not in known]
    if stale:
        found.append(f"documented in {cls.__name__}'s Args but not a parameter: {stale}")
    return found


def test_every_config_class_is_checked():
    names = {cls.__name__ for cls in CONFIG_CLASSES}
    assert names == {
        "Sam2HieraDetConfig",
        "Sam2VisionConfig",
        "Sam2PromptEncoderConfig",
        "Sam2MaskDecoderConfig",
        "Sam2VideoPromptEncoderConfig",
        "Sam2VideoMaskDecoderConfig",
        "Sam2Config",
        "Sam2VideoConfig",
    }


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda cls: cls.__name__)
def test_config_fields_are_documented(cls):
    params = config_parameters(cls)
    assert params, f"{cls.__name__}.__init__ names no parameters"
    found = problems(cls, params)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("cls", list(VIDEO_CLASSES), ids=lambda cls: cls.__name__)
def test_video_options_are_documented(cls):
    params = [p for method in VIDEO_CLASSES[cls] for p in own_parameters(getattr(cls, method))]
    takes_kwargs = any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for method in VIDEO_CLASSES[cls]
        for p in inspect.signature(getattr(cls, method)).parameters.values()
    )
    found = problems(cls, params, allowed_extra=("kwargs",) if takes_kwargs else ())
    if takes_kwargs and "kwargs" not in args_section(cls.__doc__):
        found.append(f"{cls.__name__}'s Args does not describe **kwargs (as `kwargs`)")
    assert not found, "\n".join(found)


def test_the_check_reports_an_undocumented_parameter():
    """The checker itself: a missing entry, an empty description and a stale entry are all reported."""

    class Example:
        """An example.

        Args:
            alpha (`int`, *optional*, defaults to 1):
                Documented.
            beta (`int`):
            gamma (`int`):
                Not a parameter any more.

        Returns:
            nothing (`None`): a later section is not part of Args.
        """

        def __init__(self, alpha=1, beta=2, delta=3, **kwargs):
            pass

    found = "\n".join(problems(Example, own_parameters(Example.__init__)))
    assert "not documented in Example's Args: ['delta']" in found
    assert "empty description in Example's Args: ['beta']" in found
    assert "without 'defaults to ...' in Example's Args: ['beta']" in found
    assert "not a parameter: ['gamma']" in found
    assert "nothing" not in args_section(Example.__doc__)
