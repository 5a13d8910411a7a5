//! Keeps `docs/spec.md` (the spec file reference) and the parser from drifting apart:
//! every `yaml` block of the reference (and of the README) and every file of
//! `deploy/examples/` goes through `load`, the local path of `labctl apply` and
//! `labctl apply --check`; every documented section lists exactly the fields its serde struct
//! accepts, every enum field exactly the values serde accepts; and every serde struct and enum
//! of the spec format has a section. The accepted names come from serde itself: a probe key or
//! value is refused with "unknown field `__probe__`, expected one of `a`, `b`".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::doc::*;
use super::doc_backup::*;
use super::schedule::{MissedDoc, ScheduleDoc, ScheduleSpecDoc};
use super::*;
use crate::cmd::jobs::RunFormat;

const SPEC_MD: &str = include_str!("../../../../docs/spec.md");
const README: &str = include_str!("../../../../README.md");
/// The sources whose serde types make up the spec format.
const SOURCES: [(&str, &str); 3] = [
    ("doc.rs", include_str!("doc.rs")),
    ("doc_backup.rs", include_str!("doc_backup.rs")),
    ("schedule.rs", include_str!("schedule.rs")),
];

/// A serde type's name (without its module path) and the names it accepts.
struct Probe {
    name: &'static str,
    names: BTreeSet<String>,
}

fn short_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// The backquoted names after "expected" in a serde error, e.g. from "unknown field
/// `__probe__`, expected one of `a`, `b`" or "unknown variant `__probe__`, expected `a`".
fn expected_names(what: &str, message: &str) -> BTreeSet<String> {
    let Some((_, tail)) = message.split_once(", expected ") else {
        panic!("{what}: serde's message names no expected values: {message}");
    };
    let names: BTreeSet<String> = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(
        !names.is_empty(),
        "{what}: no names in serde's message: {message}"
    );
    names
}

/// The field names struct `T` accepts, read from serde's error for an unknown key.
fn fields<T: DeserializeOwned + std::fmt::Debug>() -> Probe {
    let name = short_name::<T>();
    match serde_yaml_ng::from_str::<T>("{__probe__: 1}") {
        Ok(v) => panic!("{name} accepted an unknown field: {v:?}"),
        Err(e) => Probe {
            name,
            names: expected_names(name, &e.to_string()),
        },
    }
}

/// The values enum `T` accepts, read from serde's error for an unknown variant.
fn variants<T: DeserializeOwned + std::fmt::Debug>() -> Probe {
    let name = short_name::<T>();
    match serde_yaml_ng::from_str::<T>("__probe__") {
        Ok(v) => panic!("{name} accepted an unknown value: {v:?}"),
        Err(e) => Probe {
            name,
            names: expected_names(name, &e.to_string()),
        },
    }
}

/// Every section of docs/spec.md that documents a serde struct: (heading without `#` and
/// backquotes, struct). A new struct in doc.rs, doc_backup.rs or schedule.rs must be added here
/// and documented (see `every_spec_struct_and_enum_is_covered`).
fn sections() -> Vec<(&'static str, Probe)> {
    vec![
        ("kind: Job", fields::<JobDoc>()),
        ("metadata", fields::<Metadata>()),
        ("spec (Job)", fields::<JobSpecDoc>()),
        ("spec.rollout", fields::<RolloutDoc>()),
        ("spec.task", fields::<TaskDoc>()),
        ("task.exec", fields::<ExecDoc>()),
        ("task.config", fields::<ConfigDoc>()),
        ("config.resources[]", fields::<ResourceDoc>()),
        ("resources[].file", fields::<FileDoc>()),
        ("resources[].package", fields::<PackageDoc>()),
        ("resources[].service", fields::<ServiceDoc>()),
        ("resources[].nixosRebuild", fields::<NixosRebuildDoc>()),
        ("nixosRebuild.health", fields::<NixosHealthDoc>()),
        ("resources[].command", fields::<CommandDoc>()),
        ("task.container", fields::<ContainerDoc>()),
        ("container.ensure", fields::<EnsureDoc>()),
        (
            "container.stop, container.remove, container.restart",
            fields::<ContainerRefDoc>(),
        ),
        ("container.pull", fields::<ImageRefDoc>()),
        ("container.logs", fields::<LogsDoc>()),
        ("task.backup", fields::<BackupDoc>()),
        ("backup.retention", fields::<RetentionDoc>()),
        ("backup.restic", fields::<ResticDoc>()),
        ("backup.forget", fields::<ForgetDoc>()),
        ("backup.check", fields::<CheckDoc>()),
        ("backup.snapshots", fields::<SnapshotsDoc>()),
        ("backup.restore", fields::<RestoreDoc>()),
        ("backup.postgres", fields::<PostgresDoc>()),
        ("backup.postgresRestore", fields::<PostgresRestoreDoc>()),
        ("backup.snapraid", fields::<SnapraidDoc>()),
        ("backup.drill", fields::<DrillDoc>()),
        (
            "contentFrom, envFrom.NAME, passwordFrom",
            fields::<ValueFromDoc>(),
        ),
        ("sops", fields::<SopsDoc>()),
        ("kind: Schedule", fields::<ScheduleDoc>()),
        ("spec (Schedule)", fields::<ScheduleSpecDoc>()),
    ]
}

