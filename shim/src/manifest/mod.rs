//! TEMPORARY STUB (replaced by the real manifest module): plain serde decoding, no validation.
#![allow(dead_code, missing_docs)]
pub mod types;
pub use types::*;
pub mod quantity {
    use serde::{Deserialize, Serialize};
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Quantity(pub serde_json::Value);
    impl Quantity {
        pub fn to_bytes(&self) -> Option<i64> {
            let s = match &self.0 {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            for (suf, m) in [("Ki", 1i64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
                if let Some(n) = s.strip_suffix(suf) {
                    return n.parse::<i64>().ok().map(|n| n * m);
                }
            }
            s.parse().ok()
        }
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum IntOrString {
        Int(i64),
        Str(String),
    }
    impl Default for IntOrString {
        fn default() -> Self {
            IntOrString::Int(0)
        }
    }
}
pub mod defaults {
    pub fn default_pull_policy(image: &str) -> String {
        if image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':') {
            "Always".into()
        } else {
            "IfNotPresent".into()
        }
    }
}
pub struct Manifest {
    pub pods: Vec<Pod>,
    pub warnings: Vec<String>,
}
#[derive(Debug)]
pub struct ManifestError(String);
impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
pub fn parse(t: &str) -> Result<Manifest, ManifestError> {
    let mut pods = vec![];
    for d in serde_yaml::Deserializer::from_str(t) {
        let p: Pod =
            serde::Deserialize::deserialize(d).map_err(|e| ManifestError(e.to_string()))?;
        pods.push(p);
    }
    Ok(Manifest {
        pods,
        warnings: vec![],
    })
}
pub fn to_yaml(p: &[Pod]) -> String {
    p.iter()
        .map(|p| serde_yaml::to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}
