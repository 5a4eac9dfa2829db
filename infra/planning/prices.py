"""Google Cloud list prices in USD per VM-hour, per machine type and region: one catalog's rows, one table.

Source: the SkyPilot catalog (github.com/skypilot-org/skypilot-catalog, `catalogs/v9/gcp/vms.csv` at commit
2c3d7ea7d76bf84cf80d382e946c1609571485fd, dated 2026-11-28), read on 2026-12-03: every region where the catalog
lists a3-highgpu-8g, a3-megagpu-8g, g2-standard-24 and e2-standard-8 (the same rows as the zone table in
infra/catalog.py). The catalog prices a GPU machine as a VM row (vCPU and memory) plus a GPU row: 8 x H100 for
a3-highgpu-8g, 8 x H100 Mega for a3-megagpu-8g, and twice the one-L4 row for g2-standard-24 (2 x L4). Spot prices
move up to once a day: a dated snapshot, not a quote.

One rule is applied, not guessed: the catalog gives the same on-demand figure for 8 GPUs in many regions ($33.61
for H100 in 12 regions, $35.39 for H100 Mega in 13), under half of what it lists where the figure differs by
region ($78.37-$101.88 and $82.75-$107.58), and in some regions below its own Spot figure (H100 in us-central1:
$33.61 on demand, $42.71 Spot). That repeated figure is the catalog's placeholder, not a price: those rows keep
the catalog's value for the record, but their on-demand price is withheld (a plan shows "no price" and says why);
their Spot price is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICE_SOURCE = (
    "Google Cloud list prices via the SkyPilot catalog (catalogs/v9/gcp/vms.csv, commit 2c3d7ea, dated 2026-11-28); "
    "GKE fee from cloud.google.com/kubernetes-engine/pricing"
)
PRICES_AS_OF = "2026-11-28"


@dataclass(frozen=True)
class MachinePrice:
    """USD per hour of one VM: the VM row (vCPU + memory) plus its GPUs, on-demand and Spot; None where the catalog
    has no figure or its figure is withheld (`withheld` says why)."""

    on_demand_vm: float
    on_demand_gpus: float | None
    spot_vm: float | None
    spot_gpus: float | None
    withheld: str = ""

    @property
    def on_demand(self) -> float | None:
        return None if self.on_demand_gpus is None else self.on_demand_vm + self.on_demand_gpus

    @property
    def spot(self) -> float | None:
        return None if self.spot_vm is None or self.spot_gpus is None else self.spot_vm + self.spot_gpus


# --- the catalog's rows: region -> (on-demand, Spot); None where the catalog's Spot column is empty ----------------

_A3_HIGH_VM = {
    "asia-east1": (10.95381, 4.66648),
    "asia-northeast1": (12.14861, 2.58211),
    "asia-south1": (9.83846, 3.83947),
    "asia-south2": (11.36248, 3.15723),
    "asia-southeast1": (11.67088, 4.98181),
    "australia-southeast1": (11.82508, 2.96088),
    "europe-north1": (10.41647, 1.10864),
    "europe-west1": (10.41647, 3.86922),
    "europe-west3": (11.16287, 4.15085),
    "europe-west4": (9.93306, 3.69866),
    "europe-west9": (10.97367, 2.6079),
    "us-central1": (9.46006, 5.15632),
    "us-east4": (9.46006, 3.68077),
    "us-east5": (10.65487, 3.78186),
    "us-west1": (9.46006, 5.15632),
    "us-west4": (10.65487, 3.78394),
}
_A3_MEGA_VM = {
    "asia-east1": (10.95381, 4.66648),
    "asia-northeast1": (12.14861, 2.58211),
    "asia-southeast1": (11.67088, 4.98181),
    "australia-southeast1": (11.82508, 2.96088),
    "europe-north1": (10.41647, 1.10864),
    "europe-west1": (10.41647, 3.86922),
    "europe-west3": (11.16287, 4.15085),
    "europe-west4": (9.93306, 3.69866),
    "us-central1": (9.46006, 5.15632),
    "us-east4": (9.46006, 3.68077),
    "us-east5": (10.65487, 3.78186),
    "us-west1": (9.46006, 5.15632),
    "us-west4": (10.65487, 3.78394),
}
_G2_STANDARD_24_VM = {
    "asia-east1": (1.01982, 0.45898),
    "asia-northeast1": (1.13106, 0.6528),
    "asia-northeast3": (1.13106, 0.30672),
    "asia-south1": (0.91682, 0.4043),
    "asia-southeast1": (1.08658, 0.65203),
    "europe-west1": (0.9698, 0.42432),
    "europe-west2": (1.00281, 0.57878),
    "europe-west3": (1.038, 0.57168),
    "europe-west4": (0.92571, 0.48576),
    "europe-west6": (1.15385, 0.63624),
    "me-central2": (1.4092, 0.66547),
    "northamerica-northeast1": (0.9698, 0.4871),
    "northamerica-northeast2": (0.9698, 0.49666),
    "us-central1": (0.88075, 0.4501),
    "us-east1": (0.88075, 0.4501),
    "us-east4": (0.87787, 0.38698),
    "us-west1": (0.88075, 0.4501),
    "us-west4": (0.99199, 0.54878),
}
_E2_STANDARD_8_VM = {
    "africa-south1": (0.29486, 0.08712),
    "asia-east1": (0.31037, 0.1707),
    "asia-east2": (0.37505, 0.07398),
    "asia-northeast1": (0.34386, 0.19864),
    "asia-northeast2": (0.34386, 0.09486),
    "asia-northeast3": (0.34386, 0.12946),
    "asia-south1": (0.32194, 0.1859),
    "asia-south2": (0.32194, 0.14539),
    "asia-southeast1": (0.33066, 0.18174),
    "asia-southeast2": (0.36042, 0.07226),
    "australia-southeast1": (0.38033, 0.18656),
    "australia-southeast2": (0.32326, 0.15408),
    "europe-central2": (0.32434, 0.09794),
    "europe-north1": (0.29511, 0.07472),
    "europe-north2": (0.28145, 0.06586),
    "europe-southwest1": (0.3163, 0.17387),
    "europe-west1": (0.29486, 0.13605),
    "europe-west2": (0.34534, 0.1043),
    "europe-west3": (0.34534, 0.15974),
    "europe-west4": (0.29509, 0.13432),
    "europe-west6": (0.35113, 0.12546),
    "europe-west8": (0.31093, 0.14867),
    "europe-west9": (0.31093, 0.14624),
    "europe-west10": (0.34535, 0.05846),
    "europe-west12": (0.34578, 0.07917),
    "me-central1": (0.32568, 0.12906),
    "me-central2": (0.42887, 0.21235),
    "me-west1": (0.29485, 0.13874),
    "northamerica-northeast1": (0.29509, 0.08355),
    "northamerica-northeast2": (0.29509, 0.05946),
    "northamerica-south1": (0.29217, 0.10555),
    "southamerica-east1": (0.42548, 0.07402),
    "southamerica-west1": (0.38331, 0.12634),
    "us-central1": (0.26805, 0.1547),
    "us-east1": (0.26805, 0.1547),
    "us-east4": (0.30188, 0.15765),
    "us-east5": (0.26805, 0.08454),
    "us-south1": (0.31629, 0.10728),
    "us-west1": (0.26805, 0.1547),
    "us-west2": (0.32196, 0.10456),
    "us-west3": (0.32196, 0.08922),
    "us-west4": (0.30188, 0.03822),
}
# GPU rows: the catalog's "H100" and "H100-MEGA" rows for 8 GPUs, its "L4" row for one.
_H100_X8: dict[str, tuple[float, float | None]] = {
    "asia-east1": (33.60609, 38.656),
    "asia-northeast1": (33.60609, 24.156),
    "asia-northeast3": (100.64584, 30.596),
    "asia-south1": (81.50728, 31.7992),
    "asia-south2": (33.60609, 26.1664),
    "asia-southeast1": (33.60609, 43.4912),
    "australia-southeast1": (33.60609, 24.532),
    "europe-north1": (33.60609, 9.188),
    "europe-west1": (86.29584, 32.0592),
    "europe-west2": (33.60609, 9.4896),
    "europe-west3": (92.47944, 34.3936),
    "europe-west4": (101.88413, 37.9288),
    "europe-west9": (33.60609, 21.5952),
    "northamerica-northeast2": (33.60609, 17.9384),
    "us-central1": (33.60609, 42.7096),
    "us-east4": (78.37241, 30.4792),
    "us-east5": (88.2708, 31.3336),
    "us-west1": (33.60609, 42.7096),
    "us-west4": (33.60609, 31.3544),
}
_H100_MEGA_X8: dict[str, tuple[float, float | None]] = {
    "asia-east1": (35.39149, None),
    "asia-northeast1": (35.39149, 24.3056),
    "asia-northeast3": (35.39149, None),
    "asia-south1": (35.39149, None),
    "asia-south2": (35.39149, None),
    "asia-southeast1": (35.39149, 45.816),
    "australia-southeast1": (103.44272, 33.3136),
    "europe-north1": (35.39149, None),
    "europe-west1": (35.39149, 33.9864),
    "europe-west2": (35.39149, None),
    "europe-west3": (35.39149, 43.6032),
    "europe-west4": (107.58048, 39.9536),
    "europe-west9": (35.39149, None),
    "northamerica-northeast2": (35.39149, None),
    "us-central1": (82.75421, 45.0392),
    "us-east4": (82.75424, 18.0544),
    "us-east5": (35.39149, 29.3536),
    "us-west1": (82.75421, 45.0392),
    "us-west4": (93.20608, 18.4944),
}
_L4_X1: dict[str, tuple[float, float | None]] = {
    "asia-east1": (0.64847, 0.2919),
    "asia-northeast1": (0.7192, 0.4152),
    "asia-northeast3": (0.7192, 0.1951),
    "asia-south1": (0.58298, 0.2571),
    "asia-southeast1": (0.69092, 0.4146),
    "europe-west1": (0.61666, 0.2698),
    "europe-west2": (0.63765, 0.368),
    "europe-west3": (0.66085, 0.3636),
    "europe-west4": (0.58804, 0.3089),
    "europe-west6": (0.78344, 0.432),
    "me-central2": (0.89606, 0.4232),
    "northamerica-northeast1": (0.61666, 0.3097),
    "northamerica-northeast2": (0.61666, 0.3158),
    "us-central1": (0.56004, 0.2862),
    "us-east1": (0.56004, 0.2862),
    "us-east4": (0.55821, 0.2461),
    "us-west1": (0.56004, 0.2862),
    "us-west4": (0.63077, 0.3489),
}
# The catalog's repeated on-demand figure for 8 GPUs (see the module's docstring): withheld wherever it appears.
CATALOG_PLACEHOLDERS = {"H100": 33.60609, "H100 Mega": 35.39149}


def _with_gpus(
    machine_type: str,
    vm_rows: dict[str, tuple[float, float]],
    gpu_rows: dict[str, tuple[float, float | None]],
    gpu: str,
    count: int,
) -> dict[tuple[str, str], MachinePrice]:
    """A price per region of `vm_rows`: the VM row plus `count` x the GPU row (1 for the catalog's 8-GPU rows, 2
    for g2-standard-24's two L4s), the on-demand GPU figure withheld where it is the catalog's placeholder."""
    prices = {}
    for region, (vm, vm_spot) in vm_rows.items():
        gpus, gpus_spot = gpu_rows[region]
        placeholder = CATALOG_PLACEHOLDERS.get(gpu) == gpus
        withheld = (
            f"the catalog's ${gpus:.2f} on demand for its {gpu} GPUs in {region} is its placeholder (the same "
            f"figure in {sum(row[0] == gpus for row in gpu_rows.values())} regions; infra/planning/prices.py), "
            "not a price"
            if placeholder
            else ""
        )
        prices[(machine_type, region)] = MachinePrice(
            on_demand_vm=vm,
            on_demand_gpus=None if placeholder else count * gpus,
            spot_vm=vm_spot,
            spot_gpus=None if gpus_spot is None else count * gpus_spot,
            withheld=withheld,
        )
    return prices


# (machine type, region) -> price. E2 is priced per vCPU and GB, so e2-standard-16 is twice e2-standard-8 (computed).
PRICES: dict[tuple[str, str], MachinePrice] = {
    **_with_gpus("a3-highgpu-8g", _A3_HIGH_VM, _H100_X8, "H100", 1),
    **_with_gpus("a3-megagpu-8g", _A3_MEGA_VM, _H100_MEGA_X8, "H100 Mega", 1),
    **_with_gpus("g2-standard-24", _G2_STANDARD_24_VM, _L4_X1, "L4", 2),
    **{("e2-standard-8", region): MachinePrice(vm, 0.0, spot, 0.0) for region, (vm, spot) in _E2_STANDARD_8_VM.items()},
    **{
        ("e2-standard-16", region): MachinePrice(2 * vm, 0.0, 2 * spot, 0.0)
        for region, (vm, spot) in _E2_STANDARD_8_VM.items()
    },
}
