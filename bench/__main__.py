"""``python -m bench NAME``: e2e, cache, scaling, guarantee, sweep, padding, model (the model ceiling),
or all."""

from __future__ import annotations

import sys

from bench import e2e


def main(argv: list[str]) -> int:
    names = argv or ["all"]
    if names == ["model"]:
        from bench.model_ceiling import main as model_main

        return model_main([])
    texts = e2e.load_texts()
    chosen = ["e2e", "cache", "scaling", "guarantee", "sweep", "padding"] if names == ["all"] else names
    for name in chosen:
        print(f"\n=== {name}")
        getattr(e2e, name)(texts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
