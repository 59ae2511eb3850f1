#!/usr/bin/env bash
# Shows that validate.sh can fail: the shipped dashboard must validate, and each broken copy
# of it below must be rejected with the error that names what is wrong. Run by .ci/run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dashboard="$here/../mtids.json"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# name | JavaScript that breaks `d` (the parsed dashboard) | text the rejection must contain
cases=(
    'unknown-panel-key|d.panels[0].gridPosition = d.panels[0].gridPos|"gridPosition"'"'"' does not exist'
    'gridpos-wrong-type|d.panels[0].gridPos = "0,0,12,8"|Type '"'"'string'"'"' is not assignable'
    'unknown-option-key|d.panels[2].options.legend.colour = "red"|"colour"'"'"' does not exist'
    'bad-enum-value|d.panels[2].options.tooltip.mode = "all"|Type '"'"'"all"'"'"' is not assignable'
    'unknown-target-key|d.panels[2].targets[0].exprr = d.panels[2].targets[0].expr|"exprr"'"'"' does not exist'
    'custom-wrong-type|d.panels[2].fieldConfig.defaults.custom = { lineWidth: "thick" }|Type '"'"'string'"'"' is not assignable to type '"'"'number'"'"''
    'missing-required-option|delete d.panels[0].options.reduceOptions|reduceOptions'
    'wrong-schema-version|d.schemaVersion = 40|Type '"'"'40'"'"' is not assignable to type '"'"'39'"'"''
    'unknown-panel-type|d.panels[0].type = "nosuchpanel"|no panelcfg schema for panel type "nosuchpanel"'
)

files=("$dashboard")
for c in "${cases[@]}"; do
    IFS='|' read -r name js _ <<<"$c"
    node -e 'const fs = require("fs"); const d = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
             '"$js"'; fs.writeFileSync(process.argv[2], JSON.stringify(d, null, 2));' "$dashboard" "$tmp/$name.json"
    files+=("$tmp/$name.json")
done

set +e
"$here/validate.sh" "${files[@]}" >"$tmp/out" 2>&1
status=$?
set -e

fail=0
grep -qxF "valid $(realpath "$dashboard") (@grafana/schema $(node -p "require('$here/node_modules/@grafana/schema/package.json').version"), schemaVersion 39)" "$tmp/out" \
    || { echo "test.sh: the shipped dashboard did not validate" >&2; fail=1; }
[ "$status" -ne 0 ] || { echo "test.sh: validate.sh exited 0 with broken dashboards among its inputs" >&2; fail=1; }
for c in "${cases[@]}"; do
    IFS='|' read -r name _ expect <<<"$c"
    # The errors for a file come right before its INVALID line (and after the previous verdict).
    section="$(awk -v f="$tmp/$name.json" '/^(valid|INVALID) / { if (index($0, f) && $1 == "INVALID") { print buf $0; exit } buf = ""; next } { buf = buf $0 "\n" }' "$tmp/out")"
    if [ -z "$section" ]; then
        echo "test.sh: $name: not rejected" >&2; fail=1
    elif ! grep -qF -- "$expect" <<<"$section"; then
        echo "test.sh: $name: rejected, but without the expected error: $expect" >&2; fail=1
    else
        echo "ok: $name rejected ($expect)"
    fi
done
if [ "$fail" -ne 0 ]; then
    echo "--- validate.sh output:" >&2; cat "$tmp/out" >&2
    exit 1
fi
echo "test.sh: the dashboard validates and all ${#cases[@]} broken copies are rejected"
