"""Rules table3/table4: per-image AJI of our model against others, with Wilcoxon tests."""

from pathlib import Path

import pandas as pd

from nuclei_pa.eval.folders import checkpoint_csv
from nuclei_pa.io.coco import load_coco
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import best_checkpoint, mean_over_seeds, read_curves
from nuclei_pa.report.tables import (
    add_group_means,
    per_image_comparison,
    wilcoxon_table,
    write_table,
)

redirect_output(snakemake.log[0])
spec, models, seeds = snakemake.params.spec, snakemake.params.models, snakemake.params.seeds
curves = read_curves(models, snakemake.input.curves, len(seeds))
folders = iter(snakemake.input.evaluations)  # same order as the curves: model, then seed


def best_per_image(curve: pd.DataFrame) -> pd.DataFrame:
    """Per-image metrics of one run at its best checkpoint (the next evaluation folder)."""
    best = int(best_checkpoint(curve)["iteration"])
    return pd.read_csv(checkpoint_csv(next(folders), best))


per_image = {
    model: mean_over_seeds([best_per_image(c) for c in seed_curves])
    for model, seed_curves in curves.items()
}
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
