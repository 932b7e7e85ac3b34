//! Values written as block YAML (`podshim run --dry-run`, `podshim ps -o yaml`), in the layout
//! kubectl prints, with every string the reader would take for something else (`"yes"`, `"0644"`,
//! `"1_000"`, `""`) quoted, so what podshim prints reads back as the same object.

use serde::Serialize;
use serde_json::Value;

use super::scalar::{resolve_plain, Scalar};

/// `value` as a YAML document (no `---`).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = String::new();
    match &v {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    Ok(out)
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Entries of a non-empty mapping, each at `indent` (the first one's indentation is the caller's
/// when it follows a `- `).
fn write_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str(&string(k));
        out.push(':');
        match v {
            Value::Object(child) if !child.is_empty() => {
                out.push('\n');
                pad(out, indent + 2);
                write_map(out, child, indent + 2);
            }
            // kubectl's layout: a list under a key is not indented further.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                pad(out, indent);
                write_seq(out, items, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// Items of a non-empty list, each `- ` at `indent` (the first one's indentation is the caller's).
fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2),
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain when it reads back as itself, else double-quoted (JSON's escapes are YAML's).
fn string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        Value::String(s.to_string()).to_string()
    }
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let reads_back = matches!(resolve_plain(s), Scalar::Json(Value::String(ref r)) if r == s);
    reads_back
        && !"-?:,[]{}#&*!|>'\"%@` \t".contains(first)
        && !s.ends_with([' ', '\t', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s
            .chars()
            .any(|c| c.is_control() || c == '\u{feff}' || c == '\u{85}')
        && !matches!(s, "<<")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_layout() {
        let v = json!({
            "apiVersion": "v1",
            "metadata": {"name": "p", "labels": {}},
            // `n` is quoted: YAML 1.1 reads it as false.
            "spec": {"containers": [{"name": "c", "args": ["a", "b"], "env": []}], "n": [[1, 2], []]},
        });
        assert_eq!(
            to_string(&v).unwrap(),
            "apiVersion: v1\nmetadata:\n  labels: {}\n  name: p\nspec:\n  containers:\n  - args:\n    - a\n    - b\n    env: []\n    name: c\n  \"n\":\n  - - 1\n    - 2\n  - []\n"
        );
    }

    #[test]
    fn strings_that_would_read_as_something_else_are_quoted() {
        for (s, want) in [
            ("yes", "\"yes\""),
            ("0644", "\"0644\""),
            ("1_000", "\"1_000\""),
            ("", "\"\""),
            ("~", "\"~\""),
            ("a: b", "\"a: b\""),
            ("- x", "\"- x\""),
            ("line\nbreak", "\"line\\nbreak\""),
            (" lead", "\" lead\""),
            ("<<", "\"<<\""),
            ("nginx:1.27", "nginx:1.27"),
            ("/dev/termination-log", "/dev/termination-log"),
            ("sh -c 'echo hi'", "sh -c 'echo hi'"),
        ] {
            assert_eq!(string(s), want, "{s:?}");
        }
    }
}