/// Every enum field: (section, field, enum). Its row's Type cell is "one of `a`, `b`".
fn enum_fields() -> Vec<(&'static str, &'static str, Probe)> {
    vec![
        ("resources[].file", "state", variants::<Presence>()),
        ("resources[].package", "state", variants::<PackageState>()),
        ("resources[].service", "state", variants::<ServiceState>()),
        (
            "resources[].nixosRebuild",
            "action",
            variants::<NixosAction>(),
        ),
        ("container.ensure", "restart", variants::<RestartPolicy>()),
        ("backup.snapraid", "operation", variants::<SnapraidOp>()),
        ("spec (Schedule)", "missed", variants::<MissedDoc>()),
    ]
}

/// One row of a field table: the field name and its Type cell.
struct Row {
    field: String,
    kind: String,
}

/// The field tables of a Markdown text, by heading (without `#` and backquotes). Lines inside
/// code fences are not headings. Panics on a heading that appears twice.
fn tables(markdown: &str) -> BTreeMap<String, Vec<Row>> {
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut heading: Option<String> = None;
    let mut fenced = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if line.starts_with('#') {
            let h = line
                .trim_start_matches('#')
                .replace('`', "")
                .trim()
                .to_owned();
            assert!(!out.contains_key(&h), "docs/spec.md: heading '{h}' twice");
            out.insert(h.clone(), Vec::new());
            heading = Some(h);
            continue;
        }
        let Some(h) = &heading else { continue };
        let cells: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        // "| `name` | type | default | meaning |": empty cells at both ends.
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let field = cells[1].trim_matches('`').to_owned();
        out.entry(h.clone()).or_default().push(Row {
            field,
            kind: cells[2].to_owned(),
        });
    }
    out
}

