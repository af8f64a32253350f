"""The emoji attack per scheme: ``benchmarks/suites/emoji.toml`` run by the workbench once for
each scheme, under a fresh key each, gathered into one results file (``docs/bench.md`` explains
why every context-hashing scheme fails here; this measures how far).

    python benchmarks/bench_emoji.py --out docs/benchmarks/bench-emoji.json && make docs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dojang.bench import TextSuite, load_suite, run_text
from dojang.bench._tables import run_meta

SUITE = Path(__file__).resolve().parent / "suites" / "emoji.toml"
SCHEMES = ("default", "distortion-free", "kgw", "robust")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--out", default="bench-out/bench-emoji.json")
    args = parser.parse_args()
    suite = load_suite(str(SUITE), "text")
    assert isinstance(suite, TextSuite)
    runs = []
    for scheme in args.schemes.split(","):
        t0 = time.perf_counter()
        result = run_text(suite, scheme=scheme).to_dict()
        result["scheme"] = scheme
        for a in result["attacks"]:  # the per-text p-values and ROC points are not shown on the page
            a.pop("log10_p_values", None)
            a.pop("roc", None)
        result["null"].pop("log10_p_values", None)
        runs.append(result)
        print(f"{scheme}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    meta = run_meta("python benchmarks/bench_emoji.py " + " ".join(sys.argv[1:]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": runs, "meta": meta}, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
