//! Scalars as kubectl reads them: go-yaml v2's YAML 1.1 resolution of plain scalars (`resolve.go`)
//! and sigs.k8s.io/yaml's conversion of the result to JSON (`convertToJSONableObject`).
//!
//! kubectl turns YAML into JSON with sigs.k8s.io/yaml, which decodes with go-yaml v2 into Go
//! values and marshals them with `encoding/json`. So `yes`/`on`/`y` are booleans, `0644` is octal,
//! `1_000` is 1000, `8080.0` is the JSON number `8080`, and map keys are made strings (`1` → "1",
//! `yes` → "true"). Quoted scalars are always strings.

use serde_json::{Number, Value};

/// The handle saphyr-parser gives the `!!` (core schema) tags.
pub const CORE_TAG: &str = "tag:yaml.org,2002:";

/// A resolved scalar: null, a boolean, an integer or a string as a JSON value, or a float (which
/// JSON may not carry: Go's `json: unsupported value: +Inf`).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Json(Value),
    Float(f64),
}

impl Scalar {
    /// The JSON value, or the name Go gives a float JSON cannot carry (`+Inf`, `-Inf`, `NaN`).
    pub fn into_json(self) -> Result<Value, &'static str> {
        match self {
            Scalar::Json(v) => Ok(v),
            Scalar::Float(f) => float_json(f),
        }
    }
}

/// How a plain (unquoted) scalar resolves: YAML 1.1 as go-yaml v2 does it.
pub fn resolve_plain(s: &str) -> Scalar {
    let Some(&first) = s.as_bytes().first() else {
        return Scalar::Json(Value::Null);
    };
    // go-yaml v2 looks at the first byte to decide which kinds to try.
    let hint = match first {
        b'+' | b'-' | b'0'..=b'9' => Hint::Number,
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => Hint::Word,
        b'.' => Hint::Dot,
        _ => return Scalar::Json(Value::String(s.to_string())),
    };
    if let Some(v) = special(s) {
        return v;
    }
    match hint {
        Hint::Word => {}
        Hint::Dot => {
            if let Some(f) = go_parse_float(s) {
                return Scalar::Float(f);
            }
        }
        Hint::Number => {
            // Timestamps would be tried first, but go-yaml v2 gives them as strings when decoding
            // into `interface{}`, as kubectl does: the fall-through below does the same.
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(v) = go_parse_int(&plain) {
                return Scalar::Json(v);
            }
            if is_yaml_float(&plain) {
                if let Some(f) = go_parse_float(&plain) {
                    return Scalar::Float(f);
                }
            }
        }
    }
    Scalar::Json(Value::String(s.to_string()))
}

#[derive(Clone, Copy)]
enum Hint {
    Number,
    Word,
    Dot,
}

/// The fixed spellings of go-yaml v2's resolve table.
fn special(s: &str) -> Option<Scalar> {
    let v = match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Value::Bool(false)
        }
        "~" | "null" | "Null" | "NULL" => Value::Null,
        ".nan" | ".NaN" | ".NAN" => return Some(Scalar::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Scalar::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Scalar::Float(f64::NEG_INFINITY)),
        _ => return None,
    };
    Some(Scalar::Json(v))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: an optional sign, then `0x`,
