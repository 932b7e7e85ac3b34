//! `v1` ConfigMaps and Secrets given next to the Pods in a manifest: strict types, the API
//! server's defaults (`type: Opaque`, `stringData` merged over `data`) and validation
//! (`ValidateConfigMap`, `ValidateSecret`) with Kubernetes' wording.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{DecodeError, Engine};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{FieldError, FieldPath};
use super::types::{k8s_struct, ObjectMeta};
use super::validate::{self, names};

/// `corev1.MaxSecretSize`, also the limit of a ConfigMap.
pub const MAX_SECRET_SIZE: usize = 1 << 20;

/// Bytes that travel as standard base64 text (Go's `[]byte` in JSON).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print Secret values in debug output.
        write!(f, "Bytes(<{} bytes>)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64_encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                base64_decode(v)
                    .map(Bytes)
                    .map_err(|at| E::custom(format_args!("illegal base64 data at input byte {at}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// Go's `base64.StdEncoding`: padding required, non-zero trailing bits accepted (only Go's
/// `Strict()` refuses them).
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 with padding (Go's `base64.StdEncoding`).
pub fn base64_encode(data: &[u8]) -> String {
    GO_STD.encode(data)
}

/// Strict standard base64 (padding required; `\r` and `\n` ignored, as Go does). The error is
/// the offset of the first bad byte in `text`, as Go's `CorruptInputError`.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, usize> {
    // Go skips line breaks; the offsets it reports count them.
    let kept: Vec<usize> = (0..text.len())
        .filter(|&i| !matches!(text.as_bytes()[i], b'\r' | b'\n'))
        .collect();
    let clean: Vec<u8> = kept.iter().map(|&i| text.as_bytes()[i]).collect();
    let at = |i: usize| kept.get(i).copied().unwrap_or(text.len());
    GO_STD.decode(&clean).map_err(|e| match e {
        DecodeError::InvalidByte(i, _) | DecodeError::InvalidLastSymbol(i, _) => at(i),
        // Go reports an incomplete last group (one missing its padding) at its start, and
        // wrong padding at the first `=`.
        DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
            match clean.iter().position(|&b| b == b'=') {
                Some(i) => at(i),
                None => at(clean.len() / 4 * 4),
            }
        }
    })
}

type Map = BTreeMap<String, String>;

k8s_struct! {
    /// A `v1` ConfigMap.
    pub struct ConfigMap {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub immutable: Option<bool>,
        #[serde(skip_serializing_if = "Map::is_empty")]
        pub data: Map,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub binary_data: BTreeMap<String, Bytes>,
    }
}

k8s_struct! {
    /// A `v1` Secret. After defaulting `string_data` is empty: it was merged into `data`.
    pub struct Secret {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub immutable: Option<bool>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub data: BTreeMap<String, Bytes>,
        #[serde(skip_serializing_if = "Map::is_empty")]
        pub string_data: Map,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub type_: Option<String>,
    }
}

impl ConfigMap {
    pub fn namespace(&self) -> &str {
        namespace(&self.metadata)
    }
}

impl Secret {
    pub fn namespace(&self) -> &str {
        namespace(&self.metadata)
    }
}

fn namespace(meta: &ObjectMeta) -> &str {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => "default",
    }
}

/// The API server's handling of a new Secret: `stringData` written over `data` (the v1
/// conversion), `type` defaulted to `Opaque` (`SetDefaults_Secret`).
pub fn default_secret(s: &mut Secret) {
    for (k, v) in std::mem::take(&mut s.string_data) {
        s.data.insert(k, Bytes(v.into_bytes()));
    }
    if s.type_.as_deref().unwrap_or("").is_empty() {
        s.type_ = Some("Opaque".into());
    }
}

/// `ValidateConfigMap`.
pub fn validate_config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut errs = validate::validate_metadata(&cm.metadata, &FieldPath::new("metadata"));
    let mut total = 0;
    let data = FieldPath::new("data");
    for (key, value) in &cm.data {
        key_errors(&mut errs, &data.key(key), key);
        if cm.binary_data.contains_key(key) {
            let detail = "duplicate of key present in binaryData";
            errs.push(FieldError::invalid(&data.key(key), key, detail));
        }
        total += value.len();
    }
    let binary = FieldPath::new("binaryData");
    for (key, value) in &cm.binary_data {
        key_errors(&mut errs, &binary.key(key), key);
        if cm.data.contains_key(key) {
            let detail = "duplicate of key present in data";
            errs.push(FieldError::invalid(&binary.key(key), key, detail));
        }
        total += value.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&FieldPath::default(), MAX_SECRET_SIZE));
    }
    errs
}

/// Keys each Secret type requires (`ValidateSecret`).
const REQUIRED_KEYS: &[(&str, &str)] = &[
    ("kubernetes.io/dockercfg", ".dockercfg"),
    ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
    ("kubernetes.io/ssh-auth", "ssh-privatekey"),
    ("kubernetes.io/tls", "tls.crt"),
    ("kubernetes.io/tls", "tls.key"),
];

