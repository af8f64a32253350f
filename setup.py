"""The optional compiled parts of dojang: the scan's inner loops (src/dojang/scan/_fast.c) and the
image reader's per-pixel loops (src/dojang/image/_splat.c).

Everything else is in pyproject.toml. Where no C compiler is available the extension is skipped
(``optional=True``) and scans use numpy and the Python pre-tokenizer, the image reader numpy, with
the same results."""

import os

from setuptools import Extension, setup


def optional(name: str, source: str) -> Extension:
    """A C extension that is skipped (with its numpy fallback used) where it does not build."""
    posix = os.name == "posix"
    return Extension(name, [source], optional=True, extra_compile_args=["-O3", "-ffp-contract=off"] if posix else [], libraries=["m"] if posix else [])


setup(
    ext_modules=[
        optional("dojang.scan._fast", "src/dojang/scan/_fast.c"),
        optional("dojang.image._splat", "src/dojang/image/_splat.c"),
    ]
)
