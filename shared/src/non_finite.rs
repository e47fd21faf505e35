//! JSON for numbers that may not be finite: a diverged run's loss is NaN or infinite.
//!
//! JSON has no NaN or infinity. serde_json writes them as `null` and then refuses to read
//! that back into an `f64`, so a diverged run's metrics could be stored but never read. With
//! `#[serde(with = "non_finite")]` (or `non_finite::vec` for a `Vec<f64>`) a non-finite value
//! is written as the string `"NaN"`, `"Infinity"` or `"-Infinity"` (JavaScript's names, which
//! `Number()` and Python's `float()` parse), and read back from those, from any other spelling
//! Rust parses (`"inf"`), and from `null`, which is how older stores hold a NaN.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An `f64` that survives a trip through JSON whatever its value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Real(f64);

impl Serialize for Real {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Real(value) = *self;
        match value {
            v if v.is_finite() => serializer.serialize_f64(v),
            v if v.is_nan() => serializer.serialize_str("NaN"),
            v if v > 0.0 => serializer.serialize_str("Infinity"),
            _ => serializer.serialize_str("-Infinity"),
        }
    }
}

impl<'de> Deserialize<'de> for Real {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RealVisitor)
    }
}

struct RealVisitor;

impl Visitor<'_> for RealVisitor {
    type Value = Real;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, or \"NaN\", \"Infinity\" or \"-Infinity\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Real, E> {
        Ok(Real(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Real, E> {
        Ok(Real(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Real, E> {
        Ok(Real(v as f64))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Real, E> {
        v.parse()
            .map(Real)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Real, E> {
        Ok(Real(f64::NAN))
    }

    fn visit_none<E: de::Error>(self) -> Result<Real, E> {
        Ok(Real(f64::NAN))
    }
}

/// Writes `value`, as a string when it is not finite.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    Real(*value).serialize(serializer)
}

/// Reads what [`serialize`] wrote, or `null` as NaN.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Real::deserialize(deserializer).map(|Real(v)| v)
}

/// The number a JSON value holds, as [`serialize`] writes numbers: for readers that walk a
/// record's JSON by path (series, results tables).
pub fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok().filter(|v: &f64| !v.is_finite()),
        _ => None,
    }
}

/// The same for every element of a `Vec<f64>`.
pub mod vec {
    use super::*;

    /// Writes `values`, each non-finite one as a string.
    pub fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(|&v| Real(v)))
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        let values = Vec::<Real>::deserialize(deserializer)?;
        Ok(values.into_iter().map(|Real(v)| v).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "super")]
        value: f64,
        #[serde(with = "super::vec")]
        values: Vec<f64>,
    }

    #[test]
    fn non_finite_values_round_trip_and_finite_ones_stay_numbers() {
        let record = Record {
            value: f64::NAN,
            values: vec![1.5, f64::INFINITY, f64::NEG_INFINITY, 0.0],
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"value":"NaN","values":[1.5,"Infinity","-Infinity",0.0]}"#
        );
        let back: Record = serde_json::from_str(&json).unwrap();
        assert!(back.value.is_nan());
        assert_eq!(back.values[..3], [1.5, f64::INFINITY, f64::NEG_INFINITY]);
    }

    #[test]
    fn json_values_read_as_numbers_only_when_they_are_numbers() {
        use serde_json::json;
        assert_eq!(super::number(&json!(2.5)), Some(2.5));
        assert_eq!(super::number(&json!("-Infinity")), Some(f64::NEG_INFINITY));
        assert!(super::number(&json!("NaN")).unwrap().is_nan());
        // A string that merely looks like a number is a string (a tag, a name).
        assert_eq!(super::number(&json!("3")), None);
        assert_eq!(super::number(&json!(null)), None);
    }

    #[test]
    fn null_reads_as_nan_and_other_spellings_parse() {
        let back: Record =
            serde_json::from_str(r#"{"value":null,"values":["inf",2,"-inf"]}"#).unwrap();
        assert!(back.value.is_nan());
        assert_eq!(back.values, [f64::INFINITY, 2.0, f64::NEG_INFINITY]);
        let error = serde_json::from_str::<Record>(r#"{"value":"many","values":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"NaN\""), "{error}");
    }
}
