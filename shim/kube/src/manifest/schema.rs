//! The Kubernetes API's own field list for the objects podshim reads (`api-fields.txt`, generated
//! by `scripts/gen-api-fields.py` from the OpenAPI document of one Kubernetes release and
//! committed). It is the one list of what exists: the decoder's types must decode every field in
//! it and nothing else, and the "not supported yet" gate may only name fields in it (both checked
//! by the tests of `schema_check`), so a field of the current API is never an "unknown field".

use std::collections::BTreeMap;
use std::sync::OnceLock;

const TEXT: &str = include_str!("api-fields.txt");

/// The type of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// string, integer, boolean, number, time, bytes or any.
    Scalar(String),
    /// A named object type of the list.
    Named(String),
    List(Box<FieldType>),
    Map(Box<FieldType>),
}

impl FieldType {
    fn parse(s: &str) -> FieldType {
        if let Some(inner) = s.strip_prefix("[]") {
            FieldType::List(Box::new(FieldType::parse(inner)))
        } else if let Some(inner) = s.strip_prefix("map[").and_then(|r| r.strip_suffix(']')) {
            FieldType::Map(Box::new(FieldType::parse(inner)))
        } else if s.chars().next().is_some_and(char::is_uppercase) {
            FieldType::Named(s.to_string())
        } else {
            FieldType::Scalar(s.to_string())
        }
    }
}

/// The parsed list.
#[derive(Debug)]
pub struct Schema {
    /// The Kubernetes release it was generated from, e.g. `1.37`.
    pub version: String,
    /// Type name → its fields (JSON names) in order.
    pub types: BTreeMap<String, Vec<(String, FieldType)>>,
}

impl Schema {
    /// The fields of type `name` (`None` for a type the list names but does not expand).
    pub fn fields(&self, name: &str) -> Option<&[(String, FieldType)]> {
        self.types.get(name).map(Vec::as_slice)
    }

    /// The type of the field at a gate pattern such as `spec.containers[].ports[].hostPort`,
    /// starting at type `root`; `None` when no such field exists.
    pub fn field_at(&self, root: &str, pattern: &str) -> Option<FieldType> {
        let mut ty = FieldType::Named(root.to_string());
        for part in pattern.split('.') {
            let (name, lists) = match part.find('[') {
                Some(i) => (&part[..i], part[i..].matches("[]").count()),
                None => (part, 0),
            };
            let FieldType::Named(t) = &ty else {
                return None;
            };
            ty = self.fields(t)?.iter().find(|(f, _)| f == name)?.1.clone();
            for _ in 0..lists {
                ty = match ty {
                    FieldType::List(inner) => *inner,
                    _ => return None,
                };
            }
        }
        Some(ty)
    }
}

/// The list, parsed once.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| parse(TEXT))
}

fn parse(text: &str) -> Schema {
    let mut version = String::new();
    let mut types: BTreeMap<String, Vec<(String, FieldType)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        if let Some(v) = line.strip_prefix("kubernetes ") {
            version = v.trim().to_string();
        } else if let Some(t) = line.strip_prefix("type ") {
            current = Some(t.trim().to_string());
            types.entry(t.trim().to_string()).or_default();
        } else if let (Some(t), Some((name, ty))) = (&current, line.trim().split_once(' ')) {
            let fields = types.entry(t.clone()).or_default();
            fields.push((name.to_string(), FieldType::parse(ty)));
        }
    }
    Schema { version, types }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_parses() {
        let s = schema();
        assert!(s.version.starts_with("1."), "{}", s.version);
        assert_eq!(
            s.field_at("Pod", "spec.containers[].ports[].hostPort"),
            Some(FieldType::Scalar("integer".into()))
        );
        assert_eq!(
            s.field_at("Pod", "spec.tolerations"),
            Some(FieldType::List(Box::new(FieldType::Named(
                "Toleration".into()
            ))))
        );
        assert_eq!(s.field_at("Pod", "spec.nodeSelector.x"), None);
        assert_eq!(s.field_at("Pod", "spec.nosuch"), None);
        assert!(s.fields("PodStatus").is_none(), "status is not expanded");
    }
}
