"""Rule findings: the paper's claims, one by one, PASS or FAIL on this run (never fails the run)."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import read_curves
from nuclei_pa.report.findings import check_claims, write_findings

redirect_output(snakemake.log[0])
roles, seeds = snakemake.params.roles, snakemake.params.seeds
curves = read_curves(list(roles.values()), snakemake.input.curves, len(seeds))
findings = check_claims(curves, roles)
write_findings(findings, snakemake.output.md, snakemake.output.csv, seeds, roles)
for f in findings:
    print(f"claim {f.claim}: {'PASS' if f.passed else 'FAIL'}  {f.measured}")
