//! Kubernetes resource quantities (`64Mi`, `500m`, `1e3`) and int-or-string ports.
//!
//! Grammar from apimachinery `resource.ParseQuantity`: a signed decimal number followed by a binary
//! suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix (n u m "" k M G T P E) or an exponent (`e3`, `E-2`).
//! A quantity that does not parse is a decoding error, as in the API server.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The message Kubernetes gives for a quantity that does not parse (`ErrFormatWrong`).
pub const QUANTITY_FORMAT_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A resource quantity, kept as the text the user wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quantity(pub String);

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{QUANTITY_FORMAT_MSG}")]
pub struct QuantityError;

/// A parsed quantity: `mantissa * 10^exp10 * 2^exp2`, sign in `negative`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedQuantity {
    pub negative: bool,
    pub mantissa: u128,
    pub exp10: i32,
    pub exp2: u32,
}

impl Quantity {
    /// Parses the quantity per the Kubernetes grammar.
    pub fn parse(&self) -> Result<ParsedQuantity, QuantityError> {
        parse_quantity(&self.0)
    }

    /// The quantity as a whole number (bytes for memory), rounded up as Kubernetes' `Value()` does;
    /// `None` when it does not parse or does not fit.
    pub fn to_bytes(&self) -> Option<i64> {
        self.parse().ok()?.ceil_i64()
    }

    /// The original text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ParsedQuantity {
    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative && self.mantissa != 0
    }

    /// Exact value as `numerator / 10^denominator_exp` when it fits in i128.
    fn rational(&self) -> Option<(i128, u32)> {
        let mut n = i128::try_from(self.mantissa).ok()?;
        n = n.checked_mul(1i128.checked_shl(self.exp2)?)?;
        let mut den = 0u32;
        if self.exp10 >= 0 {
            n = n.checked_mul(10i128.checked_pow(self.exp10 as u32)?)?;
        } else {
            den = self.exp10.unsigned_abs();
        }
        Some((if self.negative { -n } else { n }, den))
    }

    /// The value rounded up to a whole number.
    pub fn ceil_i64(&self) -> Option<i64> {
        let (n, den) = self.rational()?;
        let d = 10i128.checked_pow(den)?;
        let q = n.div_euclid(d) + i128::from(n.rem_euclid(d) != 0);
        i64::try_from(q).ok()
    }

    /// Approximate value, for comparisons that overflow the exact path.
    pub fn to_f64(&self) -> f64 {
        let v = self.mantissa as f64 * 10f64.powi(self.exp10) * 2f64.powi(self.exp2 as i32);
        if self.negative {
            -v
        } else {
            v
        }
    }

    /// Compares two quantities by value.
    pub fn cmp_value(&self, other: &ParsedQuantity) -> Ordering {
        if let (Some((a, da)), Some((b, db))) = (self.rational(), other.rational()) {
            let scale = da.max(db);
            let sa = 10i128
                .checked_pow(scale - da)
                .and_then(|m| a.checked_mul(m));
            let sb = 10i128
                .checked_pow(scale - db)
                .and_then(|m| b.checked_mul(m));
            if let (Some(x), Some(y)) = (sa, sb) {
                return x.cmp(&y);
            }
        }
        self.to_f64()
            .partial_cmp(&other.to_f64())
            .unwrap_or(Ordering::Equal)
    }
}

/// Parses a quantity string.
pub fn parse_quantity(s: &str) -> Result<ParsedQuantity, QuantityError> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = rest.split_at(num_len);
    let (mantissa, frac_digits) = parse_decimal(number)?;
    let (exp10, exp2) = match suffix {
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "" => (0, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        _ => (parse_exponent(suffix)?, 0),
    };
    Ok(ParsedQuantity {
        negative,
        mantissa,
        exp10: exp10 - frac_digits,
        exp2,
    })
}

/// `<digits>`, `<digits>.<digits>`, `<digits>.` or `.<digits>` → (digits as integer, fraction length).
fn parse_decimal(number: &str) -> Result<(u128, i32), QuantityError> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(QuantityError);
    }
    let digits = format!("{int}{frac}");
    let trimmed = digits.trim_start_matches('0');
    let mantissa = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse::<u128>().map_err(|_| QuantityError)?
    };
    Ok((mantissa, frac.len() as i32))
}

/// `e<signed int>` / `E<signed int>`.
fn parse_exponent(suffix: &str) -> Result<i32, QuantityError> {
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or(QuantityError)?;
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError);
    }
    rest.parse::<i32>().map_err(|_| QuantityError)
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity (string or number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                parse_quantity(v).map_err(E::custom)?;
                Ok(Quantity(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// A port given as a number or as a named container port (`intstr.IntOrString`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i32(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"an int32"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an int32"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    #[test]
    fn binary_and_decimal_suffixes() {
        assert_eq!(q("64Mi").to_bytes(), Some(64 << 20));
        assert_eq!(q("1Ki").to_bytes(), Some(1024));
        assert_eq!(q("1k").to_bytes(), Some(1000));
        assert_eq!(q("1.5G").to_bytes(), Some(1_500_000_000));
        assert_eq!(q("1e3").to_bytes(), Some(1000));
        assert_eq!(q("1E3").to_bytes(), Some(1000));
        assert_eq!(q("2E").to_bytes(), Some(2_000_000_000_000_000_000));
        assert_eq!(q("500m").to_bytes(), Some(1), "rounds up");
        assert_eq!(q("0.5").to_bytes(), Some(1));
        assert_eq!(q(".5Gi").to_bytes(), Some(512 << 20));
        assert_eq!(q("-1").to_bytes(), Some(-1));
        assert_eq!(q("100").to_bytes(), Some(100));
    }

    #[test]
    fn bad_quantities() {
        for bad in [
            "", "Mi", "64Mx", "1.2.3", "abc", "1e", "1e+", "--1", "1 Mi", ".",
        ] {
            assert!(q(bad).parse().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn compares_by_value() {
        let a = q("1Gi").parse().unwrap();
        let b = q("1000M").parse().unwrap();
        assert_eq!(a.cmp_value(&b), Ordering::Greater);
        let c = q("500m").parse().unwrap();
        let d = q("0.5").parse().unwrap();
        assert_eq!(c.cmp_value(&d), Ordering::Equal);
        assert!(q("-1Mi").parse().unwrap().is_negative());
    }

    #[test]
    fn decodes_numbers_and_strings() {
        let v: Quantity = serde_json::from_str("128").unwrap();
        assert_eq!(v, q("128"));
        let v: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(v, q("0.5"));
        let err = serde_json::from_str::<Quantity>("\"12Mx\"").unwrap_err();
        assert!(err.to_string().contains("quantities must match"));
        assert_eq!(serde_json::to_string(&q("64Mi")).unwrap(), "\"64Mi\"");
        let p: IntOrString = serde_json::from_str("8080").unwrap();
        assert_eq!(p, IntOrString::Int(8080));
        let p: IntOrString = serde_json::from_str("\"http\"").unwrap();
        assert_eq!(p, IntOrString::String("http".into()));
    }
}