/// `ValidateSecret` on a defaulted Secret.
pub fn validate_secret(s: &Secret) -> Vec<FieldError> {
    let mut errs = validate::validate_metadata(&s.metadata, &FieldPath::new("metadata"));
    let data = FieldPath::new("data");
    let mut total = 0;
    for (key, value) in &s.data {
        key_errors(&mut errs, &data.key(key), key);
        total += value.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&data, MAX_SECRET_SIZE));
    }
    let ty = s.type_.as_deref().unwrap_or("Opaque");
    for (t, key) in REQUIRED_KEYS {
        if *t == ty && !s.data.contains_key(*key) {
            errs.push(FieldError::required(&data.key(key), ""));
        }
    }
    if ty == "kubernetes.io/basic-auth"
        && !s.data.contains_key("username")
        && !s.data.contains_key("password")
    {
        let detail = "must have at least one of username or password";
        errs.push(FieldError::invalid(&data.key("username"), "", detail));
    }
    if ty == "kubernetes.io/service-account-token" {
        let p = FieldPath::new("metadata")
            .child("annotations")
            .key("kubernetes.io/service-account.name");
        if !s
            .metadata
            .annotations
            .contains_key("kubernetes.io/service-account.name")
        {
            errs.push(FieldError::required(&p, ""));
        }
    }
    errs
}

fn key_errors(errs: &mut Vec<FieldError>, path: &FieldPath, key: &str) {
    errs.extend(
        names::config_map_key(key)
            .into_iter()
            .map(|m| FieldError::invalid(path, key, m)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_like_go() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zm9v!mFy"), Err(4));
        assert_eq!(base64_decode("Zm8"), Err(0));
        assert_eq!(base64_decode("Zm=v"), Err(2));
    }

    #[test]
    fn base64_offsets_count_line_breaks_and_trailing_bits_pass_as_in_go() {
        assert_eq!(base64_decode("Zm9v\r\nYm!y"), Err(8));
        assert_eq!(base64_decode("Zm9v\nYmF"), Err(5));
        assert_eq!(base64_decode("Zm9="), Ok(b"fo".to_vec()));
        assert_eq!(base64_decode("Zm9v====").map_err(|_| ()), Err(()));
    }

    const POD: &str = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n";

    fn problems(yaml: &str) -> Vec<String> {
        crate::manifest::parse(&format!("{yaml}{POD}"))
            .unwrap_err()
            .problems()
    }

    #[test]
    fn config_maps_and_secrets_parse_with_defaults() {
        let m = crate::manifest::parse(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\nimmutable: true\ndata: {{a: \"1\"}}\nbinaryData: {{b: AAE=}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: prod}}\ndata: {{k: djE=, o: b2xk}}\nstringData: {{o: new}}\n{POD}"
        ))
        .unwrap();
        let cm = m.config_map("default", "c").unwrap();
        assert_eq!(cm.binary_data["b"].0, vec![0, 1]);
        assert_eq!(cm.immutable, Some(true));
        assert!(m.secret("default", "s").is_none());
        let s = m.secret("prod", "s").unwrap();
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.data["k"].0, b"v1");
        assert_eq!(s.data["o"].0, b"new");
        assert!(s.string_data.is_empty());
        let text = crate::manifest::to_yaml(&m);
        assert!(text.contains("kind: Secret"), "{text}");
        assert!(text.contains("o: bmV3"), "{text}");
        assert!(!text.contains("new"), "{text}");
        assert_eq!(crate::manifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn strict_decoding_and_validation_use_kubernetes_wording() {
        assert_eq!(
            problems(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\ndatas: {}\n"
            ),
            [r#"datas: unknown field "datas", did you mean "data"?"#]
        );
        assert_eq!(
            problems("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: \"no!\"}\n"),
            ["data.k: illegal base64 data at input byte 2"]
        );
        let errs = problems(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\ndata: {\"a b\": x, k: y}\nbinaryData: {k: AA==}\n",
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(
            errs[0].starts_with(
                r#"metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#
            ),
            "{errs:#?}"
        );
        assert!(errs[1].starts_with(r#"data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"#), "{errs:#?}");
        assert_eq!(
            errs[2],
            r#"data[k]: Invalid value: "k": duplicate of key present in binaryData"#
        );
        assert_eq!(
            errs[3],
            r#"binaryData[k]: Invalid value: "k": duplicate of key present in data"#
        );
        let errs = problems("apiVersion: v1\nkind: Secret\nmetadata: {name: t}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n");
        assert_eq!(errs, ["data[tls.key]: Required value"]);
        let text = crate::manifest::parse(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: t}}\ntype: kubernetes.io/tls\n{POD}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            text.starts_with("The Secret \"t\" is invalid: \n* data[tls.crt]: Required value"),
            "{text}"
        );
        let errs = problems("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
        assert_eq!(errs, [r#"metadata.name: Duplicate value: "c""#]);
        let only = crate::manifest::parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
        assert!(matches!(only, Err(crate::manifest::ManifestError::NoPod)));
    }
}
