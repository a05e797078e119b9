"""A griffe extension for the docs build: reads jaxreg's docstrings as they are written.

jaxreg's docstrings are Google style with Sphinx-flavoured inline markup (they doctest as
written). Before mkdocstrings parses them, this extension

* turns an ``Example:`` section into ``Examples:`` (griffe's Google parser renders only
  ``Examples`` as code; ``Example`` would become an admonition whose ``>>>`` lines read
  as Markdown);
* turns Sphinx roles (``:func:`x```, ``:class:`x```, ...) into inline code.

Used from ``mkdocs.yml`` (``extensions: [scripts/griffe_docstrings.py]``); not part of
the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|py:\w+):`~?([^`]+)`")


def rewrite(text: str) -> str:
    """The docstring text as mkdocstrings should read it.

    >>> rewrite("Sum.\\n\\nExample:\\n  >>> 1\\n")
    'Sum.\\n\\nExamples:\\n  >>> 1\\n'
    >>> rewrite("See :func:`jaxreg.l1_prox` and :class:`~optax.GradientTransformation`.")
    'See `jaxreg.l1_prox` and `optax.GradientTransformation`.'
    """
    return _ROLE.sub(r"`\1`", _EXAMPLE.sub(r"\1Examples:", text))


class JaxregDocstrings(griffe.Extension):
    """Rewrites every docstring once, when griffe loads the object."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