/// `0o`, `0b` or a leading `0` (octal) or decimal digits.
fn go_parse_int(s: &str) -> Option<Value> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        // ParseUint takes no sign: a negative number must fit an i64.
        let v = i128::try_from(magnitude).ok().map(|m| -m)?;
        i64::try_from(v).ok().map(Value::from)
    } else if let Ok(v) = i64::try_from(magnitude) {
        Some(Value::from(v))
    } else if s.starts_with('+') {
        // ParseUint refuses the sign too.
        None
    } else {
        u64::try_from(magnitude).ok().map(Value::from)
    }
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat` for the decimal spellings YAML produces (Rust's parser also takes
/// `inf`/`nan` words, which Go spells differently and go-yaml never passes here).
fn go_parse_float(s: &str) -> Option<f64> {
    let body = s.trim_start_matches(['+', '-']);
    if body.is_empty()
        || body
            .bytes()
            .any(|c| c.is_ascii_alphabetic() && c != b'e' && c != b'E')
    {
        return None;
    }
    s.parse().ok()
}

/// A float as `encoding/json` writes it, so integral values decode into integer fields as they
/// do in Go (`8080.0` and `1e3` are the numbers 8080 and 1000).
fn float_json(f: f64) -> Result<Value, &'static str> {
    if f.is_nan() {
        return Err("NaN");
    }
    if f.is_infinite() {
        return Err(if f > 0.0 { "+Inf" } else { "-Inf" });
    }
    // Go writes integral floats below 1e21 without a fraction or exponent.
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return Ok(Value::from(f as i64));
        }
        if f >= 0.0 && f < u64::MAX as f64 {
            return Ok(Value::from(f as u64));
        }
    }
    Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
}

/// Why a tagged scalar cannot be decoded (go-yaml's "cannot decode !!str `x` as a !!int").
pub fn cannot_decode(value: &str, tag: &str) -> String {
    format!("cannot decode !!str `{value}` as a !!{tag}")
}

/// A scalar with an explicit core-schema tag (`!!str 12`, `!!int "12"`), as go-yaml v2 reads it.
/// Unknown and local tags (`!foo x`) leave the text a string, as go-yaml does.
pub fn resolve_tagged(value: &str, suffix: &str) -> Result<Scalar, String> {
    let resolved = || resolve_plain(value);
    match suffix {
        "str" | "timestamp" => Ok(Scalar::Json(Value::String(value.to_string()))),
        "binary" => {
            use base64::Engine;
            let clean: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|_| cannot_decode(value, "binary"))?;
            Ok(Scalar::Json(Value::String(
                String::from_utf8_lossy(&bytes).into_owned(),
            )))
        }
        "bool" => match resolved() {
            s @ Scalar::Json(Value::Bool(_)) => Ok(s),
            _ => Err(cannot_decode(value, "bool")),
        },
        "null" => match resolved() {
            s @ Scalar::Json(Value::Null) => Ok(s),
            _ => Err(cannot_decode(value, "null")),
        },
        "int" => match resolved() {
            Scalar::Json(Value::Number(n)) if !n.is_f64() => Ok(Scalar::Json(Value::Number(n))),
            _ => Err(cannot_decode(value, "int")),
        },
        // An integer is accepted as a float (go-yaml converts it).
        "float" => match resolved() {
            Scalar::Json(Value::Number(n)) => Ok(Scalar::Float(n.as_f64().unwrap_or_default())),
            s @ Scalar::Float(_) => Ok(s),
            _ => Err(cannot_decode(value, "float")),
        },
        _ => Ok(Scalar::Json(Value::String(value.to_string()))),
    }
}

/// A mapping key as sigs.k8s.io/yaml makes it a JSON object key: strings as they are, integers
/// and booleans as Go prints them, floats as `strconv.FormatFloat(f, 'g', -1, 32)`; `None` for
/// null, which it refuses.
pub fn key_string(v: &Scalar) -> Option<String> {
    match v {
        Scalar::Json(Value::String(s)) => Some(s.clone()),
        Scalar::Json(Value::Bool(b)) => Some(b.to_string()),
        Scalar::Json(Value::Number(n)) => Some(n.to_string()),
        Scalar::Float(f) if f.is_nan() => Some(".nan".into()),
        Scalar::Float(f) if f.is_infinite() => Some(if *f > 0.0 { ".inf" } else { "-.inf" }.into()),
        Scalar::Float(f) => Some(go_float32_g(*f as f32)),
        Scalar::Json(_) => None,
    }
}

/// `%g` with the shortest precision: exponent form when the decimal exponent is below -4 or at
/// least 6, with at least two exponent digits (`1e+07`).
fn go_float32_g(f: f32) -> String {
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) || f == 0.0 {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(s: &str) -> Value {
        match resolve_plain(s).into_json() {
            Ok(v) => v,
            Err(w) => json!(format!("non-finite {w}")),
        }
    }

    /// Each value as go-yaml v2 + sigs.k8s.io/yaml give it (checked against sigs.k8s.io/yaml
    /// 1.3.0 over gopkg.in/yaml.v2 2.4.0, the pair kubectl reads files with).
    #[test]
    fn plain_scalars_resolve_as_in_go_yaml_v2() {
        let cases = [
            ("yes", json!(true)),
            ("Y", json!(true)),
            ("On", json!(true)),
            ("n", json!(false)),
            ("OFF", json!(false)),
            ("True", json!(true)),
            ("yEs", json!("yEs")),
            ("~", Value::Null),
            ("", Value::Null),
            ("Null", Value::Null),
            ("0644", json!(420)),
            ("-0644", json!(-420)),
            ("00", json!(0)),
            ("08", json!(8)),
            ("1_000", json!(1000)),
            ("1_", json!(1)),
            ("0x1F", json!(31)),
            ("+0x1F", json!(31)),
            ("0o17", json!(15)),
            ("0b11", json!(3)),
            ("-0b11", json!(-3)),
            ("0x", json!("0x")),
            ("8080.0", json!(8080)),
            ("1e3", json!(1000)),
            ("0.5", json!(0.5)),
            (".5", json!(0.5)),
            ("1.", json!(1)),
            ("1:20", json!("1:20")),
            ("2001-12-14", json!("2001-12-14")),
            ("9223372036854775808", json!(9223372036854775808u64)),
            // A float to Go, written by encoding/json without a fraction.
            ("-9223372036854775809", json!(i64::MIN)),
            ("+", json!("+")),
            ("-", json!("-")),
            ("1.2.3", json!("1.2.3")),
            ("0x1.8p1", json!("0x1.8p1")),
            ("<<", json!("<<")),
            ("infinity", json!("infinity")),
            (".inf", json!("non-finite +Inf")),
            ("-.Inf", json!("non-finite -Inf")),
            (".NaN", json!("non-finite NaN")),
        ];
        for (text, want) in cases {
            assert_eq!(plain(text), want, "{text:?}");
        }
    }

    #[test]
    fn tags_and_keys() {
        let tagged = |v: &str, t: &str| resolve_tagged(v, t).map(|s| key_string(&s));
        assert_eq!(tagged("12", "str"), Ok(Some("12".into())));
        assert_eq!(tagged("12", "int"), Ok(Some("12".into())));
        assert_eq!(tagged("aGk=", "binary"), Ok(Some("hi".into())));
        assert_eq!(
            tagged("2001-12-14", "timestamp"),
            Ok(Some("2001-12-14".into()))
        );
        assert_eq!(tagged("yes", "bool"), Ok(Some("true".into())));
        assert_eq!(
            tagged("abc", "int"),
            Err("cannot decode !!str `abc` as a !!int".into())
        );
        assert_eq!(tagged("x", "foo"), Ok(Some("x".into())));
        let key = |s: &str| key_string(&resolve_plain(s));
        assert_eq!(key("yes").as_deref(), Some("true"));
        assert_eq!(key("n").as_deref(), Some("false"));
        assert_eq!(key("0x10").as_deref(), Some("16"));
        assert_eq!(key("1.5").as_deref(), Some("1.5"));
        assert_eq!(key("0.1").as_deref(), Some("0.1"));
        assert_eq!(key("1e3").as_deref(), Some("1000"));
        assert_eq!(key("1e7").as_deref(), Some("1e+07"));
        assert_eq!(key("1.5e-5").as_deref(), Some("1.5e-05"));
        assert_eq!(key(".inf").as_deref(), Some(".inf"));
        assert_eq!(key("~"), None);
    }
}
