//! `labctl secrets recipients`: the age recipients of the matching nodes, which operators encrypt
//! SOPS files to (plain list, table, JSON/YAML, or a ready `.sops.yaml` creation rule). Each
//! recipient is the public half of the key its agent made on the node; labctl never sees a
//! private key.

use lab_proto::recipient::AgeRecipient;
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use serde::Serialize;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};
use crate::output;

/// `-o` values of `labctl secrets recipients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecipientsFormat {
    /// One recipient per line (nodes first, then --add), for `sops --age "$(… | paste -sd,)"`.
    Plain,
    /// NODE and RECIPIENT columns.
    Table,
    /// JSON: a list of {"node", "recipient"} (recipient null when the node reported none).
    Json,
    /// YAML, as JSON.
    Yaml,
    /// A `.sops.yaml` with one creation rule for these recipients.
    Sops,
}

/// One node and its recipient (JSON field names are stable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientView {
    /// Node name.
    pub node: String,
    /// Its age recipient; `None` when its agent reported none (older than node age keys).
    pub recipient: Option<String>,
}

/// What to print besides the nodes' recipients.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Further recipients (the operator's own key), already validated.
    pub add: Vec<AgeRecipient>,
    /// `path_regex` of the creation rule (`-o sops`); none = the rule matches every file.
    pub path_regex: Option<String>,
    /// The selector, named in the `-o sops` comment.
    pub selector: String,
}

/// Checks `--add` values before anything is dialled.
pub fn parse_added(texts: &[String]) -> Result<Vec<AgeRecipient>, Failure> {
    texts
        .iter()
        .map(|t| {
            t.trim()
                .parse::<AgeRecipient>()
                .map_err(|e| Failure::Usage(format!("--add: {e}")))
        })
        .collect()
}

/// `labctl secrets recipients`.
pub async fn recipients(
    mut client: OperatorServiceClient<Channel>,
    format: RecipientsFormat,
    extra: &Extra,
) -> anyhow::Result<()> {
    let nodes = lab_proto::pages::all_nodes(&mut client, &extra.selector)
        .await
        .map_err(from_status)?;
    if nodes.is_empty() && !extra.selector.is_empty() {
        return Err(Failure::Failed(format!(
            "no node matches selector '{}'; 'labctl nodes -o wide' shows every label",
            extra.selector
        ))
        .into());
    }
    let views: Vec<RecipientView> = nodes
        .into_iter()
        .map(|n| RecipientView {
            recipient: (!n.age_recipient.is_empty()).then_some(n.age_recipient),
            node: n.name,
        })
        .collect();
    let missing: Vec<&str> = views
        .iter()
        .filter(|v| v.recipient.is_none())
        .map(|v| v.node.as_str())
        .collect();
    if !missing.is_empty() && matches!(format, RecipientsFormat::Plain | RecipientsFormat::Sops) {
        crate::errln!(
            "note: left out {} (no age recipient reported yet: its agent predates node age keys; upgrade it)",
            output::escape(&missing.join(", "))
        );
    }
    crate::out!("{}", render(&views, format, extra)?)?;
    Ok(())
}

