"""Parameters and FLOPs of the fixed CIFAR network of a CNN-space architecture.

    python experiments/count_params.py --arch naonet_ws --layers 5 --channels 36 --classes 10
    python experiments/count_params.py --arch naonet --layers 6 --channels 128
    python experiments/count_params.py --arch outputs/.../best_genotype.json --layers 5 --channels 36

``--arch`` is a published name (``naonet_ws``: NAO-WS, 5 ops; ``naonet``: NAO, 11 ops) or a genotype
.json; the space (conf/space/cnn.yaml or cnn_nao.yaml) is the first whose ops the architecture uses,
unless ``--space`` names one. Parameters exclude the auxiliary head, as papers report them
(NAO-WS paper: 2.5M at N=5, F=36). FLOPs are of one 32x32 image at inference, two per multiply-add.
"""

from __future__ import annotations

import argparse

from hydra.utils import instantiate

from common import load_config
from naolit.models.cnn import NASNetwork, count_flops, count_parameters
from naolit.spaces import CNNCellSpace, InvalidArchitecture


def resolve(ref: str, space_names: list[str]) -> tuple[str, CNNCellSpace, tuple[int, ...]]:
    """The first of ``space_names`` (conf/space configs) that holds ``ref``, and the architecture."""
    errors = []
    for name in space_names:
        space = instantiate(load_config([f"space={name}"]).space)
        try:
            return name, space, space.resolve(ref)
        except InvalidArchitecture as err:
            errors.append(f"space={name}: {err}")
    raise SystemExit("--arch {!r} fits none of the spaces:\n  {}".format(ref, "\n  ".join(errors)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, help="published name (naonet_ws, naonet) or genotype .json")
    parser.add_argument("--layers", type=int, default=5, help="N: normal cells per stage (3N+2 cells)")
    parser.add_argument("--channels", type=int, default=36, help="F: channels of the first stage")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--space", choices=["cnn", "cnn_nao"], help="default: the first that fits")
    args = parser.parse_args()

    space_name, space, arch = resolve(args.arch, [args.space] if args.space else ["cnn", "cnn_nao"])
    net = NASNetwork(space, arch, num_classes=args.classes, layers=args.layers, channels=args.channels,
                     auxiliary=True)
    params, flops = count_parameters(net), count_flops(net, (3, 32, 32))
    print(f"arch={args.arch} space={space_name} layers={args.layers} channels={args.channels} "
          f"classes={args.classes}")
    print(f"params={params} ({params / 1e6:.2f}M, without the auxiliary head)")
    print(f"flops={flops} ({flops / 1e6:.0f}M FLOPs = {flops / 2e6:.0f}M multiply-adds per 32x32 image)")


if __name__ == "__main__":
    main()
