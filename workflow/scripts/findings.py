"""Rule findings: the paper's claims, one by one, with intervals (never fails the run)."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import read_runs
from nuclei_pa.report.findings import check_claims, write_findings

redirect_output(snakemake.log[0])
roles, seeds = snakemake.params.roles, snakemake.params.seeds
runs = read_runs(list(roles.values()), snakemake.input.evaluations, len(seeds))
findings = check_claims(runs, roles)
write_findings(findings, snakemake.output.md, snakemake.output.csv, seeds, roles)
for f in findings:
    print(f"claim {f.claim}: {f.verdict}  {f.measured}")
