"""Rule derive_trainset: remove annotations or crop, as in the paper's Fig. 3, or fully
annotated regions (issue 24); the split records its annotation effort."""

from pathlib import Path

from nuclei_pa.data.derive import DeriveReport, derive
from nuclei_pa.data.effort import effort_of
from nuclei_pa.io.dataset import read_split, write_split
from nuclei_pa.io.logs import redirect_output

redirect_output(snakemake.log[0])
ts = snakemake.params.trainset
report = DeriveReport()
source = Path(snakemake.input[0]) / "train"
samples = list(
    derive(
        read_split(source),
        ts.derive,
        ts.fraction,
        snakemake.params.seed,
        report,
        count=ts.count,
        outside_fraction=ts.outside_fraction,
    )
)
effort = effort_of(samples)
write_split(
    snakemake.output[0],
    samples,
    derived_from=str(source),
    derivation=ts.derive,
    fraction=ts.fraction,
    effort_units=effort.units(),
    effort_nuclei=effort.nuclei,
    effort_regions=effort.regions,
)
print(f"{ts.name}: {report}; {effort.describe()}")
