// Writes a TypeScript file that declares a Grafana dashboard JSON as object literals of
// Grafana's own generated types (@grafana/schema), so that `tsc` checks it: every key
// must be one the schema knows (excess-property checks apply to every nested object
// literal), every value must have the schema's type. See validate.sh for why and sources.
//
// usage: node gen-check.mjs DASHBOARD.json OUT.ts
//
// Checked, each against the type Grafana generates from its CUE kinds:
//   - the dashboard (minus the export-only keys below) as `Dashboard`;
//   - each panel's `options` as that panel plugin's `Options`, and its
//     `fieldConfig.defaults.custom` as the plugin's `FieldConfig` (when it has one);
//   - each panel's `targets` as its data source's query type (e.g. `PrometheusDataQuery`);
//   - `__inputs` / `__requires` (keys the import UI reads, not part of the kind) as the
//     shapes Grafana's exporter writes (DashboardExporter.ts, cited in validate.sh).
// A panel type or data source type the package has no schema for is an error: nothing
// goes unchecked silently.

import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCHEMA_VERSION = 39;
const here = dirname(fileURLToPath(import.meta.url));
const raw = join(here, 'node_modules/@grafana/schema/dist/esm/raw/composable');

function fail(msg) {
  console.error(`gen-check: ${msg}`);
  process.exit(1);
}

const [dashPath, outPath] = process.argv.slice(2);
if (!dashPath || !outPath) fail('usage: node gen-check.mjs DASHBOARD.json OUT.ts');

let dash;
try {
  dash = JSON.parse(readFileSync(dashPath, 'utf8'));
} catch (e) {
  fail(`${dashPath}: ${e.message}`);
}
if (typeof dash !== 'object' || dash === null || Array.isArray(dash)) fail(`${dashPath}: not a JSON object`);

/** The generated .d.ts of a composable kind (`panelcfg` or `dataquery`) for a plugin id, or null. */
function kindFile(pluginId, kind) {
  if (!/^[a-z0-9-]+$/.test(String(pluginId))) return null;
  const dir = join(raw, pluginId, kind, 'x');
  if (!existsSync(dir)) return null;
  const file = readdirSync(dir).find((f) => f.endsWith('_types.gen.d.ts'));
  return file ? join(dir, file) : null;
}

const imports = new Map(); // alias -> module path
function importKind(pluginId, kind) {
  const file = kindFile(pluginId, kind);
  if (!file) return null;
  const alias = `${kind}_${pluginId.replace(/-/g, '_')}`;
  const module = '@grafana/schema/' + file.slice(file.indexOf('dist/esm/')).replace(/\.d\.ts$/, '');
  imports.set(alias, module);
  return { alias, text: readFileSync(file, 'utf8') };
}

const lit = (v) => JSON.stringify(v, null, 2);
const checks = [];
const { __inputs, __requires, __elements, ...model } = dash;

if (__elements !== undefined) fail('__elements (library panels) is not checked by this script; remove it or extend the script');
checks.push(`// export-only keys, shaped as Grafana's DashboardExporter writes them
const inputs: ExportInput[] = ${lit(__inputs ?? [])};
const requires: ExportRequire[] = ${lit(__requires ?? [])};`);

checks.push(`// the schema version this check is pinned to
const schemaVersion: ${SCHEMA_VERSION} = ${lit(model.schemaVersion ?? null)};`);

const panels = Array.isArray(model.panels) ? model.panels : [];
const flat = panels.flatMap((p) => (p && p.type === 'row' && Array.isArray(p.panels) ? [p, ...p.panels] : [p]));
flat.forEach((panel, i) => {
  if (!panel || typeof panel !== 'object' || panel.type === 'row') return;
  const name = `panel ${i} (id ${panel.id}, ${lit(panel.type)}, ${lit(panel.title ?? '')})`.replace(/\*\//g, '*\\/');
  const cfg = importKind(panel.type, 'panelcfg');
  if (!cfg) fail(`${name}: @grafana/schema has no panelcfg schema for panel type ${lit(panel.type)}`);
  checks.push(`// ${name}: options
const panel${i}_options: Json<${cfg.alias}.Options> = ${lit(panel.options ?? {})};`);
  const custom = panel.fieldConfig?.defaults?.custom;
  if (custom !== undefined) {
    if (!/export interface FieldConfig\b/.test(cfg.text)) {
      fail(`${name}: fieldConfig.defaults.custom is set but panel type ${lit(panel.type)} has no FieldConfig in its schema`);
    }
    checks.push(`// ${name}: fieldConfig.defaults.custom
const panel${i}_custom: Json<${cfg.alias}.FieldConfig> = ${lit(custom)};`);
  }
  (panel.targets ?? []).forEach((target, t) => {
    const dsType = target?.datasource?.type ?? panel.datasource?.type;
    const q = dsType && importKind(dsType, 'dataquery');
    if (!q) fail(`${name}: target ${t}: @grafana/schema has no dataquery schema for data source type ${lit(dsType)}`);
    const iface = /export interface (\w+) extends common\.DataQuery/.exec(q.text);
    if (!iface) fail(`${name}: target ${t}: no DataQuery interface found for data source type ${lit(dsType)}`);
    checks.push(`// ${name}: target ${t}
const panel${i}_target${t}: Json<${q.alias}.${iface[1]}> = ${lit(target)};`);
  });
});

checks.push(`// the dashboard itself
const dashboard: Json<Dashboard> = ${lit(model)};`);

const header = `// Generated by gen-check.mjs from ${dashPath.replace(/\n/g, ' ')}; do not edit.
import type { Dashboard } from '@grafana/schema';
${[...imports].map(([alias, mod]) => `import type * as ${alias} from '${mod}';`).join('\n')}

// JSON carries enum values as their strings: accept "absolute" where the type says
// ThresholdsMode.Absolute, and nothing else.
type Json<T> = T extends string
  ? \`\${T}\`
  : T extends number | boolean | null | undefined
    ? T
    : T extends Array<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

// The keys Grafana's dashboard export adds for the import UI (DashboardExporter.ts).
interface ExportInput {
  name: string;
  label: string;
  description: string;
  type: 'datasource' | 'constant';
  pluginId?: string;
  pluginName?: string;
  value?: string;
}
interface ExportRequire {
  type: 'grafana' | 'datasource' | 'panel';
  id: string;
  name: string;
  version: string;
}
`;

writeFileSync(outPath, `${header}\n${checks.join('\n\n')}\n\nexport { inputs, requires, schemaVersion, dashboard };\n`);
