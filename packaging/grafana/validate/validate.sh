#!/usr/bin/env bash
# Validates a Grafana dashboard JSON (default: ../mtids.json) against Grafana's own schema
# for the version it targets. Exit status 0: valid; non-zero: the errors are printed.
#
# usage: packaging/grafana/validate/validate.sh [DASHBOARD.json ...]
# Each dashboard gets a line "valid PATH" or "INVALID PATH" (with the errors before it).
#
# What "Grafana's schema" is here, and why this check:
# - mtids.json has "schemaVersion": 39. Grafana's dashboard migrator moved to 39 with
#   grafana/grafana PR #76801 ("Transformations: Allow Timeseries to table transformation
#   to handle multiple time series": the timeSeriesTable migration, ported to the backend as
#   apps/dashboard/pkg/migration/schemaversion/v39.go, PR #99631), released in Grafana
#   10.2.3 (.changelog-archive/CHANGELOG.10.md, "10.2.3 (2023-12-18)"). 10.4, the release
#   the dashboard's __requires names, comes after it (and Grafana migrates a dashboard at
#   an older schemaVersion up on load, so later releases import it too).
# - Grafana publishes the TypeScript types it generates from its CUE kinds
#   (kinds/dashboard/dashboard_kind.cue and each panel's and data source's composable kind)
#   as the npm package @grafana/schema, versioned with Grafana. We pin @grafana/schema
#   10.4.19 (package-lock.json) and type-check the dashboard with TypeScript: gen-check.mjs
#   writes it as object literals of type Dashboard, each panel's options/custom field config
#   as that panel's Options/FieldConfig, each target as PrometheusDataQuery, so unknown keys
#   and wrong types anywhere are errors. Why not something else: Grafana publishes no JSON
#   Schema for these (v1) dashboards; no Grafana server is packaged for Debian; `cue vet`
#   against the kinds would need Grafana's CUE module tree (kindsys, packages/grafana-schema/
#   src/common), which ships in no package (not even @grafana/schema), only in the
#   repository. The npm types are generated from exactly those kinds, and TypeScript's
#   excess-property checks make every object closed, which the kinds' open structs are not.
# - __inputs/__requires are not in the kind (the import UI reads them); they are checked
#   against the shapes public/app/features/dashboard/components/DashExportModal/
#   DashboardExporter.ts writes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -gt 0 ] || set -- "$here/../mtids.json"
dashboards=()
for d in "$@"; do dashboards+=("$(realpath "$d")"); done
cd "$here"

# Exactly the locked versions, every run (about a second with npm's cache warm).
npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
schema="@grafana/schema $(node -p 'require("@grafana/schema/package.json").version')"

# tsc names files relative to the current directory: keep the work directory relative.
work="$(basename "$(mktemp -d "$here/.check.XXXXXX")")"
trap 'rm -rf "$work"' EXIT
# One generated file per dashboard, one tsc run over all of them (tsc's start-up is most of
# the time), then each dashboard's verdict from the errors reported in its own file.
generated=()
declare -A gen_failed=()
for i in "${!dashboards[@]}"; do
    if msg="$(node gen-check.mjs "${dashboards[$i]}" "$work/d$i.ts" 2>&1)"; then
        generated+=("$work/d$i.ts")
    else
        gen_failed[$i]="$msg"
    fi
done
tsc_out=""
tsc_status=0
if [ ${#generated[@]} -gt 0 ]; then
    tsc_out="$(node_modules/.bin/tsc --noEmit --strict --skipLibCheck --pretty false \
        --target es2020 --module esnext --moduleResolution node "${generated[@]}" 2>&1)" || tsc_status=$?
fi
# tsc failing for any other reason (errors outside the generated files, a broken install)
# fails the run: nothing counts as valid unless tsc itself said so.
if { [ "$tsc_status" -ne 0 ] && ! printf '%s\n' "$tsc_out" | grep -qF "$work/d"; } ||
    printf '%s\n' "$tsc_out" | grep 'error TS' | grep -qvF "$work/d"; then
    printf '%s\n' "$tsc_out" >&2
    echo "validate.sh: tsc failed (exit $tsc_status) outside the dashboards it checks" >&2
    exit 1
fi
status=0
for i in "${!dashboards[@]}"; do
    # An error line names its file; indented lines after it elaborate the same error.
    errors="$(printf '%s\n' "$tsc_out" | awk -v f="$work/d$i.ts(" \
        'index($0, f) == 1 { on = 1; print; next } /^[^ ]/ { on = 0 } on { print }')"
    if [ -n "${gen_failed[$i]:-}" ] || [ -n "$errors" ]; then
        [ -z "${gen_failed[$i]:-}" ] || printf '%s\n' "${gen_failed[$i]}" >&2
        # Each error with the block it is in (the generated file's "// panel ..." comment)
        # and the offending line, since the generated file is deleted on exit.
        printf '%s\n' "$errors" | while IFS= read -r line; do
            [ -n "$line" ] || continue
            printf '%s\n' "$line"
            if [[ "$line" =~ ^"$work/d$i.ts("([0-9]+), ]]; then
                awk -v n="${BASH_REMATCH[1]}" 'NR <= n && /^\/\/ / { c = $0 } NR == n { print "    in " c; print "    > " $0; exit }' "$work/d$i.ts"
            fi
        done >&2
        echo "INVALID ${dashboards[$i]}: does not match Grafana's schema ($schema, schemaVersion 39)" >&2
        status=1
    else
        echo "valid ${dashboards[$i]} ($schema, schemaVersion 39)"
    fi
done
exit $status
