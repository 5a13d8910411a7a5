//! File templates: `{{ facts.a.b }}` is replaced by the node's fact at that dotted path
//! (array elements by index: `{{ facts.hardware.disks.0.name }}`). Strings are inserted as
//! they are, numbers and booleans as text, objects and arrays as compact JSON.
//!
//! Nothing else is supported (no filters, loops or escapes), so a file that needs a literal
//! `{{` cannot be a template. An unknown fact, an unclosed `{{` or another expression is an
//! error naming it; the template's other content never appears in errors. The template of a
//! secret file is not quoted at all: its errors give the expression's byte offset instead.
//! Pure.

use serde_json::Value;

/// Renders `text` with `facts` (the JSON of [`crate::facts::FactSet`]); `secret`: errors do
/// not quote the expression.
pub fn render(text: &str, facts: &Value, secret: bool) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            let offset = text.len() - rest.len() + start;
            return Err(format!(
                "unclosed '{{{{' at byte {offset} of the template; close it with '}}}}'"
            ));
        };
        let expr = after[..end].trim();
        match lookup(expr, facts) {
            Ok(value) => out.push_str(&value),
            Err(_) if secret => {
                let offset = text.len() - rest.len() + start;
                return Err(format!(
                    "the template expression at byte {offset} is not a fact this node has (not \
                     shown: the file is secret); use {{{{ facts.PATH }}}} with a known fact"
                ));
            }
            Err(e) => return Err(e),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `{{ expr }}`.
fn lookup(expr: &str, facts: &Value) -> Result<String, String> {
    let Some(path) = expr.strip_prefix("facts.") else {
        return Err(format!(
            "unsupported template expression '{{{{ {expr} }}}}'; only {{{{ facts.PATH }}}} is supported"
        ));
    };
    let mut value = facts;
    for segment in path.split('.') {
        let next = match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        value = next.ok_or_else(|| {
            format!("unknown fact 'facts.{path}' in the template; this node has no such fact")
        })?;
    }
    Ok(match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => value.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Value {
        json!({"platform": {"os": "debian", "cpus": 4, "arch": "x86_64"},
               "hardware": {"disks": [{"name": "sda"}, {"name": "sdb"}]},
               "flag": true})
    }

    #[test]
    fn renders_facts() {
        let t = "os={{ facts.platform.os }} cpus={{facts.platform.cpus}} \
                 d={{ facts.hardware.disks.1.name }} f={{ facts.flag }}\n";
        assert_eq!(
            render(t, &facts(), false).unwrap(),
            "os=debian cpus=4 d=sdb f=true\n"
        );
        assert_eq!(
            render("{{ facts.hardware.disks.0 }}", &facts(), false).unwrap(),
            r#"{"name":"sda"}"#
        );
        assert_eq!(
            render("no braces } {", &facts(), false).unwrap(),
            "no braces } {"
        );
        assert_eq!(render("", &facts(), false).unwrap(), "");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            render("x {{ facts.platform.nope }}", &facts(), false).unwrap_err(),
            "unknown fact 'facts.platform.nope' in the template; this node has no such fact"
        );
        assert!(render("{{ facts.hardware.disks.9.name }}", &facts(), false).is_err());
        assert!(render("{{ facts.platform.os.x }}", &facts(), false).is_err());
        assert_eq!(
            render("ab {{ facts.platform.os", &facts(), false).unwrap_err(),
            "unclosed '{{' at byte 3 of the template; close it with '}}'"
        );
        assert_eq!(
            render("{{ env.HOME }}", &facts(), false).unwrap_err(),
            "unsupported template expression '{{ env.HOME }}'; only {{ facts.PATH }} is supported"
        );
        assert!(render("{{ facts. }}", &facts(), false).is_err());
        // A secret template's errors quote none of it.
        for t in ["pw={{ hunter22 }}", "pw={{ facts.hunter22 }}"] {
            assert_eq!(
                render(t, &facts(), true).unwrap_err(),
                "the template expression at byte 3 is not a fact this node has (not shown: the \
                 file is secret); use {{ facts.PATH }} with a known fact"
            );
        }
    }
}