/// The output for `views`. Pure; fails (exit 1) when plain or sops output would hold no
/// recipient at all.
pub fn render(
    views: &[RecipientView],
    format: RecipientsFormat,
    extra: &Extra,
) -> anyhow::Result<String> {
    let all: Vec<String> = views
        .iter()
        .filter_map(|v| v.recipient.clone())
        .chain(extra.add.iter().map(|r| r.to_string()))
        .collect();
    let none = || {
        Failure::Failed(
            "no recipient to print: no matching node reported one and no --add was given".into(),
        )
    };
    Ok(match format {
        RecipientsFormat::Plain => {
            if all.is_empty() {
                return Err(none().into());
            }
            all.iter().map(|r| format!("{r}\n")).collect()
        }
        RecipientsFormat::Table => {
            let mut t = output::table(["NODE", "RECIPIENT"]);
            for v in views {
                t.row([
                    v.node.clone(),
                    v.recipient.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            format!("{t}\n")
        }
        RecipientsFormat::Json => serde_json::to_string_pretty(views)? + "\n",
        RecipientsFormat::Yaml => serde_yaml_ng::to_string(views)?,
        RecipientsFormat::Sops => {
            if all.is_empty() {
                return Err(none().into());
            }
            sops_rule(views, &all, extra)?
        }
    })
}

/// A `.sops.yaml` with one creation rule: the recipients as one comma-separated string (the
/// form every SOPS 3 version reads), a comment naming the nodes they belong to.
fn sops_rule(views: &[RecipientView], all: &[String], extra: &Extra) -> anyhow::Result<String> {
    let nodes: Vec<&str> = views
        .iter()
        .filter(|v| v.recipient.is_some())
        .map(|v| v.node.as_str())
        .collect();
    let which = if extra.selector.is_empty() {
        "every node".to_owned()
    } else {
        format!("the nodes matching '{}'", extra.selector)
    };
    let mut out = format!(
        "# made by 'labctl secrets recipients -o sops' for {which}: {}{}\n",
        nodes.join(", "),
        if extra.add.is_empty() {
            ""
        } else {
            " (and --add)"
        }
    );
    out = output::escape(out.trim_end()).into_owned() + "\ncreation_rules:\n";
    let mut first = "  - ";
    if let Some(re) = &extra.path_regex {
        // A YAML double-quoted string is JSON's, so serde_json quotes it safely.
        out += &format!("{first}path_regex: {}\n", serde_json::to_string(re)?);
        first = "    ";
    }
    out += &format!("{first}age: >-\n");
    let lines: Vec<String> = all.iter().map(|r| format!("        {r}")).collect();
    out += &lines.join(",\n");
    out += "\n";
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
    const B: &str = "age1tmaae3ld5vpevmsh5yacsauzx8jetg300mpvc4ugp5zr5l6ssq9sla97ep";

    fn views() -> Vec<RecipientView> {
        vec![
            RecipientView {
                node: "n1".into(),
                recipient: Some(A.into()),
            },
            RecipientView {
                node: "n2".into(),
                recipient: None,
            },
        ]
    }

    #[test]
    fn plain_lists_recipients_then_added_ones() {
        let extra = Extra {
            add: parse_added(&[B.to_owned()]).unwrap(),
            ..Default::default()
        };
        let text = render(&views(), RecipientsFormat::Plain, &extra).unwrap();
        assert_eq!(text, format!("{A}\n{B}\n"));
    }

    #[test]
    fn json_has_a_null_for_a_node_without_a_recipient() {
        let text = render(&views(), RecipientsFormat::Json, &Extra::default()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["recipient"], A);
        assert!(v[1]["recipient"].is_null());
        let table = render(&views(), RecipientsFormat::Table, &Extra::default()).unwrap();
        assert!(table.contains("n2    -"), "{table}");
    }

    #[test]
    fn sops_output_is_a_creation_rule_sops_reads() {
        let extra = Extra {
            add: parse_added(&[B.to_owned()]).unwrap(),
            path_regex: Some(r#"secrets/.*\.yaml$"#.into()),
            selector: "role=db".into(),
        };
        let text = render(&views(), RecipientsFormat::Sops, &extra).unwrap();
        assert!(text.starts_with("# made by"), "{text}");
        assert!(text.contains("'role=db': n1 (and --add)"), "{text}");
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let rule = &doc["creation_rules"][0];
        assert_eq!(rule["path_regex"], r#"secrets/.*\.yaml$"#);
        // SOPS splits on ',' and trims each recipient.
        let age = rule["age"].as_str().unwrap();
        let split: Vec<&str> = age.split(',').map(str::trim).collect();
        assert_eq!(split, [A, B]);
    }

    #[test]
    fn nothing_to_print_is_an_error_and_bad_added_recipients_a_usage_error() {
        let only_missing = &views()[1..];
        let e = render(only_missing, RecipientsFormat::Sops, &Extra::default()).unwrap_err();
        assert!(e.to_string().contains("no recipient to print"), "{e}");
        let e = parse_added(&["age1nope".into()]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--add: "), "{e}");
    }
}
