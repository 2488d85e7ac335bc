"""Weight-space averages of lifters of one architecture (WiSE-FT, Wortsman et al. 2022; model soups): the
`wise_*` and `soup_all` rows of README.md.

usage: python soup.py OUT_DIR '{"name": {"a.pt": 0.5, "b.pt": 0.5}, ...}'   (weights of each mix sum to 1)
"""
import json
import sys
from pathlib import Path

from mvcapture.lifter.weights import load_dstformer, save_lifter


def main(out: Path, spec: dict) -> None:
    for name, mix in spec.items():
        models = {path: load_dstformer(path)[0] for path in mix}  # (model, card)
        states = {path: m.state_dict() for path, m in models.items()}
        first = next(iter(states.values()))
        mixed = {k: sum(w * states[p][k].float() for p, w in mix.items()).to(first[k].dtype) for k in first}
        model = next(iter(models.values()))
        model.load_state_dict(mixed)
        save_lifter(model, out / f"{name}.pt", card={"name": f"weight average {name}", "version": name, "mix": mix})
        print("wrote", out / f"{name}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
