"""The optional compiled parts of dojang: the scan's inner loops (src/dojang/scan/_fast.c) and the
image reader's per-pixel loops (src/dojang/image/_splat.c).

Everything else is in pyproject.toml. Where no C compiler is available the extension is skipped
(``optional=True``) and scans use numpy and the Python pre-tokenizer, the image reader numpy, with
the same results."""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dojang.scan._fast",
            ["src/dojang/scan/_fast.c"],
            optional=True,
            extra_compile_args=["-O3"] if os.name == "posix" else [],
            libraries=["m"] if os.name == "posix" else [],
        ),
        Extension(
            "dojang.image._splat",
            ["src/dojang/image/_splat.c"],
            optional=True,
            extra_compile_args=["-O3"] if os.name == "posix" else [],
            libraries=["m"] if os.name == "posix" else [],
        ),
    ]
)