/// The ```yaml blocks of a Markdown text with the line each starts on.
fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```yaml block");
    blocks
}

/// Runs `load` (what `labctl apply -f FILE` does before it submits: parse, convert, the
/// coordinator's checks), and with `--check` too when the file has no Schedule.
fn apply_locally(path: &Path) -> Result<Loaded, String> {
    let args = |check| ApplyArgs {
        files: vec![path.to_path_buf()],
        check,
        detach: false,
        output: RunFormat::Text,
        selector: String::new(),
    };
    let loaded = load(&args(false)).map_err(|e| e.to_string())?;
    if loaded.schedules.is_empty() {
        load(&args(true)).map_err(|e| format!("with --check: {e}"))?;
    }
    Ok(loaded)
}

/// Applies every block locally; returns the number of documents.
fn accept_blocks(name: &str, markdown: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    // The examples' SOPS file (secrets/db.yaml), as deploy/examples has it.
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::copy(
        examples.join("secrets/db.yaml"),
        dir.path().join("secrets/db.yaml"),
    )
    .unwrap();
    let blocks = yaml_blocks(markdown);
    assert!(!blocks.is_empty(), "{name} has no yaml block");
    let mut documents = 0;
    let mut refused = Vec::new();
    for (line, text) in blocks {
        let path = dir.path().join(format!("line-{line}.yaml"));
        std::fs::write(&path, text).unwrap();
        match apply_locally(&path) {
            Ok(l) => documents += l.jobs.len() + l.schedules.len(),
            Err(e) => refused.push(format!("{name}: the yaml block at line {line}: {e}")),
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    documents
}

#[test]
fn every_yaml_block_of_the_spec_reference_and_readme_is_accepted() {
    // Jobs and Schedules of every task kind.
    assert!(accept_blocks("docs/spec.md", SPEC_MD) >= 8);
    accept_blocks("README.md", README);
}

#[test]
fn every_shipped_example_is_accepted() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for path in files {
        let loaded = apply_locally(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!loaded.jobs.is_empty() || !loaded.schedules.is_empty());
    }
}

#[test]
fn the_spec_reference_documents_exactly_the_fields_the_parser_accepts() {
    let tables = tables(SPEC_MD);
    let mut wrong = Vec::new();
    for (section, probe) in sections() {
        let Some(rows) = tables.get(section) else {
            wrong.push(format!(
                "docs/spec.md has no section '{section}' (for {})",
                probe.name
            ));
            continue;
        };
        let documented: BTreeSet<String> = rows.iter().map(|r| r.field.clone()).collect();
        for field in probe.names.difference(&documented) {
            wrong.push(format!(
                "section '{section}': field '{field}' is accepted by the parser ({}) but not documented",
                probe.name
            ));
        }
        for field in documented.difference(&probe.names) {
            wrong.push(format!(
                "section '{section}': field '{field}' is documented but the parser ({}) refuses it",
                probe.name
            ));
        }
        if documented.len() != rows.len() {
            wrong.push(format!("section '{section}': a field is listed twice"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_spec_reference_lists_exactly_the_allowed_values() {
    let tables = tables(SPEC_MD);
    let mut wrong = Vec::new();
    for (section, field, probe) in enum_fields() {
        let row = tables
            .get(section)
            .and_then(|rows| rows.iter().find(|r| r.field == field));
        let Some(row) = row else {
            wrong.push(format!(
                "docs/spec.md: section '{section}' has no row for '{field}' ({})",
                probe.name
            ));
            continue;
        };
        let documented: BTreeSet<String> = match row.kind.strip_prefix("one of ") {
            Some(list) => list.split('`').skip(1).step_by(2).map(Into::into).collect(),
            None => BTreeSet::new(),
        };
        for value in probe.names.difference(&documented) {
            wrong.push(format!(
                "section '{section}', field '{field}': value '{value}' is accepted ({}) but not in its type \"{}\"",
                probe.name, row.kind
            ));
        }
        for value in documented.difference(&probe.names) {
            wrong.push(format!(
                "section '{section}', field '{field}': value '{value}' is documented but the parser ({}) refuses it",
                probe.name
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// `(name, is_enum)` of every item of `source` that derives `Deserialize`.
fn deserialized_types(source: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut derives = false;
    for line in source.lines().map(str::trim) {
        if line.starts_with("#[derive(") {
            derives = line.contains("Deserialize");
            continue;
        }
        if line.starts_with("#[") || line.starts_with("///") {
            continue;
        }
        for (prefix, is_enum) in [("pub struct ", false), ("pub enum ", true)] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if derives {
                    out.push((name, is_enum));
                }
            }
        }
        derives = false;
    }
    out
}

#[test]
fn every_spec_struct_and_enum_is_covered() {
    let structs: BTreeSet<&str> = sections().iter().map(|(_, p)| p.name).collect();
    let enums: BTreeSet<&str> = enum_fields().iter().map(|(_, _, p)| p.name).collect();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (file, source) in SOURCES {
        for (name, is_enum) in deserialized_types(source) {
            seen += 1;
            let (covered, list) = if is_enum {
                (enums.contains(name.as_str()), "enum_fields()")
            } else {
                (structs.contains(name.as_str()), "sections()")
            };
            if !covered {
                missing.push(format!(
                    "{file}: {name} is part of the spec format but not in {list} of spec_doc_tests.rs; document it in docs/spec.md and add it"
                ));
            }
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
    assert_eq!(
        seen,
        structs.len() + enums.len(),
        "a listed type was not found in the sources"
    );
}

#[test]
fn serde_names_are_read_from_its_messages() {
    assert_eq!(
        fields::<ContainerRefDoc>().names,
        BTreeSet::from(["name".to_owned()])
    );
    assert_eq!(
        variants::<Presence>().names,
        BTreeSet::from(["present".to_owned(), "absent".to_owned()])
    );
    assert_eq!(fields::<LogsDoc>().name, "LogsDoc");
    let md = "# A\n| Field | Type |\n| --- | --- |\n| `x` | one of `p` |\n```yaml\n# B\n```\n";
    let t = tables(md);
    assert_eq!(t.keys().collect::<Vec<_>>(), ["A"]);
    assert_eq!(
        (t["A"][0].field.as_str(), t["A"][0].kind.as_str()),
        ("x", "one of `p`")
    );
    assert_eq!(yaml_blocks(md), [(5, "# B\n".to_owned())]);
    let src = "#[derive(Debug, Deserialize)]\n#[serde(x)]\npub struct A {\n}\n#[derive(Debug)]\npub struct B;\n/// x\n#[derive(Deserialize)]\npub enum C {}\n";
    assert_eq!(
        deserialized_types(src),
        [("A".to_owned(), false), ("C".to_owned(), true)]
    );
}
