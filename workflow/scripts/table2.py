"""Rule table2: size and speed of each model."""

import json
from pathlib import Path

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.tables import table2, write_table

redirect_output(snakemake.log[0])
numbers = {
    m: json.loads(Path(p).read_text())
    for m, p in zip(snakemake.params.models, snakemake.input, strict=True)
}
write_table(
    table2(numbers),
    snakemake.output.csv,
    snakemake.output.md,
    title="Table 2. Size and speed of each model",
)
