"""Rules table3/table4: per-image AJI of our model against others, with Wilcoxon tests; every
model at its validation-chosen checkpoint and threshold (its final checkpoint without one)."""

from pathlib import Path

import pandas as pd

from nuclei_pa.io.coco import load_coco
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import mean_over_seeds, read_choices
from nuclei_pa.report.tables import (
    add_group_means,
    per_image_comparison,
    wilcoxon_table,
    write_table,
)

redirect_output(snakemake.log[0])
spec, models, seeds = snakemake.params.spec, snakemake.params.models, snakemake.params.seeds
# each run at the checkpoint and threshold its validation images chose (else its final one)
chosen, runs = read_choices(models, snakemake.input.chosen, snakemake.input.tests, len(seeds))
per_image = {model: mean_over_seeds(runs[model]) for model in models}
per_image["Otsu + watershed"] = pd.read_csv(snakemake.input.classical)  # what users have already
coco = load_coco(Path(snakemake.input.dataset) / "test" / "annotations.json")
style_group = {s: g for g, styles in snakemake.params.groups.items() for s in styles}
# Real Kumar images carry their group; synthetic ones a style (organ) the config maps to a group.
groups = {
    Path(i["file_name"]).stem: i.get("group") or style_group.get(i.get("style", ""), "other")
    for i in coco.images.values()
}
groups = groups if style_group or any(i.get("group") for i in coco.images.values()) else None
published = pd.read_csv(spec["published"]) if spec.get("published") else None
table = per_image_comparison(per_image, "aji", groups, published)
others = [c for c in table.columns if c not in ("image", "group", models[0])]
tests = wilcoxon_table(table, models[0], others) if len(table) >= 2 else pd.DataFrame()
if not others:
    note = "(no comparison methods configured)"
elif len(tests):
    note = tests.to_markdown(index=False, floatfmt=".4g")
else:
    note = "(too few test images for a test)"
footer = "Paired two-sided Wilcoxon signed-rank tests over test images:\n\n" + note
write_table(tests, snakemake.output.tests)
write_table(
    add_group_means(table),
    snakemake.output.csv,
    snakemake.output.md,
    title=f"{snakemake.wildcards.table}: per-image AJI on the {spec['dataset']} test split",
    footer=footer,
)
